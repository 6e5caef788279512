//go:build unix && !aix

package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/modelcache/modelcache/internal/fsx"
	"golang.org/x/sys/unix"
)

type attempt int

const (
	busy      attempt = iota // another open file description holds it
	acquired                 // locked, and it is the inode at path
	stalePath                // locked an inode that no longer sits at path
)

// flockFile is an open, flock'ed lock file. A raw fd: the lock lives exactly
// as long as this descriptor, with no runtime poller or finalizer involved.
type flockFile struct {
	fd  int
	ino uint64
	dev uint64
}

func openLockFile(path string, mode os.FileMode) (int, error) {
	// O_NONBLOCK only so that a FIFO planted at the path cannot block open();
	// it is rejected by the type check below.
	const common = unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|common, uint32(mode.Perm()))
	for errors.Is(err, unix.EINTR) {
		fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|common, uint32(mode.Perm()))
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) {
		// A lock file created by another user (or on a read-only mount):
		// flock works on any descriptor (§3, C9).
		fd, err = unix.Open(path, unix.O_RDONLY|common, 0)
	}
	if err != nil {
		if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return -1, &fsx.UnsafePathError{Op: "open lock file", Path: path, Kind: fsx.ErrSymlink}
		}
		if errors.Is(err, unix.EISDIR) {
			return -1, &fsx.UnsafePathError{Op: "open lock file", Path: path, Kind: fsx.ErrNotRegular}
		}
		return -1, &fs.PathError{Op: "open lock file", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "fstat lock file", Path: path, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, &fsx.UnsafePathError{Op: "open lock file", Path: path, Kind: fsx.ErrNotRegular}
	}
	// Widen (never narrow) the mode of a file we own, like the reference's
	// fchmod 0644: a restrictive umask must not lock out other users. Best
	// effort: failure only matters to those other users.
	want := uint32(mode.Perm())
	if have := uint32(st.Mode) & 0o777; have|want != have && int(st.Uid) == os.Geteuid() {
		_ = unix.Fchmod(fd, have|want)
	}
	return fd, nil
}

func tryFlock(path string, mode os.FileMode, hook func()) (*flockFile, attempt, error) {
	fd, err := openLockFile(path, mode)
	if err != nil {
		return nil, busy, err
	}
	if hook != nil {
		hook()
	}
	for {
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) || errors.Is(err, unix.EAGAIN) {
		unix.Close(fd)
		return nil, busy, nil
	}
	if err != nil {
		unix.Close(fd)
		// ENOLCK/EOPNOTSUPP: no flock on this filesystem. Surface it; callers
		// decide (correctness never depends on the lock).
		return nil, busy, fmt.Errorf("flock %s: %w", path, err)
	}

	// After acquiring (§9.3): our inode must still be linked and still be the
	// one at path, else a peer unlinked it on release (filelock >= 3.21) and
	// someone may be holding a fresh file at the same path.
	var fst, lst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		unix.Close(fd)
		return nil, busy, &fs.PathError{Op: "fstat lock file", Path: path, Err: err}
	}
	lerr := unix.Lstat(path, &lst)
	if fst.Nlink == 0 || lerr != nil || uint32(lst.Mode)&unix.S_IFMT != unix.S_IFREG ||
		lst.Dev != fst.Dev || lst.Ino != fst.Ino {
		unix.Close(fd) // releases the flock on the orphan
		if lerr != nil && !errors.Is(lerr, unix.ENOENT) {
			return nil, busy, &fs.PathError{Op: "lstat lock file", Path: path, Err: lerr}
		}
		return nil, stalePath, nil
	}
	return &flockFile{fd: fd, dev: uint64(fst.Dev), ino: uint64(fst.Ino)}, acquired, nil
}

func (f *flockFile) release(path string, unlink bool) error {
	var errs []error
	if unlink {
		// Unlink while still holding (§9.4), and only our own inode.
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err == nil && uint64(st.Dev) == f.dev && uint64(st.Ino) == f.ino {
			if err := unix.Unlink(path); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, &fs.PathError{Op: "unlink", Path: path, Err: err})
			}
		}
	}
	if err := unix.Flock(f.fd, unix.LOCK_UN); err != nil {
		errs = append(errs, &fs.PathError{Op: "unlock", Path: path, Err: err})
	}
	if err := unix.Close(f.fd); err != nil {
		errs = append(errs, &fs.PathError{Op: "close", Path: path, Err: err})
	}
	f.fd = -1
	return errors.Join(errs...)
}
