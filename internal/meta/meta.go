// Package meta owns the Go-only bookkeeping under H/.meta (on-disk contract
// §12). The reference ignores this directory; every record here is a hint or
// a guard of our own, so a lost record costs work (a re-hash), never
// correctness. Layout, one kind of record per name:
//
//	.meta/gc.lock                      store-wide lock of gc and purge
//	.meta/verified.log                 verified records, append-only (Verified)
//	.meta/verified/<md5>               verified records of older releases (read, migrated)
//	.meta/last-used/<slug>/<package>   empty file, mtime = last successful load
//	.meta/leases/<token>.json          work in flight that GC must not collect
//	.meta/pins/<slug>/<package>.json   reserved: packages kept whatever GC decides
//	.meta/<other>/                     reserved for other owners (e.g. guard/)
//
// Every access goes through descriptors opened without following links
// (fsx.Dir): a symlink at .meta or at any name below it is refused, so no
// record is ever read from or written outside H.
package meta

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// Names under H/.meta.
const (
	DirName        = ".meta"
	GCLockName     = "gc.lock"
	VerifiedLog    = "verified.log"
	LegacyVerified = "verified"
	LastUsedDir    = "last-used"
	LeasesDir      = "leases"
	PinsDir        = "pins"
)

const (
	// FilePerm: bookkeeping is readable by every user of a shared cache, as
	// manifests and entries are (§3).
	FilePerm os.FileMode = 0o644
	dirPerm  os.FileMode = 0o777
	// maxRecord bounds what is read from one small record (a lease, a legacy
	// verified record); real ones are a few hundred bytes.
	maxRecord = 1 << 20
)

// Open opens H/.meta for reading: (nil, nil) when H or .meta does not exist;
// a symlink or non-directory at .meta is refused (*fsx.UnsafePathError).
// Close the result.
func Open(home layout.Home) (*fsx.Dir, error) {
	root, err := fsx.OpenRoot(home.Root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer root.Close()
	d, err := root.Sub(DirName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return d, err
}

// Ensure opens H/.meta, creating it (not H) when missing; a symlink there is
// refused. Close the result.
func Ensure(home layout.Home) (*fsx.Dir, error) {
	root, err := fsx.OpenRoot(home.Root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.EnsureSub(DirName, dirPerm)
}

// sub opens .meta/<names...> for reading; (nil, nil) when a level is missing.
func sub(home layout.Home, names ...string) (*fsx.Dir, error) {
	d, err := Open(home)
	if d == nil || err != nil {
		return nil, err
	}
	for _, n := range names {
		next, err := d.Sub(n)
		d.Close()
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		d = next
	}
	return d, nil
}

// ensureSub opens .meta/<names...>, creating missing levels.
func ensureSub(home layout.Home, names ...string) (*fsx.Dir, error) {
	d, err := Ensure(home)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		next, err := d.EnsureSub(n, dirPerm)
		d.Close()
		if err != nil {
			return nil, err
		}
		d = next
	}
	return d, nil
}

// ErrOffline is returned by writers while OFFLINE_MODE is on (callers check
// the mode; this is the error they return).
func ErrOffline(op string) error {
	return fmt.Errorf("%s: %w: OFFLINE_MODE is on, and nothing under INFERENCE_HOME is changed then; run it online", op, errdefs.ErrOffline)
}
