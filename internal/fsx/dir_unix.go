//go:build linux || darwin || freebsd || netbsd || openbsd

package fsx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Dir is an open directory that anchors no-follow, descriptor-relative file
// operations (openat, fstatat, readlinkat, unlinkat, renameat, symlinkat):
// every name given to its methods is a single path component resolved in the
// directory the descriptor refers to, and a symlink at that name is never
// followed. A tree walked with Sub therefore never leaves the directory it
// started from, whatever links are planted in it or swapped in meanwhile.
//
// A Dir is safe for concurrent use; Close it once.
type Dir struct {
	// fd is a raw descriptor: no *os.File, whose creation costs an fcntl and
	// a finalizer per directory of a walk.
	fd   int
	path string
	// listed: Entries ran before (the offset must be rewound).
	listed atomic.Bool
}

// OpenRoot opens path as the anchor of a tree. Symlinks in path itself are
// followed (the cache root is used as written, on-disk contract §1.1); below
// it, only Sub and the other methods are used.
func OpenRoot(path string) (*Dir, error) {
	fd, err := openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open directory", Path: path, Err: err}
	}
	return &Dir{fd: fd, path: path}, nil
}

func openat(dirfd int, name string, flags int, perm uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, perm)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Path is the directory's path as it was reached (for messages and for
// callers that still need a path, such as lock files).
func (d *Dir) Path() string { return d.path }

// Join returns the path of name in d (for messages).
func (d *Dir) Join(name string) string {
	if strings.HasSuffix(d.path, "/") {
		return d.path + name
	}
	return d.path + "/" + name
}

// Close releases the descriptor.
func (d *Dir) Close() error { return unix.Close(d.fd) }

func (d *Dir) checkName(op, name string) error {
	if !validName(name) {
		return &fs.PathError{Op: op, Path: d.Join(name), Err: fs.ErrInvalid}
	}
	return nil
}

// classify turns the error of a no-follow open into *UnsafePathError when
// name is a symlink (ErrSymlink) or, for a directory open, not a directory
// (ErrNotDir).
func (d *Dir) classify(op, name string, err error, wantDir bool) error {
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) || errors.Is(err, unix.ENOTDIR) || isEFTYPE(err) {
		if id, serr := d.Lstat(name); serr == nil {
			switch {
			case id.Mode&fs.ModeSymlink != 0:
				return &UnsafePathError{Op: op, Path: d.Join(name), Kind: ErrSymlink}
			case wantDir && !id.Mode.IsDir():
				return &UnsafePathError{Op: op, Path: d.Join(name), Kind: ErrNotDir}
			}
		}
	}
	return &fs.PathError{Op: op, Path: d.Join(name), Err: err}
}

// Sub opens the directory name in d without following a symlink at name:
// a symlink gives *UnsafePathError (ErrSymlink), another type ErrNotDir, a
// missing name an error matching fs.ErrNotExist.
func (d *Dir) Sub(name string) (*Dir, error) {
	if err := d.checkName("open directory", name); err != nil {
		return nil, err
	}
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, d.classify("open directory", name, err, true)
	}
	return &Dir{fd: fd, path: d.Join(name)}, nil
}

// SubPath opens rel ("a/b/c", no "." or ".." components) one component at a
// time with Sub.
func (d *Dir) SubPath(rel string) (*Dir, error) {
	cur := d
	for _, name := range strings.Split(rel, "/") {
		next, err := cur.Sub(name)
		if cur != d {
			cur.Close()
		}
		if err != nil {
			return nil, err
		}
		cur = next
	}
	if cur == d {
		return nil, &fs.PathError{Op: "open directory", Path: d.Join(rel), Err: fs.ErrInvalid}
	}
	return cur, nil
}

// Stat returns the identity of the directory itself.
func (d *Dir) Stat() (FileID, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(d.fd, &st) }); err != nil {
		return FileID{}, &fs.PathError{Op: "fstat", Path: d.path, Err: err}
	}
	return idFromStat(&st), nil
}

// Lstat returns the identity of name in d (fstatat, AT_SYMLINK_NOFOLLOW).
func (d *Dir) Lstat(name string) (FileID, error) {
	if err := d.checkName("lstat", name); err != nil {
		return FileID{}, err
	}
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
		return FileID{}, &fs.PathError{Op: "lstat", Path: d.Join(name), Err: err}
	}
	return idFromStat(&st), nil
}

// Readlink returns the text of the symlink name in d.
func (d *Dir) Readlink(name string) (string, error) {
	if err := d.checkName("readlink", name); err != nil {
		return "", err
	}
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := ignoringEINTR(func() (e error) { n, e = unix.Readlinkat(d.fd, name, buf); return e })
		if err != nil {
			return "", &fs.PathError{Op: "readlink", Path: d.Join(name), Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Entries lists the directory (names and type bits, "." and ".." left out),
// from its start whatever was read before.
func (d *Dir) Entries() ([]DirEntry, error) {
	if d.listed.Swap(true) {
		if _, err := unix.Seek(d.fd, 0, io.SeekStart); err != nil {
			return nil, &fs.PathError{Op: "rewind directory", Path: d.path, Err: err}
		}
	}
	out, err := readDirents(d.fd)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", d.path, err)
	}
	for i := range out {
		if out[i].Type == unknownType {
			id, err := d.Lstat(out[i].Name)
			if err != nil {
				out[i].Type = 0
				continue
			}
			out[i].Type = id.Mode.Type()
		}
	}
	return out, nil
}

// Open opens the regular file name in d for reading: no symlink followed, a
// FIFO or device refused without blocking (*UnsafePathError).
func (d *Dir) Open(name string) (*os.File, error) {
	if err := d.checkName("open", name); err != nil {
		return nil, err
	}
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, d.classify("open", name, err, false)
	}
	f := os.NewFile(uintptr(fd), d.Join(name))
	id, err := FstatID(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	if err := checkRegular("open", f.Name(), id.Mode); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ReadFile reads at most limit bytes of the regular file name in d and
// returns them with the file's identity (openat, fstat, read, close).
func (d *Dir) ReadFile(name string, limit int64) ([]byte, FileID, error) {
	if err := d.checkName("open", name); err != nil {
		return nil, FileID{}, err
	}
	fd, err := openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, FileID{}, d.classify("open", name, err, false)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return nil, FileID{}, &fs.PathError{Op: "fstat", Path: d.Join(name), Err: err}
	}
	id := idFromStat(&st)
	if err := checkRegular("open", d.Join(name), id.Mode); err != nil {
		return nil, FileID{}, err
	}
	n := min(id.Size, limit)
	buf := make([]byte, 0, n+1)
	for int64(len(buf)) < limit {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		var m int
		err := ignoringEINTR(func() (e error) { m, e = unix.Read(fd, buf[len(buf):min(int64(cap(buf)), limit)]); return e })
		if err != nil {
			return nil, FileID{}, &fs.PathError{Op: "read", Path: d.Join(name), Err: err}
		}
		if m <= 0 {
			break
		}
		buf = buf[:len(buf)+m]
		if int64(len(buf)) == id.Size {
			break // all of it, as fstat said: no read for the end
		}
	}
	return buf, id, nil
}

// StableHash streams the regular file name in d into w using buf (nil: a
// BlockSize buffer) and fails with *ChangedError when its identity changed
// between the stat before and the fstat after the read, as StableHash does.
func (d *Dir) StableHash(ctx context.Context, name string, w io.Writer, buf []byte) (FileID, error) {
	before, err := d.Lstat(name)
	if err != nil {
		return FileID{}, err
	}
	p := d.Join(name)
	if err := checkRegular("hash", p, before.Mode); err != nil {
		return FileID{}, err
	}
	f, err := d.Open(name)
	if err != nil {
		return FileID{}, err
	}
	defer f.Close()
	opened, err := FstatID(f)
	if err != nil {
		return FileID{}, err
	}
	return stableCopy(ctx, f, p, before, opened, w, buf)
}
