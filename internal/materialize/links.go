package materialize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
)

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
