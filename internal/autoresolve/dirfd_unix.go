//go:build unix

package autoresolve

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/modelcache/modelcache/internal/fsx"
	"golang.org/x/sys/unix"
)

// dir is the cache directory opened with O_NOFOLLOW: every later lookup,
// read and unlink goes through this descriptor (*at syscalls), so swapping
// the directory for a symlink after the check cannot redirect us.
type dir struct {
	fd   int
	path string
}

func openDir(path string) (*dir, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	switch {
	case err == nil:
		return &dir{fd: fd, path: path}, nil
	case errors.Is(err, unix.ENOENT):
		return nil, &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	case errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOTDIR):
		return nil, &SymlinkError{Path: path, What: "auto-resolution cache directory"}
	}
	return nil, &fs.PathError{Op: "open", Path: path, Err: err}
}

func (d *dir) close() { unix.Close(d.fd) }

// stillAtPath reports whether d.path still names the directory we opened
// (not swapped for a symlink or another directory). Lock files are opened by
// path, so callers check this right before locking.
func (d *dir) stillAtPath() bool {
	var byPath, byFD unix.Stat_t
	if err := retryEINTR(func() error { return unix.Lstat(d.path, &byPath) }); err != nil {
		return false
	}
	if err := retryEINTR(func() error { return unix.Fstat(d.fd, &byFD) }); err != nil {
		return false
	}
	return byPath.Mode&unix.S_IFMT == unix.S_IFDIR && byPath.Dev == byFD.Dev && byPath.Ino == byFD.Ino
}

// stat is the part of a stat result the cache compares.
type stat struct {
	dev, ino      uint64
	size          int64
	mtimeNS       int64
	ctimeNS       int64
	regular, link bool
}

func (s stat) unchanged(o stat) bool {
	return s.dev == o.dev && s.ino == o.ino && s.size == o.size && s.mtimeNS == o.mtimeNS && s.ctimeNS == o.ctimeNS
}

func statFrom(st *unix.Stat_t) stat {
	return stat{
		dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtimeNS: st.Mtim.Nano(), ctimeNS: st.Ctim.Nano(),
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG,
		link:    st.Mode&unix.S_IFMT == unix.S_IFLNK,
	}
}

// lstat stats name in the directory without following a symlink; a missing
// name gives an error matching fs.ErrNotExist.
func (d *dir) lstat(name string) (stat, error) {
	var st unix.Stat_t
	err := retryEINTR(func() error { return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) })
	if errors.Is(err, unix.ENOENT) {
		return stat{}, &fs.PathError{Op: "lstat", Path: d.path + "/" + name, Err: fs.ErrNotExist}
	}
	if err != nil {
		return stat{}, &fs.PathError{Op: "lstat", Path: d.path + "/" + name, Err: err}
	}
	return statFrom(&st), nil
}

// readFile reads the regular file name (O_NOFOLLOW, non-blocking open so a
// FIFO cannot hang us) and returns its bytes with the fstat taken right after
// opening and after reading. Files larger than limit are refused.
func (d *dir) readFile(name string, limit int64) (data []byte, opened, after stat, err error) {
	var fd int
	err = retryEINTR(func() (err error) {
		fd, err = unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		return nil, stat{}, stat{}, &fs.PathError{Op: "open", Path: d.path + "/" + name, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path+"/"+name)
	defer f.Close()
	fst := func() (stat, error) {
		var st unix.Stat_t
		if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
			return stat{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
		}
		return statFrom(&st), nil
	}
	if opened, err = fst(); err != nil {
		return nil, stat{}, stat{}, err
	}
	if !opened.regular {
		return nil, stat{}, stat{}, fmt.Errorf("%s is not a regular file", f.Name())
	}
	if opened.size > limit {
		return nil, stat{}, stat{}, fmt.Errorf("%s is implausibly large (%d bytes)", f.Name(), opened.size)
	}
	data, err = fsx.ReadAllSized(f, opened.size, limit)
	if err != nil {
		return nil, stat{}, stat{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if after, err = fst(); err != nil {
		return nil, stat{}, stat{}, err
	}
	return data, opened, after, nil
}

// unlink removes name from the directory (never a directory, never through
// a symlinked parent: the descriptor pins the real directory).
func (d *dir) unlink(name string) error {
	err := retryEINTR(func() error { return unix.Unlinkat(d.fd, name, 0) })
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "unlink", Path: d.path + "/" + name, Err: err}
	}
	return nil
}

// names lists the directory.
func (d *dir) names() ([]string, error) {
	// A fresh open of "." (not dup) so that each listing has its own offset.
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: d.path, Err: err}
	}
	f := os.NewFile(uintptr(fd), d.path)
	defer f.Close()
	return f.Readdirnames(-1)
}

func retryEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
