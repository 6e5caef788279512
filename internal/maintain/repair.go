package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
)

// handleParentsSafe refuses a nested handle whose parent directories are not
// real directories inside the package dir: an lstat of the handle would
// otherwise follow a planted directory link out of the cache.
func handleParentsSafe(pkgDir, handle string) error {
	dir := pkgDir
	segs := strings.Split(handle, "/")
	for _, s := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, s)
		fi, err := os.Lstat(dir)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &fsx.UnsafePathError{Op: "enter", Path: dir, Kind: kindOf(fi)}
		}
	}
	return nil
}

// materializationLockPath is <model dir>/.<package id>.materialization.lock.
func materializationLockPath(p *pkgScan) string {
	return filepath.Join(filepath.Dir(p.Dir), "."+p.PackageID+".materialization.lock")
}

// repairPackage fixes findings of one package under its materialization
// lock, so that no load materializes it meanwhile. Findings are updated in
// place.
func (v *verifier) repairPackage(ctx context.Context, p *pkgScan, findings []Finding) {
	m := v.m
	held, err := m.c.Locks.Lock(ctx, materializationLockPath(p))
	if err != nil {
		for i := range findings {
			findings[i].Action = "not repaired: " + err.Error()
		}
		return
	}
	defer m.unlock(held)
	arts := map[string]manifest.Artifact{}
	deps := map[string]manifest.DependencyPath{}
	if p.Manifest != nil {
		for _, a := range p.Manifest.PackageArtifacts {
			arts[a.FileHandle] = a
		}
		for _, d := range p.Manifest.DependencyPackagePaths {
			deps[filepath.Join(layout.DependenciesDir, d.Name)] = d
		}
	}
	for i := range findings {
		f := &findings[i]
		if err := ctx.Err(); err != nil {
			f.Action = "not repaired: " + err.Error()
			continue
		}
		var action string
		var err error
		switch f.Kind {
		case FindWrongLink, FindOutsideLink:
			if f.MD5 == "" {
				continue // undeclared link: report only
			}
			v.checkBlob(ctx, f.MD5)
			if v.blobOK[f.MD5] != nil {
				action = "not repaired: blob " + f.MD5 + " is missing or bad; the next online load downloads it and fixes the link"
				break
			}
			if err = m.relink(ctx, p.Dir, f.Handle, f.MD5, false); err == nil {
				f.Repaired, action = true, "re-linked to blob "+f.MD5+" (the old link's target was not touched)"
			}
		case FindFileInLinkPlace:
			action, err = v.adoptFile(ctx, p.Dir, f)
		case FindFileMismatch:
			if a, ok := arts[f.Handle]; ok && a.Unhashed {
				if err = removeAside(f.Path); err == nil {
					f.Repaired, action = true, "moved aside and deleted; the next online load downloads it again"
				}
			} else {
				action = "not repaired: a local package file cannot be downloaded again; reinstall the package"
			}
		case FindDependency:
			d, ok := deps[f.Handle]
			if !ok {
				continue
			}
			if err = m.relinkDependency(ctx, p.Dir, d); err == nil {
				f.Repaired, action = true, "re-pointed at "+d.TargetPath
			}
		default:
			continue
		}
		if err != nil {
			action = "not repaired: " + err.Error()
		}
		f.Action = action
	}
}

// adoptFile handles a regular file in a blob link's place: with the right
// MD5 it becomes the blob (renamed into shared-blobs, or dropped when the
// blob already exists) and the handle a link; with the wrong one it is
// corrupt and goes.
func (v *verifier) adoptFile(ctx context.Context, pkgDir string, f *Finding) (string, error) {
	m := v.m
	sum, sha, id, err := hashFile(ctx, f.Path)
	if err != nil {
		return "", err
	}
	if sum != f.MD5 {
		if err := removeAside(f.Path); err != nil {
			return "", err
		}
		f.Repaired = true
		return fmt.Sprintf("content has MD5 %s, not %s: moved aside and deleted; the next online load downloads it", sum, f.MD5), nil
	}
	v.checkBlob(ctx, f.MD5) // a corrupt existing blob is removed first (with Repair)
	held, err := m.c.Blobs.Lock(ctx, f.MD5)
	if err != nil {
		return "", err
	}
	blobPath, _ := m.c.Blobs.Path(f.MD5)
	moved := false
	has, err := m.c.Blobs.Has(f.MD5)
	if err == nil && !has {
		if now, lerr := fsx.LstatID(f.Path); lerr != nil || !id.Unchanged(now) {
			m.unlock(held)
			return "", fmt.Errorf("%s changed while being adopted", f.Path)
		}
		switch rerr := fsx.RenameNoReplace(f.Path, blobPath); {
		case rerr == nil:
			moved = true
			err = errors.Join(fsx.SyncDir(filepath.Dir(blobPath)), fsx.SyncDir(filepath.Dir(f.Path)))
		case errors.Is(rerr, fs.ErrExist):
			// Published concurrently: ours is a duplicate.
		default:
			// Another filesystem: copy through the verified publish path.
			var src *os.File
			if src, err = fsx.OpenNoFollow(f.Path); err == nil {
				_, err = m.c.Blobs.Put(ctx, f.MD5, src, id.Size, blobfs.WithHeldLock(held))
				src.Close()
			}
		}
	}
	m.unlock(held)
	if err != nil {
		return "", err
	}
	if moved && !m.offline() {
		if serr := WriteVerifiedStamp(m.home, NewVerifiedStamp(f.MD5, sha, id, m.now())); serr != nil {
			m.log.Warn("writing verified stamp failed", "md5", f.MD5, "err", serr)
		}
	}
	v.blobOK[f.MD5] = nil
	if err := m.relink(ctx, pkgDir, f.Handle, f.MD5, true); err != nil {
		return "", err
	}
	f.Repaired = true
	if moved {
		return "moved into shared-blobs and linked", nil
	}
	return "blob already present: the duplicate file was replaced by a link", nil
}

// relink makes <pkg>/<handle> a link to the blob under the handle lock
// (§11.1): relative target from real paths, verified, absolute fallback.
// A regular file at the handle is replaced only when replaceFile is set
// (adoptFile, after the file's MD5 matched).
func (m *Maintainer) relink(ctx context.Context, pkgDir, handle, md5 string, replaceFile bool) error {
	p, err := layout.HandlePath(pkgDir, handle)
	if err != nil {
		return err
	}
	lp, err := layout.HandleLockPath(pkgDir, handle)
	if err != nil {
		return err
	}
	blob, err := m.c.Blobs.Path(md5)
	if err != nil {
		return err
	}
	if err := handleParentsSafe(pkgDir, handle); err != nil {
		return err
	}
	held, err := m.c.Locks.Lock(ctx, lp)
	if err != nil {
		return err
	}
	defer m.unlock(held)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case fi.Mode().IsRegular() && !replaceFile:
		return fmt.Errorf("%s became a regular file; run verify again", p)
	case !fi.Mode().IsRegular() && fi.Mode()&fs.ModeSymlink == 0:
		return &fsx.UnsafePathError{Op: "link", Path: p, Kind: kindOf(fi)}
	}
	target := blob
	if rel, err := fsx.RelativeLinkTarget(filepath.Dir(p), blob); err == nil {
		target = rel
	}
	if err := fsx.ReplaceSymlink(target, p); err != nil {
		return err
	}
	if same, _ := sameRealPath(p, blob); !same {
		return fsx.ReplaceSymlink(blob, p)
	}
	return nil
}

// relinkDependency re-points model_dependencies/<name> at the recorded
// target when that is a real package dir inside the cache whose manifest
// still has the recorded hash.
func (m *Maintainer) relinkDependency(ctx context.Context, pkgDir string, d manifest.DependencyPath) error {
	link, err := layout.DependencyLinkPath(pkgDir, d.Name)
	if err != nil {
		return err
	}
	lp, err := layout.DependencyLockPath(pkgDir, d.Name)
	if err != nil {
		return err
	}
	if !within(d.TargetPath, realOr(m.home.Root)) {
		return fmt.Errorf("recorded target %s is outside the cache", d.TargetPath)
	}
	fi, err := os.Lstat(d.TargetPath)
	if err != nil {
		return fmt.Errorf("recorded target: %w", err)
	}
	if !fi.IsDir() {
		return &fsx.UnsafePathError{Op: "link dependency", Path: d.TargetPath, Kind: kindOf(fi)}
	}
	mf, err := manifest.Read(ctx, d.TargetPath)
	if err != nil {
		return fmt.Errorf("recorded target: %w", err)
	}
	if mf.ContentHash() != d.PackageManifestHash {
		return fmt.Errorf("the dependency at %s changed since this package was published; purge this package to re-materialize it", d.TargetPath)
	}
	depDir := filepath.Dir(link)
	if dfi, err := os.Lstat(depDir); err != nil || !dfi.IsDir() {
		if err == nil {
			err = &fsx.UnsafePathError{Op: "link dependency", Path: depDir, Kind: kindOf(dfi)}
		}
		return err
	}
	held, err := m.c.Locks.Lock(ctx, lp)
	if err != nil {
		return err
	}
	defer m.unlock(held)
	if lfi, err := os.Lstat(link); err == nil && lfi.Mode()&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symlink; remove it by hand", link)
	}
	return fsx.ReplaceSymlink(d.TargetPath, link)
}

// removeAside deletes a regular file with proven-wrong content: renamed to
// .<name>.corrupt-<token> first so no reader opens it by name meanwhile.
func removeAside(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &fsx.UnsafePathError{Op: "remove", Path: path, Kind: kindOf(fi)}
	}
	tok, err := fsx.HexToken()
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	aside := filepath.Join(dir, "."+base+".corrupt-"+tok)
	if err := os.Rename(path, aside); err != nil {
		return err
	}
	if err := os.Remove(aside); err != nil {
		return err
	}
	return fsx.SyncDir(dir)
}
