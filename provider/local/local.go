// Package local describes a model directory on disk – a directory holding a
// model_config.json, the reference's local-package format – as provider
// metadata with one local package.
//
// The manifest is the hand-written form of on-disk-contract §6.6: either
// model_architecture + backend_type (a packaged backend), or model_module +
// model_class (custom model code, backend "custom"). A v4 manifest written
// into a cache package directory is accepted too; its package_artifacts
// (with MD5s) then describe the files. Otherwise every regular file of the
// directory except model_config.json, dotfiles and lock files is listed,
// without MD5.
package local

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// DefaultPackageID is the package id used when the directory name is not a
// valid package id.
const DefaultPackageID = "local"

// Model is a loaded local model directory.
type Model struct {
	// Dir is the absolute directory.
	Dir string
	// Manifest is the parsed model_config.json.
	Manifest *manifest.Manifest
	// ModelModule and ModelClass are set for custom-code directories.
	ModelModule, ModelClass string
	// Metadata describes the directory: the model id is the manifest's
	// canonical_model_id, else model_id, else the directory path; one
	// package with package_source local_cache.
	Metadata *metadata.ModelMetadata
}

// Package returns the directory's single package.
func (m *Model) Package() *metadata.ModelPackage { return &m.Metadata.Packages[0] }

// IsModelDir reports whether path is a directory holding a regular
// model_config.json (following symlinks, as a user-given path is).
func IsModelDir(path string) bool {
	st, err := os.Stat(filepath.Join(path, manifest.FileName))
	return err == nil && st.Mode().IsRegular()
}

// InvalidDirError reports a directory that cannot be loaded as a model.
type InvalidDirError struct {
	Dir    string
	Reason string
	Err    error
}

func (e *InvalidDirError) Error() string {
	s := fmt.Sprintf("local model directory %s: %s", e.Dir, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap classifies the error: a directory that does not exist is
// provider.ErrModelNotFound, anything else a corrupt package.
func (e *InvalidDirError) Unwrap() []error {
	if e.Reason == reasonCannotOpen && errors.Is(e.Err, fs.ErrNotExist) {
		return []error{provider.ErrModelNotFound, e.Err}
	}
	if e.Err != nil {
		return []error{errdefs.ErrCorruptPackage, e.Err}
	}
	return []error{errdefs.ErrCorruptPackage}
}

const reasonCannotOpen = "cannot open"

// Load reads dir/model_config.json and describes the directory.
func Load(ctx context.Context, dir string) (*Model, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, &InvalidDirError{Dir: abs, Reason: reasonCannotOpen, Err: err}
	}
	if !st.IsDir() {
		return nil, &InvalidDirError{Dir: abs, Reason: "not a directory"}
	}
	man, err := manifest.Read(ctx, abs)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, &InvalidDirError{Dir: abs, Reason: "no " + manifest.FileName, Err: err}
		}
		return nil, &InvalidDirError{Dir: abs, Reason: "invalid " + manifest.FileName, Err: err}
	}
	m := &Model{Dir: abs, Manifest: man}
	pkg := metadata.ModelPackage{PackageSource: metadata.SourceLocalCache, ModelFeatures: man.ModelFeatures}
	switch {
	case man.ModelModule != nil && man.ModelClass != nil:
		m.ModelModule, m.ModelClass = *man.ModelModule, *man.ModelClass
		pkg.Backend = metadata.BackendCustom
		if man.BackendType != nil {
			pkg.Backend = metadata.BackendType(*man.BackendType)
		}
	case man.ModelArchitecture != nil && man.BackendType != nil:
		pkg.Backend = metadata.BackendType(*man.BackendType)
	default:
		return nil, &InvalidDirError{Dir: abs, Reason: manifest.FileName + " must declare model_module and model_class, or model_architecture and backend_type"}
	}
	if !pkg.Backend.Valid() {
		return nil, &InvalidDirError{Dir: abs, Reason: fmt.Sprintf("unknown backend_type %q", pkg.Backend)}
	}
	if man.Quantization != nil {
		q := metadata.Quantization(*man.Quantization)
		if !q.Valid() {
			return nil, &InvalidDirError{Dir: abs, Reason: fmt.Sprintf("unknown quantization %q", *man.Quantization)}
		}
		pkg.Quantization = q
	}
	if man.TrustedSource != nil {
		pkg.TrustedSource = *man.TrustedSource
	}
	if man.DynamicBatchSizeSupported != nil {
		v := *man.DynamicBatchSizeSupported
		pkg.DynamicBatchSizeSupported = &v
	}
	if man.StaticBatchSize != nil {
		n, ok := man.StaticBatchSize.Int64()
		if !ok || n > 1<<31 {
			return nil, &InvalidDirError{Dir: abs, Reason: "static_batch_size out of range"}
		}
		v := int(n)
		pkg.StaticBatchSize = &v
	}
	rec, err := recommended(man.RecommendedParameters)
	if err != nil {
		return nil, &InvalidDirError{Dir: abs, Reason: "recommended_parameters", Err: err}
	}
	pkg.RecommendedParameters = rec
	pkg.PackageID = filepath.Base(abs)
	if layout.ValidatePackageID(pkg.PackageID) != nil {
		pkg.PackageID = DefaultPackageID
	}
	if man.PackageArtifacts != nil {
		for _, a := range man.PackageArtifacts {
			art := metadata.Artifact{FileHandle: a.FileHandle}
			if a.MD5Hash != nil {
				v := *a.MD5Hash
				art.MD5Hash = &v
			}
			pkg.Artifacts = append(pkg.Artifacts, art)
		}
	} else if pkg.Artifacts, err = listFiles(abs); err != nil {
		return nil, &InvalidDirError{Dir: abs, Reason: "cannot list files", Err: err}
	}
	md := &metadata.ModelMetadata{
		ModelID:  abs,
		TaskType: man.TaskType,
		Packages: []metadata.ModelPackage{pkg},
	}
	switch {
	case man.CanonicalModelID != nil && *man.CanonicalModelID != "":
		md.ModelID = *man.CanonicalModelID
	case man.ModelID != nil && *man.ModelID != "":
		md.ModelID = *man.ModelID
	}
	if man.ModelID != nil && *man.ModelID != "" && *man.ModelID != md.ModelID {
		md.Packages[0].CacheModelID = *man.ModelID
	}
	if man.ModelArchitecture != nil {
		md.ModelArchitecture = *man.ModelArchitecture
	}
	for _, d := range man.ModelDependencies {
		dep := metadata.ModelDependency{Name: d.Name, ModelID: d.ModelID}
		if d.ModelPackageID != nil {
			v := *d.ModelPackageID
			dep.ModelPackageID = &v
		}
		md.ModelDependencies = append(md.ModelDependencies, dep)
	}
	m.Metadata = md
	return m, nil
}

// listFiles lists the directory's regular files as artefacts (handles with
// '/'), skipping model_config.json, dotfiles, lock files and anything under
// a dot-directory or model_dependencies/.
func listFiles(dir string) ([]metadata.Artifact, error) {
	var out []metadata.Artifact
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		h := filepath.ToSlash(rel)
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, ".") || h == "model_dependencies" || h == "__pycache__" {
				return filepath.SkipDir
			}
			return nil
		}
		if h == manifest.FileName || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".lock") {
			return nil
		}
		if !d.Type().IsRegular() && d.Type()&fs.ModeSymlink == 0 {
			return nil
		}
		if layout.ValidateHandle(h) != nil {
			return nil
		}
		out = append(out, metadata.Artifact{FileHandle: h})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].FileHandle < out[j].FileHandle })
	return out, err
}

func recommended(v any) (*metadata.RecommendedParameters, error) {
	if v == nil {
		return nil, nil
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("must be an object")
	}
	r := &metadata.RecommendedParameters{}
	num := func(x any) (float64, bool) {
		switch n := x.(type) {
		case float64:
			return n, true
		case pyjson.Int:
			if i, ok := n.Int64(); ok {
				return float64(i), true
			}
		}
		return 0, false
	}
	if c, ok := o.Get("confidence"); ok && c != nil {
		f, ok := num(c)
		if !ok {
			return nil, fmt.Errorf("confidence must be a number")
		}
		r.Confidence = &f
	}
	if pc, ok := o.Get("per_class_confidence"); ok && pc != nil {
		po, ok := pc.(*pyjson.Object)
		if !ok {
			return nil, fmt.Errorf("per_class_confidence must be an object")
		}
		r.PerClassConfidence = metadata.ClassConfidences{}
		for _, k := range po.Keys() {
			x, _ := po.Get(k)
			f, ok := num(x)
			if !ok {
				return nil, fmt.Errorf("per_class_confidence[%q] must be a number", k)
			}
			r.PerClassConfidence = append(r.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: f})
		}
	}
	return r, nil
}

// DirProvider is a provider.Provider whose model ids are local directory
// paths; register it under a custom name to load directories through the
// normal provider flow. The API key is ignored.
type DirProvider struct{}

// ModelMetadata loads req.ModelID as a directory.
func (DirProvider) ModelMetadata(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
	m, err := Load(ctx, req.ModelID)
	if err != nil {
		return nil, err
	}
	return m.Metadata, nil
}
