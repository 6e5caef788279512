package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// UnsafeLayoutError reports a directory of the cache that is a symlink (or
// not a directory) where a real directory belongs: nothing below it is
// served, read or written, since it may lead out of INFERENCE_HOME.
type UnsafeLayoutError struct {
	Path string
	// Target is the link text when Path is a symlink.
	Target string
	Err    error
}

func (e *UnsafeLayoutError) Error() string {
	what := "is not a directory"
	if errors.Is(e.Err, fsx.ErrSymlink) {
		what = "is a symlink to " + e.Target
	}
	return fmt.Sprintf("%s %s: modelcache never serves or writes through it (it may lead out of the cache); "+
		"replace it by a real directory or remove it", e.Path, what)
}

func (e *UnsafeLayoutError) Unwrap() error { return e.Err }

// CheckPackageDir is the one rule every reader of a cached package applies
// before serving it: packageDir must be H/models-cache/<slug>/<package id>
// and models-cache, shared-blobs, the model dir and the package dir must be
// real directories, not symlinks (lstat each: a few microseconds). A
// missing directory is not an error here (the caller finds the package
// missing); anything else gives *UnsafeLayoutError (errors.Is ErrSymlink or
// ErrNotDir), or an error when packageDir is not a package dir of home.
func CheckPackageDir(home layout.Home, packageDir string) error {
	root := filepath.Clean(home.Root)
	rel, err := filepath.Rel(root, filepath.Clean(packageDir))
	parts := strings.Split(rel, string(filepath.Separator))
	if err != nil || len(parts) != 3 || parts[0] != "models-cache" || parts[1] == ".." {
		return fmt.Errorf("%s is not a package directory of the cache %s", packageDir, home.Root)
	}
	for _, p := range []string{home.ModelsCache(), home.SharedBlobs(), filepath.Join(root, parts[0], parts[1]), filepath.Clean(packageDir)} {
		if err := checkRealDir(p); err != nil {
			return err
		}
	}
	return nil
}

// CheckTopLevel checks the cache's own top-level directories (models-cache,
// shared-blobs, auto-resolution-cache, offline-weights-registry, .meta)
// that exist: every one must be a real directory.
func CheckTopLevel(home layout.Home) error {
	for _, p := range []string{home.ModelsCache(), home.SharedBlobs(), home.AutoResolutionCache(), home.OfflineRegistry(), home.Meta()} {
		if err := checkRealDir(p); err != nil {
			return err
		}
	}
	return nil
}

// CheckRealDirs applies the same rule to the given paths (missing ones pass).
func CheckRealDirs(paths ...string) error {
	for _, p := range paths {
		if err := checkRealDir(p); err != nil {
			return err
		}
	}
	return nil
}

func checkRealDir(p string) error {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return &UnsafeLayoutError{Path: p, Target: target, Err: fsx.ErrSymlink}
	case !fi.IsDir():
		return &UnsafeLayoutError{Path: p, Err: fsx.ErrNotDir}
	}
	return nil
}
