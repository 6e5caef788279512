//go:build unix

package fsx

import (
	"errors"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// RenameNoReplace renames oldpath to newpath only if newpath does not exist
// (of any type, including a dangling symlink); otherwise it fails with an
// error matching fs.ErrExist and changes nothing. Publishing a verified blob
// this way never clobbers another writer's file or something squatting on
// the name (download.md §2.7 step 6).
func RenameNoReplace(oldpath, newpath string) error {
	err := renameNoReplace(oldpath, newpath)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOTSUP) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	// No native no-replace rename here: link() also refuses an existing
	// target; for a moment both names refer to the same verified inode.
	if err := os.Link(oldpath, newpath); err == nil {
		if err := os.Remove(oldpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	} else if errors.Is(err, fs.ErrExist) {
		return err
	}
	// No hard links either (some FUSE/SMB): check, then rename. The window is
	// a few syscalls, and rename never writes through a symlink.
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}
