package materialize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/metadata"
)

// verifyFiles is step 6: re-hash everything. A blob that fails is repaired
// once (renamed aside, deleted, fetched again), an improvement the reference
// cannot see. It returns the full artefact identities (SHA-256 of unhashed files).
func (s *Store) verifyFiles(ctx context.Context, pkgDir string, decls []layout.Declaration, arts []metadata.Artifact, t *transfer) ([]manifest.Artifact, error) {
	out := declaredArtifacts(decls)
	for i, d := range decls {
		p, err := layout.HandlePath(pkgDir, d.FileHandle)
		if err != nil {
			return nil, err
		}
		switch {
		case d.Storage == layout.StorageSharedBlob:
			err := s.verifyBlobLink(ctx, p, d, t)
			if err != nil && t.src != nil && isContentError(err) {
				s.log.Warn("blob failed verification; repairing", "md5", d.MD5Hash, "handle", d.FileHandle, "err", err)
				if _, rerr := s.blobs.Repair(ctx, d.MD5Hash); rerr != nil {
					return nil, fmt.Errorf("repair blob %s: %w (after: %v)", d.MD5Hash, rerr, err)
				}
				err = t.ensure(ctx, []metadata.Artifact{artifactFor(arts, d.FileHandle)})
				if err == nil {
					if err = s.linkBlob(ctx, pkgDir, d); err == nil {
						err = s.verifyBlobLink(ctx, p, d, t)
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
func (s *Store) verifyBlobLink(ctx context.Context, handlePath string, d layout.Declaration, t *transfer) error {
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
	if !s.verifiedByThisLoad(blob, d.MD5Hash, t) {
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
// load's source verified as it published it (Source.EnsureBlobs).
func (s *Store) verifiedByThisLoad(blob, md5 string, t *transfer) bool {
	if t == nil {
		return false
	}
	want, ok := t.verifiedByUs(md5)
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
