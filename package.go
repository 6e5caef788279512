package modelcache

import (
	"fmt"
	"path/filepath"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider/local"
)

// Package is a loaded model package.
type Package struct {
	// Dir is the package directory (model_config.json and the files).
	Dir string
	// Files maps each file handle to its path (links resolve to shared blobs).
	Files map[string]string
	// ModelID is the requested id; CanonicalModelID the provider's id;
	// CacheModelID owns the package directory (models-cache/<slug of it>).
	ModelID          string
	CanonicalModelID string
	CacheModelID     string
	PackageID        string
	Backend          string
	Quantization     string
	// BatchSize is "dynamic", "static N" or "" when not declared.
	BatchSize             string
	Architecture          string
	TaskType              string
	RecommendedParameters *metadata.RecommendedParameters
	// ModelFeatures is the provider's model_features document (nil or a
	// JSON object value).
	ModelFeatures any
	Dependencies  map[string]*Package
	// FromCache is true when the auto-resolution cache answered (no network).
	FromCache bool
	// Transfer is what this load moved (zero on a cache hit).
	Transfer Transfer
	// Report is the negotiation report (nil on a cache hit or a local dir).
	Report *Report
	// Warnings are problems that did not fail the load (the decision could
	// not be cached, …), one line each.
	Warnings []string
}

// Report is a negotiation outcome: every announced package with its
// verdict, reason and rank.
type Report = negotiation.Report

// specPackage describes a materialized (or cached) package from its
// manifest spec.
func specPackage(modelID, dir string, s *manifest.Spec, packageID string) *Package {
	p := &Package{Dir: dir, Files: map[string]string{}, ModelID: modelID, CanonicalModelID: s.CanonicalModelID,
		CacheModelID: s.ModelID, PackageID: packageID, Backend: s.BackendType, Quantization: s.Quantization, ModelFeatures: s.ModelFeatures}
	if s.ModelArchitecture != nil {
		p.Architecture = *s.ModelArchitecture
	}
	if s.TaskType != nil {
		p.TaskType = *s.TaskType
	}
	switch {
	case s.DynamicBatchSizeSupported != nil && *s.DynamicBatchSizeSupported:
		p.BatchSize = "dynamic"
	case s.StaticBatchSize != nil:
		p.BatchSize = fmt.Sprintf("static %d", *s.StaticBatchSize)
	}
	for _, a := range s.PackageArtifacts {
		p.Files[a.FileHandle] = filepath.Join(dir, filepath.FromSlash(a.FileHandle))
	}
	return p
}

// hitPackage is the package an auto-resolution hit serves.
func hitPackage(modelID string, h *autoresolve.Hit) *Package {
	spec := h.Manifest.Spec()
	pkg := specPackage(modelID, h.PackageDir, &spec, h.Entry.ModelPackageID)
	pkg.RecommendedParameters = h.Entry.RecommendedParameters
	pkg.FromCache = true
	pkg.Dependencies = map[string]*Package{}
	for _, d := range h.Dependencies {
		pkg.Dependencies[d.Name] = &Package{Dir: d.TargetPath, ModelID: d.CacheModelID, CacheModelID: d.CacheModelID,
			CanonicalModelID: d.CanonicalModelID, PackageID: d.ModelPackageID, Files: map[string]string{}, FromCache: true}
	}
	return pkg
}

// localPackage describes a local model directory (a path given to Load).
func localPackage(dir string, lm *local.Model) *Package {
	md, p := lm.Metadata, lm.Package()
	pkg := &Package{Dir: lm.Dir, Files: map[string]string{}, ModelID: dir, CanonicalModelID: md.ModelID,
		PackageID: p.PackageID, Backend: string(p.Backend), Quantization: string(p.Quantization),
		Architecture: md.ModelArchitecture, ModelFeatures: p.ModelFeatures}
	if md.TaskType != nil {
		pkg.TaskType = *md.TaskType
	}
	for _, a := range p.Artifacts {
		pkg.Files[a.FileHandle] = filepath.Join(lm.Dir, filepath.FromSlash(a.FileHandle))
	}
	return pkg
}
