//go:build linux

package download

import (
	"context"
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/modelcache/modelcache/internal/fsx"
)

// Filesystems where flock may silently not exclude other hosts
// (download.md §3 rule 8).
var unreliableMagics = map[int64]string{
	0x6969:     "nfs",
	0x0BD00BD0: "lustre",
	0x47504653: "gpfs",
	0xFF534D42: "cifs",
	0xFE534D42: "smb2",
	0x65735546: "fuse",
}

const noFollowFlag = unix.O_NOFOLLOW

func fsMagic(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Type) & 0xFFFFFFFF, nil
}

func unreliableLockFS(magic int64) bool { _, ok := unreliableMagics[magic]; return ok }

// freeBytes returns the bytes available to unprivileged users on dir's
// filesystem and whether it is a network filesystem (numbers unreliable).
func freeBytes(dir string) (free int64, network bool, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false, err
	}
	return int64(st.Bavail) * int64(st.Bsize), unreliableLockFS(int64(st.Type) & 0xFFFFFFFF), nil
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// allocated returns the bytes allocated to a file (st_blocks): it grows as
// ranged writes land in a sparse, pre-sized partial, whose size does not.
func allocated(fi os.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}

func renameNoReplace(from, to string) error {
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) {
		// No renameat2 here: link + unlink gives the same no-replace result.
		if err := os.Link(from, to); err != nil {
			return err
		}
		return os.Remove(from)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

func openPartial(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
}

// copyPartial copies src into a new exclusive file dst: a reflink where the
// filesystem can (FICLONE), else copy_file_range (os.File.ReadFrom).
func copyPartial(ctx context.Context, src, dst string) (*os.File, error) {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o666)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err == nil {
		return out, nil
	}
	if _, err := out.ReadFrom(fsx.ContextReader(ctx, in)); err != nil {
		out.Close()
		os.Remove(dst)
		return nil, err
	}
	return out, nil
}

// startWriteback asks the kernel to start writing [off, off+n) to disk
// without waiting: written parts then reach the disk while the download
// goes on, instead of all at the final fsync.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// openDirect opens a second, write-only descriptor of f's file that
// bypasses the page cache (O_DIRECT): large blobs then go from the
// network buffers to the disk without a copy into the page cache and
// without a dirty-page writeback at the end. nil where the filesystem
// refuses it, or if the path no longer names f's file.
func openDirect(f *os.File) *os.File {
	d, err := os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(f.Fd()), &a) != nil || unix.Fstat(int(d.Fd()), &b) != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		d.Close()
		return nil
	}
	return d
}
