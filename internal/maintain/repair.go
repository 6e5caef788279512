package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/meta"
)

// materializationLockPath is <model dir>/.<package id>.materialization.lock.
func materializationLockPath(p *pkgScan) string {
	return filepath.Join(filepath.Dir(p.Dir), "."+p.PackageID+".materialization.lock")
}

// repairPackage fixes findings of one package under its materialization
// lock, so that no load materializes it meanwhile. Findings are updated in
// place. Every change is made through descriptors of the package's real
// directories (never through a link), so nothing outside H is written.
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
			deps[layout.DependenciesDir+"/"+d.Name] = d
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
			if v.verdict(ctx, f.MD5) != nil {
				action = "not repaired: blob " + f.MD5 + " is missing or bad; the next online load downloads it and fixes the link"
				break
			}
			if err = v.relink(ctx, p, f.Handle, f.MD5, false); err == nil {
				f.Repaired, action = true, "re-linked to blob "+f.MD5+" (the old link's target was not touched)"
			}
		case FindFileInLinkPlace:
			action, err = v.adoptFile(ctx, p, f)
		case FindFileMismatch:
			if a, ok := arts[f.Handle]; ok && a.Unhashed {
				if err = v.removeAside(p, f.Handle); err == nil {
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
			if err = v.relinkDependency(ctx, p, d); err == nil {
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
func (v *verifier) adoptFile(ctx context.Context, p *pkgScan, f *Finding) (string, error) {
	m := v.m
	sum, sha, id, err := v.hashFile(ctx, p, f.Handle)
	if err != nil {
		return "", err
	}
	if sum != f.MD5 {
		if err := v.removeAside(p, f.Handle); err != nil {
			return "", err
		}
		f.Repaired = true
		return fmt.Sprintf("content has MD5 %s, not %s: moved aside and deleted; the next online load downloads it", sum, f.MD5), nil
	}
	v.verdict(ctx, f.MD5) // a corrupt existing blob is removed first (with Repair)
	blobs := v.inv.t.dir(topBlobs)
	if blobs == nil {
		return "", fmt.Errorf("%s is missing or not a real directory", m.home.SharedBlobs())
	}
	held, err := m.c.Blobs.Lock(ctx, f.MD5)
	if err != nil {
		return "", err
	}
	d, closeDir, name, err := v.inv.t.openHandleDir(p, f.Handle)
	if err != nil {
		m.unlock(held)
		return "", err
	}
	defer closeDir()
	moved := false
	_, err = blobs.Lstat(f.MD5)
	if errors.Is(err, fs.ErrNotExist) {
		if now, lerr := d.Lstat(name); lerr != nil || !id.Unchanged(now) {
			m.unlock(held)
			return "", fmt.Errorf("%s changed while being adopted", f.Path)
		}
		switch rerr := d.RenameNoReplace(name, blobs, f.MD5); {
		case rerr == nil:
			moved = true
			err = errors.Join(blobs.Sync(), d.Sync())
		case errors.Is(rerr, fs.ErrExist):
			err = nil // published concurrently: ours is a duplicate
		case errors.Is(rerr, syscall.EXDEV):
			// Another filesystem: copy through the verified publish path.
			src, oerr := d.Open(name)
			err = oerr
			if oerr == nil {
				_, err = m.c.Blobs.Put(ctx, f.MD5, src, id.Size, blobfs.WithHeldLock(held))
				src.Close()
			}
		default:
			err = rerr
		}
	}
	m.unlock(held)
	if err != nil {
		return "", err
	}
	if moved && !m.offline() {
		if serr := meta.AppendVerified(m.home, false, meta.NewVerified(f.MD5, sha, id, m.now())); serr != nil {
			m.log.Warn("writing verified record failed", "md5", f.MD5, "err", serr)
		}
	}
	v.mu.Lock()
	v.blobOK[f.MD5] = nil
	v.mu.Unlock()
	if err := v.relink(ctx, p, f.Handle, f.MD5, true); err != nil {
		return "", err
	}
	f.Repaired = true
	if moved {
		return "moved into shared-blobs and linked", nil
	}
	return "blob already present: the duplicate file was replaced by a link", nil
}

// relink makes <pkg>/<handle> a link to the blob under the handle lock
// (§11.1). The text is relative ("../" per level up to H, then
// shared-blobs/<md5>): every directory on the way is a real one, so that is
// where it resolves; it is checked after creation. A regular file at the
// handle is replaced only when replaceFile is set (adoptFile, after the
// file's MD5 matched).
func (v *verifier) relink(ctx context.Context, p *pkgScan, handle, md5 string, replaceFile bool) error {
	m := v.m
	if !md5NameRE.MatchString(md5) {
		return fmt.Errorf("relink: %q is not an md5", md5)
	}
	d, closeDir, name, err := v.inv.t.openHandleDir(p, handle)
	if err != nil {
		return err
	}
	defer closeDir()
	held, err := m.c.Locks.Lock(ctx, d.Join("."+name+".lock"))
	if err != nil {
		return err
	}
	defer m.unlock(held)
	id, err := d.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case id.IsRegular() && !replaceFile:
		return fmt.Errorf("%s became a regular file; run verify again", d.Join(name))
	case !id.IsRegular() && id.Mode&fs.ModeSymlink == 0:
		return &fsx.UnsafePathError{Op: "link", Path: d.Join(name), Kind: kindOfMode(id.Mode)}
	}
	pos := p.Rel
	if dir := filepath.Dir(handle); dir != "." {
		pos += "/" + dir
	}
	target := strings.Repeat("../", strings.Count(pos, "/")+1) + topBlobs + "/" + md5
	if err := d.ReplaceSymlink(target, name); err != nil {
		return err
	}
	if li := v.inv.t.classifyLink(pos, target); !li.OurBlob || li.BlobMD5 != md5 {
		return fmt.Errorf("the new link %s -> %s does not lead to blob %s", d.Join(name), target, md5)
	}
	return nil
}

// relinkDependency re-points model_dependencies/<name> at the recorded
// target when that is a real package dir inside the cache whose manifest
// still has the recorded hash.
func (v *verifier) relinkDependency(ctx context.Context, p *pkgScan, dp manifest.DependencyPath) error {
	m := v.m
	if _, err := layout.DependencyLinkPath(p.Dir, dp.Name); err != nil {
		return err
	}
	rel, inside := v.inv.relOf(dp.TargetPath)
	if !inside {
		return fmt.Errorf("recorded target %s is outside the cache", dp.TargetPath)
	}
	target, err := v.inv.t.openRel(rel)
	if err != nil {
		return fmt.Errorf("recorded target: %w", err)
	}
	target.Close()
	h, err := v.inv.manifestHashAt(rel)
	if err != nil {
		return fmt.Errorf("recorded target: %w", err)
	}
	if h != dp.PackageManifestHash {
		return fmt.Errorf("the dependency at %s changed since this package was published; purge this package to re-materialize it", dp.TargetPath)
	}
	d, closeDir, name, err := v.inv.t.openHandleDir(p, layout.DependenciesDir+"/"+dp.Name)
	if err != nil {
		return err
	}
	defer closeDir()
	held, err := m.c.Locks.Lock(ctx, d.Join("."+name+".lock"))
	if err != nil {
		return err
	}
	defer m.unlock(held)
	if id, err := d.Lstat(name); err == nil && id.Mode&fs.ModeSymlink == 0 {
		return fmt.Errorf("%s is not a symlink; remove it by hand", d.Join(name))
	}
	return d.ReplaceSymlink(dp.TargetPath, name)
}

// removeAside deletes a regular file of a package with proven-wrong content:
// renamed to .<name>.corrupt-<token> first so no reader opens it by name
// meanwhile.
func (v *verifier) removeAside(p *pkgScan, handle string) error {
	d, closeDir, name, err := v.inv.t.openHandleDir(p, handle)
	if err != nil {
		return err
	}
	defer closeDir()
	id, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !id.IsRegular() {
		return &fsx.UnsafePathError{Op: "remove", Path: d.Join(name), Kind: kindOfMode(id.Mode)}
	}
	tok, err := fsx.HexToken()
	if err != nil {
		return err
	}
	aside := "." + name + ".corrupt-" + tok
	if err := d.Rename(name, d, aside); err != nil {
		return err
	}
	if err := d.Remove(aside); err != nil {
		return err
	}
	return d.Sync()
}
