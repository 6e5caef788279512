//go:build !linux

package download

import (
	"context"
	"io"
	"os"
	"syscall"

	"github.com/modelcache/modelcache/internal/fsx"
)

// Portable fallbacks: no filesystem magic (locks assumed reliable), fsync
// for fdatasync, plain copies.

const noFollowFlag = syscall.O_NOFOLLOW

func fsMagic(string) (int64, error)     { return 0, fsx.ErrUnsupported }
func unreliableLockFS(int64) bool       { return false }
func fdatasync(f *os.File) error        { return f.Sync() }
func allocated(fi os.FileInfo) int64    { return fi.Size() }
func renameNoReplace(a, b string) error { return fsx.RenameNoReplace(a, b) }

func freeBytes(dir string) (int64, bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), false, nil
}

func openPartial(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
}

func copyPartial(ctx context.Context, src, dst string) (*os.File, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o666)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(out, fsx.ContextReader(ctx, in)); err != nil {
		out.Close()
		os.Remove(dst)
		return nil, err
	}
	return out, nil
}

// isTerminal reports whether f is a character device (a good enough
// terminal test where termios ioctls differ).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func startWriteback(*os.File, int64, int64) {}

// openDirect: direct I/O is only used on Linux.
func openDirect(*os.File) *os.File { return nil }
