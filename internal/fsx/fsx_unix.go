//go:build unix

package fsx

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// BlockSize is the read size of StableHash (1 MiB, as the reference's hasher).
const BlockSize = 1 << 20

func idFromStat(st *unix.Stat_t) FileID {
	return FileID{
		Dev:     uint64(st.Dev),
		Ino:     uint64(st.Ino),
		Nlink:   uint64(st.Nlink),
		Mode:    modeFromUnix(uint32(st.Mode)),
		Size:    st.Size,
		MtimeNS: st.Mtim.Nano(),
		CtimeNS: st.Ctim.Nano(),
	}
}

func modeFromUnix(m uint32) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		mode |= fs.ModeDir
	case unix.S_IFLNK:
		mode |= fs.ModeSymlink
	case unix.S_IFIFO:
		mode |= fs.ModeNamedPipe
	case unix.S_IFSOCK:
		mode |= fs.ModeSocket
	case unix.S_IFCHR:
		mode |= fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		mode |= fs.ModeDevice
	}
	if m&unix.S_ISUID != 0 {
		mode |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		mode |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// LstatID returns the identity of path itself (a symlink is not followed).
func LstatID(path string) (FileID, error) {
	var st unix.Stat_t
	if err := ignoringEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return FileID{}, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	return idFromStat(&st), nil
}

// FstatID returns the identity of an open file.
func FstatID(f *os.File) (FileID, error) {
	var st unix.Stat_t
	rc, err := f.SyscallConn()
	if err != nil {
		return FileID{}, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = ignoringEINTR(func() error { return unix.Fstat(int(fd), &st) })
	}); err != nil {
		return FileID{}, err
	}
	if serr != nil {
		return FileID{}, &fs.PathError{Op: "fstat", Path: f.Name(), Err: serr}
	}
	return idFromStat(&st), nil
}

func ignoringEINTR(fn func() error) error {
	for {
		if err := fn(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// IsSymlink reports whether path itself is a symlink. A missing path is not
// a symlink (false, nil).
func IsSymlink(path string) (bool, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return fi.Mode()&fs.ModeSymlink != 0, nil
}

// RegularNoFollow lstats path and returns its info only if it is a regular
// file; a symlink or other type gives *UnsafePathError, a missing file an
// error matching fs.ErrNotExist.
func RegularNoFollow(path string) (fs.FileInfo, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if err := checkRegular("stat", path, fi.Mode()); err != nil {
		return nil, err
	}
	return fi, nil
}

func checkRegular(op, path string, m fs.FileMode) error {
	switch {
	case m&fs.ModeSymlink != 0:
		return &UnsafePathError{Op: op, Path: path, Kind: ErrSymlink}
	case !m.IsRegular():
		return &UnsafePathError{Op: op, Path: path, Kind: ErrNotRegular}
	}
	return nil
}

// OpenNoFollow opens a regular file read-only with O_NOFOLLOW|O_CLOEXEC.
// A symlink at path gives *UnsafePathError (ErrSymlink); a FIFO, device or
// directory gives *UnsafePathError (ErrNotRegular) without blocking.
func OpenNoFollow(path string) (*os.File, error) {
	f, _, err := openNoFollowID(path)
	return f, err
}

func openNoFollowID(path string) (*os.File, FileID, error) {
	// O_NONBLOCK: a FIFO swapped in after a caller's lstat must not hang us.
	// It has no effect on reads from regular files.
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, FileID{}, noFollowError("open", path, err)
	}
	id, err := FstatID(f)
	if err != nil {
		f.Close()
		return nil, FileID{}, err
	}
	if err := checkRegular("open", path, id.Mode); err != nil {
		f.Close()
		return nil, FileID{}, err
	}
	return f, id, nil
}

// ReadFileNoFollow reads a regular file opened as OpenNoFollow opens it, in
// one read for a file whose size does not change, refusing more than limit
// bytes (*TooLargeError).
func ReadFileNoFollow(path string, limit int64) ([]byte, error) {
	f, id, err := openNoFollowID(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if id.Size > limit {
		return nil, &TooLargeError{Path: path, Size: id.Size, Limit: limit}
	}
	b, err := ReadAllSized(f, id.Size, limit)
	if err != nil {
		if tl, ok := err.(*TooLargeError); ok {
			tl.Path = path
		}
		return nil, err
	}
	return b, nil
}

// noFollowError maps the ELOOP (EMLINK/EFTYPE on BSDs) of an O_NOFOLLOW open
// on a symlink to *UnsafePathError; other errors are returned unchanged.
func noFollowError(op, path string, err error) error {
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EMLINK) && !isEFTYPE(err) {
		return err
	}
	if fi, lerr := os.Lstat(path); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
		return &UnsafePathError{Op: op, Path: path, Kind: ErrSymlink}
	}
	return err
}

// EnsureDir makes path a directory (mkdir -p, mode perm &^ umask) and refuses
// a symlink or non-directory at its last component. Symlinks above it are
// allowed: the cache root is used as written (on-disk contract §1.1).
func EnsureDir(path string, perm fs.FileMode) error {
	check := func() error {
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return &UnsafePathError{Op: "use directory", Path: path, Kind: ErrSymlink}
		case !fi.IsDir():
			return &UnsafePathError{Op: "use directory", Path: path, Kind: ErrNotDir}
		}
		return nil
	}
	err := check()
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(path, perm); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	// Re-check: another process may have put something else there meanwhile.
	return check()
}

// SyncDir fsyncs a directory so that renames and creations in it survive a
// power loss.
func SyncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open directory for sync", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	err = ignoringEINTR(func() error { return unix.Fsync(fd) })
	// Some filesystems cannot fsync a directory; there is nothing more we can do.
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return &fs.PathError{Op: "fsync directory", Path: dir, Err: err}
	}
	return nil
}

// WriteFileAtomic writes data to path so that readers only ever see the old
// or the complete new content: exclusive temp ".<final>.<rand8>.tmp" in the
// same directory, write, fsync, rename, fsync of the directory. perm is
// applied exactly (fchmod, not masked by the umask) because the contract
// fixes metadata modes (0644, shared 0664). A symlink (or directory) at path
// is refused with *UnsafePathError and nothing is written through it. The
// temp is removed on every failure.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	return WriteAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic is WriteFileAtomic for content that write streams: the path
// shows the old content (or none) until write has returned nil and the
// bytes are durable; an error from write leaves nothing behind.
func WriteAtomic(path string, perm fs.FileMode, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if base == "" || base == "." || base == ".." || base == string(filepath.Separator) {
		return fmt.Errorf("write %q: not a file path", path)
	}
	if err := checkReplaceable(path); err != nil {
		return err
	}

	var f *os.File
	var tmp string
	for attempt := 0; ; attempt++ {
		name, err := AtomicTempName(base)
		if err != nil {
			return err
		}
		tmp = filepath.Join(dir, name)
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, perm)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt >= 8 {
			return fmt.Errorf("create temp for %s: %w", path, err)
		}
	}
	defer func() {
		if err != nil {
			if f != nil {
				f.Close()
			}
			os.Remove(tmp)
		}
	}()

	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod temp for %s: %w", path, err)
	}
	if err = write(f); err != nil {
		return fmt.Errorf("write temp for %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync temp for %s: %w", path, err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close temp for %s: %w", path, err)
	}
	// Check again right before the rename: the window is now a few syscalls.
	// (rename itself replaces a symlink rather than writing through it.)
	if err = checkReplaceable(path); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("publish %s: %w", path, err)
	}
	if serr := SyncDir(dir); serr != nil {
		// Published already; the temp no longer exists, so nothing to clean.
		return fmt.Errorf("wrote %s but could not make it durable: %w", path, serr)
	}
	return nil
}

func checkReplaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkRegular("write", path, fi.Mode())
}

// StableHash streams the regular file at path into w in BlockSize reads,
// without following a symlink, and fails with *ChangedError if (dev, ino,
// size, mtime_ns, ctime_ns) differ between the lstat before and the fstat
// after the read. It returns the identity the bytes belong to.
func StableHash(ctx context.Context, path string, w io.Writer) (FileID, error) {
	before, err := LstatID(path)
	if err != nil {
		return FileID{}, err
	}
	if err := checkRegular("hash", path, before.Mode); err != nil {
		return FileID{}, err
	}
	f, err := OpenNoFollow(path)
	if err != nil {
		return FileID{}, err
	}
	defer f.Close()
	opened, err := FstatID(f)
	if err != nil {
		return FileID{}, err
	}
	return stableCopy(ctx, f, path, before, opened, w, nil)
}

// stableCopy streams the open file f (at path, whose lstat gave before and
// whose fstat gave opened) into w using buf (nil: a BlockSize buffer), and
// fails with *ChangedError when the file is not the one stat'ed or changed
// while it was read.
func stableCopy(ctx context.Context, f *os.File, path string, before, opened FileID, w io.Writer, buf []byte) (FileID, error) {
	if !before.SameFile(opened) {
		return FileID{}, &ChangedError{Path: path, Before: before, After: opened}
	}
	if len(buf) == 0 {
		buf = make([]byte, BlockSize)
	}
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return FileID{}, err
		}
		m, rerr := io.ReadFull(f, buf)
		if m > 0 {
			n += int64(m)
			if _, err := w.Write(buf[:m]); err != nil {
				return FileID{}, err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return FileID{}, fmt.Errorf("read %s: %w", path, rerr)
		}
	}
	after, err := FstatID(f)
	if err != nil {
		return FileID{}, err
	}
	if !before.Unchanged(after) || n != after.Size {
		return FileID{}, &ChangedError{Path: path, Before: before, After: after}
	}
	return after, nil
}

// MD5File returns the lower-case hex MD5 of the regular file at path, read
// with StableHash.
func MD5File(ctx context.Context, path string) (string, FileID, error) {
	h := md5.New()
	id, err := StableHash(ctx, path, h)
	if err != nil {
		return "", FileID{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), id, nil
}
