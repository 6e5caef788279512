package materialize

import (
	"context"
	"fmt"
	"os"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/metadata"
)

// RequestFor turns package p of model md, as the provider announced it,
// into a materialization request: the package directory belongs to the
// package's cache_model_id (else the canonical id); the artifacts of a
// local-cache package are already on disk; the manifest records the model's
// and package's fields (fields 2–11 of §6.1).
func RequestFor(md *metadata.ModelMetadata, p *metadata.ModelPackage, withoutHash bool, deps []Dependency) Request {
	arts := make([]metadata.Artifact, len(p.Artifacts))
	for i, a := range p.Artifacts {
		a.Local = p.PackageSource == metadata.SourceLocalCache
		arts[i] = a
	}
	arch, trusted := md.ModelArchitecture, p.TrustedSource
	spec := manifest.Spec{
		ModelArchitecture: &arch, TaskType: md.TaskType,
		BackendType: string(p.Backend), ModelFeatures: p.ModelFeatures, TrustedSource: &trusted,
		Quantization: string(p.Quantization), DynamicBatchSizeSupported: p.DynamicBatchSizeSupported,
		RecommendedParameters: p.EffectiveRecommendedParameters(md), ModelDependencies: md.ModelDependencies,
	}
	if p.StaticBatchSize != nil {
		n := int64(*p.StaticBatchSize)
		spec.StaticBatchSize = &n
	}
	return Request{
		CacheOwner: CacheOwner(md, p), CanonicalModelID: md.ModelID, PackageID: p.PackageID,
		Artifacts: arts, DownloadFilesWithoutHash: withoutHash, Manifest: spec, Dependencies: deps,
	}
}

// CacheOwner is the model whose directory holds package p: its
// cache_model_id, else the canonical id.
func CacheOwner(md *metadata.ModelMetadata, p *metadata.ModelPackage) string {
	if p.CacheModelID != "" {
		return p.CacheModelID
	}
	return md.ModelID
}

// MissingFiles lists the artifacts of package packageID of model owner that
// are not regular files in its directory under home (a presence check:
// nothing is hashed).
func MissingFiles(home layout.Home, owner, packageID string, arts []metadata.Artifact) []string {
	dir, err := home.PackageDir(owner, packageID)
	if err != nil {
		return []string{"<invalid package id>"}
	}
	var missing []string
	for _, a := range arts {
		path, err := layout.HandlePath(dir, a.FileHandle)
		if err != nil {
			missing = append(missing, a.FileHandle)
			continue
		}
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, a.FileHandle)
		}
	}
	return missing
}

// LocalPackage serves a package that already sits in the cache (the
// offline-weights registry, locally built TRT engines): every recorded file
// present, nothing hashed, nothing written (offline.md §5). It returns the
// package directory and what its manifest records, or, without a complete
// manifest, what the provider announced.
func (s *Store) LocalPackage(ctx context.Context, md *metadata.ModelMetadata, p *metadata.ModelPackage) (string, manifest.Spec, error) {
	owner := CacheOwner(md, p)
	if missing := MissingFiles(s.home, owner, p.PackageID, p.Artifacts); len(missing) > 0 {
		return "", manifest.Spec{}, fmt.Errorf("package %s is incomplete in the cache (missing %v): %w", p.PackageID, missing, errdefs.ErrCorruptPackage)
	}
	dir, err := s.home.PackageDir(owner, p.PackageID)
	if err != nil {
		return "", manifest.Spec{}, err
	}
	if m, err := manifest.Read(ctx, dir); err == nil && m.Complete() {
		return dir, m.Spec(), nil
	}
	spec := RequestFor(md, p, false, nil).Manifest
	spec.CanonicalModelID, spec.ModelID = md.ModelID, owner
	for _, a := range p.Artifacts {
		spec.PackageArtifacts = append(spec.PackageArtifacts, manifest.Artifact{FileHandle: a.FileHandle, MD5Hash: a.MD5Hash, Storage: manifest.StoragePackageFile})
	}
	return dir, spec, nil
}
