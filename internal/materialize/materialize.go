// Package materialize turns a negotiated model package into a package directory
// under models-cache (on-disk contract §7): blobs in shared-blobs, links from
// handles to blobs, unhashed files in the package dir, dependency links, and
// finally model_config.json, all under .<package_id>.materialization.lock.
//
// Bytes come from a FetchFunc (the download engine plugs in there); this
// package owns the on-disk protocol, not the transfer.
package materialize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
)

// FetchFunc opens the bytes of one download artefact. size is -1 when unknown.
type FetchFunc func(ctx context.Context, a layout.Artefact) (body io.ReadCloser, size int64, err error)

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
	Artefacts        []layout.Artefact
	// DownloadFilesWithoutHash allows artefacts without a provider MD5.
	DownloadFilesWithoutHash bool
	// Manifest carries fields 2–11 of the manifest; ids, artefacts and
	// dependency paths are filled in here.
	Manifest     manifest.Spec
	Dependencies []Dependency
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
	// EnsureBlobs, if set, publishes every missing blob in one call (a
	// parallel, resumable download engine); otherwise each missing blob is
	// streamed through the FetchFunc into the blob store.
	EnsureBlobs func(ctx context.Context, missing []layout.Artefact) error
	// FetchFile, if set, downloads an unhashed artefact to dest (which does
	// not exist; the handle lock is held) with retries and resume; otherwise
	// the FetchFunc stream is written to a private temp and renamed.
	FetchFile func(ctx context.Context, a layout.Artefact, dest string) error
	// Verified, if set, returns the identity a blob had when this load's own
	// download verified and published it. Step 6 does not re-read such a
	// blob while its identity (inode, size, mtime, ctime) is unchanged: the
	// bytes were hashed as they were written, moments ago. Blobs that
	// existed before the load, or that another process published, are
	// re-hashed as the reference does.
	Verified func(md5 string) (fsx.FileID, bool)
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
// materialized by the caller first and passed in req.Dependencies).
func (s *Store) Materialize(ctx context.Context, req Request, fetch FetchFunc, hooks Hooks) (*Result, error) {
	if err := layout.ValidatePackageID(req.PackageID); err != nil {
		return nil, err
	}
	for _, id := range []string{req.CacheOwner, req.CanonicalModelID} {
		if strings.TrimSpace(id) == "" {
			return nil, fmt.Errorf("materialize %s: %w: cache owner and canonical model id must be non-blank", req.PackageID, errdefs.ErrInvalidParameter)
		}
	}
	decls, err := layout.Declarations(req.Artefacts)
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
	if err := s.fetchAll(ctx, pkgDir, decls, req.Artefacts, fetch, hooks); err != nil {
		return nil, err
	}
	arts, err := s.verifyFiles(ctx, pkgDir, decls, req.Artefacts, fetch, hooks)
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

// ensureHandleDirs creates the directories of a nested handle one level at a
// time, refusing a symlink at every level: checking only the last one would
// let a planted link higher up lead writes outside the cache.
func ensureHandleDirs(pkgDir, handle string) error {
	dir := pkgDir
	segs := strings.Split(handle, "/")
	for _, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		if err := fsx.EnsureDir(dir, 0o777); err != nil {
			return err
		}
	}
	return nil
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

func artefactFor(arts []layout.Artefact, handle string) layout.Artefact {
	for _, a := range arts {
		if a.FileHandle == handle {
			return a
		}
	}
	return layout.Artefact{FileHandle: handle}
}

// fetchAll is step 5: MD5 artefacts into shared-blobs, then unhashed ones into
// the package dir; existing targets are skipped without hashing. Then links.
func (s *Store) fetchAll(ctx context.Context, pkgDir string, decls []layout.Declaration, arts []layout.Artefact, fetch FetchFunc, hooks Hooks) error {
	ensure := hooks.EnsureBlobs
	var missing []layout.Artefact
	for _, d := range decls {
		if d.Storage != layout.StorageSharedBlob {
			continue
		}
		if ensure == nil {
			if err := s.fetchBlob(ctx, d, artefactFor(arts, d.FileHandle), fetch); err != nil {
				return err
			}
			continue
		}
		if ok, err := s.blobs.Has(d.MD5Hash); err != nil {
			return err
		} else if !ok {
			missing = append(missing, artefactFor(arts, d.FileHandle))
		}
	}
	if len(missing) > 0 {
		if err := ensure(ctx, missing); err != nil {
			return err
		}
	}
	for _, d := range decls {
		if !d.Unhashed {
			continue
		}
		if err := s.fetchPackageFile(ctx, pkgDir, d, artefactFor(arts, d.FileHandle), fetch, hooks.FetchFile); err != nil {
			return err
		}
	}
	for _, d := range decls {
		if d.Storage != layout.StorageSharedBlob {
			continue
		}
		if err := s.linkBlob(ctx, pkgDir, d); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) fetchBlob(ctx context.Context, d layout.Declaration, a layout.Artefact, fetch FetchFunc) error {
	ok, err := s.blobs.Has(d.MD5Hash)
	if err != nil || ok {
		return err
	}
	if fetch == nil {
		return fmt.Errorf("blob %s for %q is missing and no fetcher is configured", d.MD5Hash, d.FileHandle)
	}
	body, size, err := fetch(ctx, a)
	if err != nil {
		return fmt.Errorf("fetch %q: %w", d.FileHandle, err)
	}
	defer body.Close()
	if _, err := s.blobs.Put(ctx, d.MD5Hash, body, size); err != nil {
		return fmt.Errorf("store %q: %w", d.FileHandle, err)
	}
	return nil
}

func (s *Store) fetchPackageFile(ctx context.Context, pkgDir string, d layout.Declaration, a layout.Artefact, fetch FetchFunc,
	fetchFile func(context.Context, layout.Artefact, string) error) error {
	p, err := layout.HandlePath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	lp, err := layout.HandleLockPath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	if err := ensureHandleDirs(pkgDir, d.FileHandle); err != nil {
		return err
	}
	held, err := s.locks.Lock(ctx, lp)
	if err != nil {
		return err
	}
	defer held.Unlock()
	if _, err := fsx.RegularNoFollow(p); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if fetchFile != nil {
		if err := fetchFile(ctx, a, p); err != nil {
			return fmt.Errorf("fetch %q: %w", d.FileHandle, err)
		}
		return nil
	}
	body, size, err := fetch(ctx, a)
	if err != nil {
		return fmt.Errorf("fetch %q: %w", d.FileHandle, err)
	}
	defer body.Close()
	return writeFileFromStream(ctx, p, body, size)
}

// writeFileFromStream publishes r at path: private temp, fsync, size check,
// rename, fsync dir. The final name never holds partial bytes.
func writeFileFromStream(ctx context.Context, path string, r io.Reader, size int64) error {
	dir, base := filepath.Split(path)
	tok, err := fsx.HexToken()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+base+".partial-"+tok)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, fsx.ContextReader(ctx, r))
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("download of %s ended after %d of %d bytes", base, n, size)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if isLink, _ := fsx.IsSymlink(path); isLink {
		return &fsx.UnsafePathError{Op: "write", Path: path, Kind: fsx.ErrSymlink}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return fsx.SyncDir(dir)
}

// verifyFiles is step 6: re-hash everything. A blob that fails is repaired
// once (renamed aside, deleted, fetched again), an improvement the reference
// cannot see. It returns the full artefact identities (SHA-256 of unhashed files).
func (s *Store) verifyFiles(ctx context.Context, pkgDir string, decls []layout.Declaration, arts []layout.Artefact, fetch FetchFunc,
	hooks Hooks) ([]manifest.Artifact, error) {
	ensure := hooks.EnsureBlobs
	out := declaredArtifacts(decls)
	for i, d := range decls {
		p, err := layout.HandlePath(pkgDir, d.FileHandle)
		if err != nil {
			return nil, err
		}
		switch {
		case d.Storage == layout.StorageSharedBlob:
			err := s.verifyBlobLink(ctx, p, d, hooks.Verified)
			if err != nil && (fetch != nil || ensure != nil) && isContentError(err) {
				s.log.Warn("blob failed verification; repairing", "md5", d.MD5Hash, "handle", d.FileHandle, "err", err)
				if _, rerr := s.blobs.Repair(ctx, d.MD5Hash); rerr != nil {
					return nil, fmt.Errorf("repair blob %s: %w (after: %v)", d.MD5Hash, rerr, err)
				}
				if ensure != nil {
					err = ensure(ctx, []layout.Artefact{artefactFor(arts, d.FileHandle)})
				} else {
					err = s.fetchBlob(ctx, d, artefactFor(arts, d.FileHandle), fetch)
				}
				if err == nil {
					if err = s.linkBlob(ctx, pkgDir, d); err == nil {
						err = s.verifyBlobLink(ctx, p, d, hooks.Verified)
					}
				}
			}
			if err != nil {
				return nil, err
			}
		case d.Unhashed:
			h := sha256.New()
			if _, err := fsx.StableHash(ctx, p, h); err != nil {
				return nil, &PackageFileError{Path: p, Err: err}
			}
			out[i].SHA256Hash = ptr(hex.EncodeToString(h.Sum(nil)))
		default: // local-cache package file with an MD5
			sum, _, err := fsx.MD5File(ctx, p)
			if err != nil {
				return nil, &PackageFileError{Path: p, Err: err}
			}
			if sum != d.MD5Hash {
				return nil, &PackageFileError{Path: p, Err: &blobstore.DigestMismatchError{Expected: d.MD5Hash, Actual: sum}}
			}
		}
	}
	return out, nil
}

func isContentError(err error) bool {
	var dm *blobstore.DigestMismatchError
	return errors.As(err, &dm) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, errdefs.ErrDigestMismatch)
}

// PackageFileError: a file of the package is missing, of the wrong kind or wrong.
type PackageFileError struct {
	Path string
	Err  error
}

func (e *PackageFileError) Error() string {
	return fmt.Sprintf("package file %s: %v; remove the package dir and load again, or run `modelcache verify`", e.Path, e.Err)
}

func (e *PackageFileError) Unwrap() []error { return []error{e.Err, errdefs.ErrCorruptPackage} }

// verifyBlobLink checks a shared_blob handle as the reference does: a symlink,
// the blob a regular non-symlink file, same real path, MD5 equal.
func (s *Store) verifyBlobLink(ctx context.Context, handlePath string, d layout.Declaration, verified func(string) (fsx.FileID, bool)) error {
	fi, err := os.Lstat(handlePath)
	if err != nil {
		return &PackageFileError{Path: handlePath, Err: err}
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return &PackageFileError{Path: handlePath, Err: fmt.Errorf("a regular file sits where a link to blob %s belongs (`modelcache repair` moves it into shared-blobs)", d.MD5Hash)}
	}
	blob, err := s.blobs.Path(d.MD5Hash)
	if err != nil {
		return err
	}
	if !s.verifiedByThisLoad(blob, d.MD5Hash, verified) {
		sum, _, err := fsx.MD5File(ctx, blob)
		if err != nil {
			return &PackageFileError{Path: blob, Err: err}
		}
		if sum != d.MD5Hash {
			return &PackageFileError{Path: blob, Err: &blobstore.DigestMismatchError{Expected: d.MD5Hash, Actual: sum}}
		}
	}
	same, err := sameRealPath(handlePath, blob)
	if err != nil {
		return &PackageFileError{Path: handlePath, Err: err}
	}
	if !same {
		return &PackageFileError{Path: handlePath, Err: fmt.Errorf("link does not resolve to blob %s", blob)}
	}
	return nil
}

// verifiedByThisLoad reports whether blob is, unchanged, the file this
// load's download verified (Hooks.Verified).
func (s *Store) verifiedByThisLoad(blob, md5 string, verified func(string) (fsx.FileID, bool)) bool {
	if verified == nil {
		return false
	}
	want, ok := verified(md5)
	if !ok {
		return false
	}
	got, err := fsx.LstatID(blob)
	if err != nil || !got.IsRegular() || !got.Unchanged(want) {
		return false
	}
	s.log.Debug("blob verified while this load downloaded it; not read again", "md5", md5, "size", got.Size)
	return true
}

func sameRealPath(a, b string) (bool, error) {
	ra, err := filepath.EvalSymlinks(a)
	if err != nil {
		return false, err
	}
	rb, err := filepath.EvalSymlinks(b)
	if err != nil {
		return false, err
	}
	return ra == rb, nil
}

// linkBlob creates <pkg>/<handle> -> blob under the handle lock (§11.1).
func (s *Store) linkBlob(ctx context.Context, pkgDir string, d layout.Declaration) error {
	p, err := layout.HandlePath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	lp, err := layout.HandleLockPath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	blob, err := s.blobs.Path(d.MD5Hash)
	if err != nil {
		return err
	}
	if err := ensureHandleDirs(pkgDir, d.FileHandle); err != nil {
		return err
	}
	held, err := s.locks.Lock(ctx, lp)
	if err != nil {
		return err
	}
	defer held.Unlock()
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink == 0:
		// A regular file is never replaced by a link; step 6 reports it.
		return nil
	default:
		if same, _ := sameRealPath(p, blob); same {
			return nil
		}
	}
	target := blob
	if !s.absoluteLinks {
		if rel, err := fsx.RelativeLinkTarget(filepath.Dir(p), blob); err == nil {
			target = rel
		}
	}
	if err := fsx.ReplaceSymlink(target, p); err != nil {
		return err
	}
	if target != blob {
		if same, _ := sameRealPath(p, blob); !same {
			// The relative form does not resolve here (odd mounts): use the reference's form.
			return fsx.ReplaceSymlink(blob, p)
		}
	}
	return nil
}

// linkDependency creates model_dependencies/<name> -> realpath(dep dir) (§11.2).
func (s *Store) linkDependency(ctx context.Context, pkgDir string, d Dependency) error {
	lp, err := layout.DependencyLinkPath(pkgDir, d.Name)
	if err != nil {
		return err
	}
	lockPath, err := layout.DependencyLockPath(pkgDir, d.Name)
	if err != nil {
		return err
	}
	target, err := realDir(d.PackageDir)
	if err != nil {
		return err
	}
	if err := fsx.EnsureDir(filepath.Dir(lp), 0o777); err != nil {
		return err
	}
	held, err := s.locks.Lock(ctx, lockPath)
	if err != nil {
		return err
	}
	defer held.Unlock()
	fi, err := os.Lstat(lp)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink == 0:
		return &PackageFileError{Path: lp, Err: errors.New("not a symlink where a dependency link belongs")}
	default:
		if got, err := filepath.EvalSymlinks(lp); err == nil && got == target {
			return nil
		}
	}
	return fsx.ReplaceSymlink(target, lp)
}

func realDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if fi, err := os.Lstat(abs); err != nil {
		return "", err
	} else if fi.Mode()&fs.ModeSymlink != 0 {
		return "", &fsx.UnsafePathError{Op: "link dependency", Path: abs, Kind: fsx.ErrSymlink}
	}
	return filepath.EvalSymlinks(abs)
}

// dependencyIdentities reads each dependency's manifest (§6.3).
func dependencyIdentities(ctx context.Context, deps []Dependency) ([]manifest.DependencyPath, error) {
	out := make([]manifest.DependencyPath, 0, len(deps))
	for _, d := range deps {
		target, err := realDir(d.PackageDir)
		if err != nil {
			return nil, fmt.Errorf("dependency %q: %w", d.Name, err)
		}
		m, err := manifest.Read(ctx, target)
		if err != nil {
			return nil, fmt.Errorf("dependency %q: %w", d.Name, err)
		}
		if !m.Complete() || m.ModelID == nil || m.CanonicalModelID == nil || len(m.ModelDependencies) > 0 || len(m.DependencyPackagePaths) > 0 {
			return nil, &PackageFileError{Path: manifest.Path(target), Err: errors.New("dependency package must be a complete v4 package without dependencies of its own")}
		}
		out = append(out, manifest.DependencyPath{
			Name: d.Name, TargetPath: target,
			CacheModelID: *m.ModelID, CanonicalModelID: *m.CanonicalModelID,
			ModelPackageID: filepath.Base(target), PackageManifestHash: m.ContentHash(),
		})
	}
	return out, nil
}

// resolvedFiles lists what an auto-resolution entry records (§8.2).
func (s *Store) resolvedFiles(pkgDir string, spec manifest.Spec, deps []Dependency) ([]string, error) {
	set := map[string]bool{manifest.Path(pkgDir): true}
	for _, a := range spec.PackageArtifacts {
		p, err := layout.HandlePath(pkgDir, a.FileHandle)
		if err != nil {
			return nil, err
		}
		set[p] = true
		if a.Storage == manifest.StorageSharedBlob && a.MD5Hash != nil {
			b, err := s.home.BlobPath(*a.MD5Hash)
			if err != nil {
				return nil, err
			}
			set[b] = true
		}
	}
	for _, d := range deps {
		lp, err := layout.DependencyLinkPath(pkgDir, d.Name)
		if err != nil {
			return nil, err
		}
		set[lp] = true
		target, err := realDir(d.PackageDir)
		if err != nil {
			return nil, err
		}
		err = filepath.WalkDir(target, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if e.IsDir() {
				return nil
			}
			if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".lock") {
				return nil
			}
			set[p] = true
			if e.Type()&fs.ModeSymlink != 0 {
				t, err := os.Readlink(p)
				if err != nil {
					return err
				}
				// Recorded as an absolute path: the reference checks these with
				// os.path.exists, which would resolve a relative text against its CWD.
				if !filepath.IsAbs(t) {
					t = filepath.Join(filepath.Dir(p), t)
				}
				set[t] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}

// VerifyPackage re-checks a published package the way the full online path
// does (§7 step 6 and the dependency rules of §11.2) without changing
// anything: every blob link resolves to a blob with the recorded MD5, every
// package file has the recorded hash, every dependency link resolves to its
// recorded target whose manifest still has the recorded hash.
func (s *Store) VerifyPackage(ctx context.Context, pkgDir string) (*manifest.Manifest, error) {
	m, err := manifest.Read(ctx, pkgDir)
	if err != nil {
		return nil, err
	}
	if !m.Complete() {
		return m, &PackageFileError{Path: manifest.Path(pkgDir), Err: errors.New("not a v4 manifest: the package was never completely materialized")}
	}
	for _, a := range m.PackageArtifacts {
		p, err := layout.HandlePath(pkgDir, a.FileHandle)
		if err != nil {
			return m, err
		}
		d := layout.Declaration{FileHandle: a.FileHandle, Unhashed: a.Unhashed, Storage: layout.Storage(a.Storage)}
		if a.MD5Hash != nil {
			d.MD5Hash = *a.MD5Hash
		}
		switch {
		case a.Storage == manifest.StorageSharedBlob:
			if err := s.verifyBlobLink(ctx, p, d, nil); err != nil {
				return m, err
			}
		case a.SHA256Hash != nil:
			h := sha256.New()
			if _, err := fsx.StableHash(ctx, p, h); err != nil {
				return m, &PackageFileError{Path: p, Err: err}
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != *a.SHA256Hash {
				return m, &PackageFileError{Path: p, Err: fmt.Errorf("SHA-256 %s, recorded %s", got, *a.SHA256Hash)}
			}
		case a.MD5Hash != nil:
			sum, _, err := fsx.MD5File(ctx, p)
			if err != nil {
				return m, &PackageFileError{Path: p, Err: err}
			}
			if sum != *a.MD5Hash {
				return m, &PackageFileError{Path: p, Err: &blobstore.DigestMismatchError{Expected: *a.MD5Hash, Actual: sum}}
			}
		}
	}
	for _, dp := range m.DependencyPackagePaths {
		lp, err := layout.DependencyLinkPath(pkgDir, dp.Name)
		if err != nil {
			return m, err
		}
		got, err := filepath.EvalSymlinks(lp)
		if err != nil || got != dp.TargetPath {
			return m, &PackageFileError{Path: lp, Err: fmt.Errorf("dependency link resolves to %q (%v), recorded %q", got, err, dp.TargetPath)}
		}
		ids, err := dependencyIdentities(ctx, []Dependency{{Name: dp.Name, PackageDir: dp.TargetPath}})
		if err != nil {
			return m, err
		}
		if ids[0] != dp {
			return m, &PackageFileError{Path: lp, Err: fmt.Errorf("dependency %q changed since it was recorded", dp.Name)}
		}
	}
	return m, nil
}
