package meta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// LastUsedPath returns H/.meta/last-used/<slug(modelID)>/<packageID>: an
// empty file whose mtime is the last successful load of the package (atime
// is unreliable: noatime, relatime).
func LastUsedPath(home layout.Home, modelID, packageID string) (string, error) {
	slug, err := lastUsedName(modelID, packageID)
	if err != nil {
		return "", err
	}
	return filepath.Join(home.Meta(), LastUsedDir, slug, packageID), nil
}

func lastUsedName(modelID, packageID string) (slug string, err error) {
	if err := layout.ValidatePackageID(packageID); err != nil {
		return "", err
	}
	return layout.Slug(modelID)
}

// TouchLastUsed records a successful load of packageID of modelID (the
// package's cache owner, as its directory is named): the stamp's mtime
// becomes now. Callers skip it in OFFLINE_MODE (offline.md §7) and only log
// its errors: a stamp must never fail a load.
func TouchLastUsed(home layout.Home, modelID, packageID string) error {
	slug, err := lastUsedName(modelID, packageID)
	if err != nil {
		return err
	}
	d, err := ensureSub(home, LastUsedDir, slug)
	if err != nil {
		return fmt.Errorf("last-used stamp for %s/%s: %w", modelID, packageID, err)
	}
	defer d.Close()
	id, err := d.Lstat(packageID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := d.Create(packageID, os.O_WRONLY|os.O_EXCL, FilePerm)
		if err == nil {
			return f.Close()
		}
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("last-used stamp: %w", err)
		}
		// A concurrent load created it: touch it below.
	case err != nil:
		return fmt.Errorf("last-used stamp: %w", err)
	case !id.IsRegular():
		return &fsx.UnsafePathError{Op: "touch", Path: d.Join(packageID), Kind: kindOf(id)}
	}
	// utimensat with AT_SYMLINK_NOFOLLOW: a link swapped in meanwhile gets
	// its own times changed, never its target's.
	if err := d.SetTimes(packageID, time.Now()); err != nil {
		return fmt.Errorf("last-used stamp: %w", err)
	}
	return nil
}

// LastUsed returns the time of the last recorded load of a package.
func LastUsed(home layout.Home, modelID, packageID string) (time.Time, bool, error) {
	slug, err := lastUsedName(modelID, packageID)
	if err != nil {
		return time.Time{}, false, err
	}
	d, err := sub(home, LastUsedDir, slug)
	if d == nil || err != nil {
		return time.Time{}, false, err
	}
	defer d.Close()
	return StampTime(d, packageID)
}

// StampTime reads the last-used stamp name in an opened last-used/<slug>
// directory: (zero, false, nil) when there is none; a symlink or other
// non-regular file is refused.
func StampTime(d *fsx.Dir, name string) (time.Time, bool, error) {
	id, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	if !id.IsRegular() {
		return time.Time{}, false, &fsx.UnsafePathError{Op: "read", Path: d.Join(name), Kind: kindOf(id)}
	}
	return time.Unix(0, id.MtimeNS), true, nil
}

// RemoveLastUsed deletes the stamp of a purged package (a regular file only;
// a missing one is fine).
func RemoveLastUsed(home layout.Home, slug, packageID string) error {
	d, err := sub(home, LastUsedDir, slug)
	if d == nil || err != nil {
		return err
	}
	defer d.Close()
	id, err := d.Lstat(packageID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !id.IsRegular() {
		return &fsx.UnsafePathError{Op: "remove", Path: d.Join(packageID), Kind: kindOf(id)}
	}
	if err := d.Remove(packageID); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func kindOf(id fsx.FileID) error {
	if id.Mode&fs.ModeSymlink != 0 {
		return fsx.ErrSymlink
	}
	return fsx.ErrNotRegular
}
