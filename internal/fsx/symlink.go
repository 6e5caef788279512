package fsx

import (
	"os"
	"path/filepath"
)

// ReplaceSymlink makes path a symlink to target atomically: a symlink under a
// temp name ".<base>.link-<token>" renamed over path. Whatever path pointed
// to before is never touched.
func ReplaceSymlink(target, path string) error {
	tok, err := HexToken()
	if err != nil {
		return err
	}
	dir, base := filepath.Split(path)
	tmp := filepath.Join(dir, "."+base+".link-"+tok)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(dir)
}

// RelativeLinkTarget is the link text that makes a link in linkDir resolve to
// target, computed from real paths so that a symlinked directory on either
// side does not make the relative form resolve elsewhere.
func RelativeLinkTarget(linkDir, target string) (string, error) {
	rd, err := filepath.EvalSymlinks(linkDir)
	if err != nil {
		return "", err
	}
	rt, err := filepath.EvalSymlinks(filepath.Dir(target))
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(rd, rt)
	if err != nil {
		return "", err
	}
	return filepath.Join(rel, filepath.Base(target)), nil
}
