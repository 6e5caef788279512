// Package materialize turns a negotiated model package into a package directory
// under models-cache (on-disk contract §7): blobs in shared-blobs, links from
// handles to blobs, unhashed files in the package dir, dependency links, and
// finally model_config.json, all under .<package_id>.materialization.lock.
//
// Bytes come from a Source (the download engine plugs in there); this
// package owns the on-disk protocol, not the transfer.
package materialize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/metadata"
)

// Store materializes packages under one cache root.
type Store struct {
	home          layout.Home
	locks         *lock.Locker
	blobs         *blobfs.Store
	log           *slog.Logger
	absoluteLinks bool
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithAbsoluteLinks writes absolute blob-link targets, as the reference does,
// instead of relative ones.
func WithAbsoluteLinks() Option { return func(s *Store) { s.absoluteLinks = true } }

// New returns a Store. locks and blobs are shared with the rest of the process.
func New(home layout.Home, locks *lock.Locker, blobs *blobfs.Store, opts ...Option) *Store {
	s := &Store{home: home, locks: locks, blobs: blobs, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Dependency is an already materialized dependency package to link.
type Dependency struct {
	Name string
	// PackageDir is the dependency's package directory.
	PackageDir string
}

// Request describes one package to materialize.
type Request struct {
	// CacheOwner is the package's cache_model_id, else the canonical id: it
	// names the model cache root.
	CacheOwner       string
	CanonicalModelID string
	PackageID        string
	Artifacts        []metadata.Artifact
	// DownloadFilesWithoutHash allows artefacts without a provider MD5.
	DownloadFilesWithoutHash bool
	// Manifest carries fields 2–11 of the manifest; ids, artefacts and
	// dependency paths are filled in here.
	Manifest     manifest.Spec
	Dependencies []Dependency
	// Verified are blobs the caller itself verified and published for this
	// package before calling (by MD5: the identity it published): like
	// those a Source reports, step 6 does not read them again while the
	// identity holds.
	Verified map[string]fsx.FileID
	// LockTimeout, if > 0, bounds the wait for the materialization lock
	// instead of the Locker's default (INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT).
	LockTimeout time.Duration
}

// Hooks run under the materialization lock.
type Hooks struct {
	// Construct builds the model from the package dir; the manifest is written
	// only if it succeeds.
	Construct func(ctx context.Context, packageDir string) error
	// Published runs after the manifest write (auto-resolution registration).
	Published func(ctx context.Context, r *Result) error
}

// Result describes a materialized package.
type Result struct {
	PackageDir string
	Spec       manifest.Spec
	Manifest   manifest.WriteResult
	// ResolvedFiles are the absolute paths an auto-resolution entry records
	// (§8.2), sorted.
	ResolvedFiles []string
}

// Materialize runs §7 steps 1 and 3–8 for req (dependencies, step 2, must be
// materialized by the caller first and passed in req.Dependencies). src puts
// missing bytes in place; it may be nil when everything is present.
func (s *Store) Materialize(ctx context.Context, req Request, src Source, hooks Hooks) (*Result, error) {
	if err := layout.ValidatePackageID(req.PackageID); err != nil {
		return nil, err
	}
	for _, id := range []string{req.CacheOwner, req.CanonicalModelID} {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("materialize %s: %w: cache owner and canonical model id must be non-blank", req.PackageID, errdefs.ErrInvalidParameter)
		}
	}
	decls, err := layout.Declarations(req.Artifacts)
	if err != nil {
		return nil, err
	}
	if !req.DownloadFilesWithoutHash {
		for _, d := range decls {
			if d.Unhashed {
				return nil, &UntrustedFileError{PackageID: req.PackageID, Handle: d.FileHandle}
			}
		}
	}
	names := make([]string, len(req.Dependencies))
	for i, d := range req.Dependencies {
		names[i] = d.Name
	}
	if err := layout.ValidateDependencyNames(names); err != nil {
		return nil, err
	}
	modelDir, err := s.home.ModelDir(req.CacheOwner)
	if err != nil {
		return nil, err
	}
	pkgDir, err := s.home.PackageDir(req.CacheOwner, req.PackageID)
	if err != nil {
		return nil, err
	}
	lockPath, err := s.home.MaterializationLockPath(req.CacheOwner, req.PackageID)
	if err != nil {
		return nil, err
	}
	if err := fsx.EnsureDir(s.home.ModelsCache(), 0o777); err != nil {
		return nil, fmt.Errorf("create %s: %w", s.home.ModelsCache(), err)
	}
	if err := fsx.EnsureDir(modelDir, 0o777); err != nil {
		return nil, fmt.Errorf("create model cache root: %w", err)
	}
	var lopts []lock.CallOption
	if req.LockTimeout > 0 {
		lopts = append(lopts, lock.WithTimeout(req.LockTimeout))
	}
	held, err := s.locks.Lock(ctx, lockPath, lopts...)
	if err != nil {
		return nil, fmt.Errorf("materialize %s/%s: %w", req.CacheOwner, req.PackageID, err)
	}
	defer held.Unlock()

	if err := fsx.EnsureDir(pkgDir, 0o777); err != nil {
		return nil, fmt.Errorf("create package dir: %w", err)
	}
	spec := req.Manifest
	spec.ModelID = req.CacheOwner
	spec.CanonicalModelID = req.CanonicalModelID
	spec.PackageArtifacts = declaredArtifacts(decls)
	depPaths, err := dependencyIdentities(ctx, req.Dependencies)
	if err != nil {
		return nil, err
	}
	spec.DependencyPackagePaths = depPaths

	guard, err := manifest.Guard(ctx, pkgDir, &spec, manifest.BeforeMaterialization)
	if err != nil {
		return nil, err
	}
	if !guard.Complete {
		// Unhashed files of an unpublished package may be stale or partial.
		if err := removeUnhashed(pkgDir, decls); err != nil {
			return nil, err
		}
	}
	t := &transfer{src: src, verified: map[string]fsx.FileID{}}
	for md5, id := range req.Verified {
		t.verified[md5] = id
	}
	if err := s.fetchAll(ctx, pkgDir, decls, req.Artifacts, t); err != nil {
		return nil, err
	}
	arts, err := s.verifyFiles(ctx, pkgDir, decls, req.Artifacts, t)
	if err != nil {
		return nil, err
	}
	spec.PackageArtifacts = arts
	for _, d := range req.Dependencies {
		if err := s.linkDependency(ctx, pkgDir, d); err != nil {
			return nil, err
		}
	}
	// Fresh identities: a dependency may have changed while we downloaded.
	if spec.DependencyPackagePaths, err = dependencyIdentities(ctx, req.Dependencies); err != nil {
		return nil, err
	}
	if _, err := manifest.Guard(ctx, pkgDir, &spec, manifest.AfterMaterialization); err != nil {
		return nil, err
	}
	if hooks.Construct != nil {
		if err := hooks.Construct(ctx, pkgDir); err != nil {
			return nil, fmt.Errorf("construct model from %s: %w", pkgDir, err)
		}
	}
	wr, err := manifest.Write(ctx, pkgDir, &spec, manifest.WriteOptions{Locker: s.locks, Logger: s.log})
	if err != nil {
		return nil, err
	}
	res := &Result{PackageDir: pkgDir, Spec: spec, Manifest: wr}
	if res.ResolvedFiles, err = s.resolvedFiles(pkgDir, spec, req.Dependencies); err != nil {
		return nil, err
	}
	if hooks.Published != nil {
		if err := hooks.Published(ctx, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// UntrustedFileError: an artefact has no provider MD5 while hashless downloads are off.
type UntrustedFileError struct {
	PackageID, Handle string
}

func (e *UntrustedFileError) Error() string {
	return fmt.Sprintf("package %s: file %q has no provider MD5 and cannot be verified; "+
		"pass download_files_without_hash (--allow-unhashed) only if you trust the source", e.PackageID, e.Handle)
}

func (e *UntrustedFileError) Unwrap() error { return errdefs.ErrUntrustedFile }

func declaredArtifacts(decls []layout.Declaration) []manifest.Artifact {
	out := make([]manifest.Artifact, len(decls))
	for i, d := range decls {
		a := manifest.Artifact{FileHandle: d.FileHandle, Unhashed: d.Unhashed, Storage: manifest.Storage(d.Storage)}
		if d.MD5Hash != "" {
			a.MD5Hash = ptr(d.MD5Hash)
		}
		if d.SourceHash != "" {
			a.SourceHash = ptr(d.SourceHash)
		}
		out[i] = a
	}
	return out
}

func ptr[T any](v T) *T { return &v }

func removeUnhashed(pkgDir string, decls []layout.Declaration) error {
	for _, d := range decls {
		if !d.Unhashed {
			continue
		}
		p, err := layout.HandlePath(pkgDir, d.FileHandle)
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return &fsx.UnsafePathError{Op: "replace unhashed file", Path: p, Kind: fsx.ErrSymlink}
		case fi.Mode().IsRegular():
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}
