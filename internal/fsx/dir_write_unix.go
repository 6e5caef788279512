//go:build linux || darwin || freebsd || netbsd || openbsd

package fsx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Create opens name in d for writing with O_CREAT|O_NOFOLLOW|O_CLOEXEC plus
// flag (e.g. O_EXCL, O_APPEND, O_WRONLY); a symlink at name is refused.
func (d *Dir) Create(name string, flag int, perm fs.FileMode) (*os.File, error) {
	if err := d.checkName("create", name); err != nil {
		return nil, err
	}
	fd, err := openat(d.fd, name, flag|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(perm.Perm()))
	if err != nil {
		return nil, d.classify("create", name, err, false)
	}
	return os.NewFile(uintptr(fd), d.Join(name)), nil
}

// Remove unlinks name in d (a symlink is removed itself, never its target);
// a directory is refused.
func (d *Dir) Remove(name string) error {
	if err := d.checkName("remove", name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(d.fd, name, 0) }); err != nil {
		return &fs.PathError{Op: "remove", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveDir removes the empty directory name in d.
func (d *Dir) RemoveDir(name string) error {
	if err := d.checkName("remove directory", name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Unlinkat(d.fd, name, unix.AT_REMOVEDIR) }); err != nil {
		return &fs.PathError{Op: "remove directory", Path: d.Join(name), Err: err}
	}
	return nil
}

// RemoveAll removes name in d and, if it is a real directory, everything
// below it, never descending through a symlink. A missing name is not an
// error.
func (d *Dir) RemoveAll(name string) error {
	id, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !id.Mode.IsDir() {
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	sub, err := d.Sub(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := sub.Entries()
	if err == nil {
		for _, e := range ents {
			if err = sub.RemoveAll(e.Name); err != nil {
				break
			}
		}
	}
	sub.Close()
	if err != nil {
		return err
	}
	if err := d.RemoveDir(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Mkdir creates the directory name in d (mode perm &^ umask).
func (d *Dir) Mkdir(name string, perm fs.FileMode) error {
	if err := d.checkName("create directory", name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Mkdirat(d.fd, name, uint32(perm.Perm())) }); err != nil {
		return &fs.PathError{Op: "create directory", Path: d.Join(name), Err: err}
	}
	return nil
}

// EnsureSub opens the directory name in d, creating it first when missing;
// a symlink or non-directory at name is refused.
func (d *Dir) EnsureSub(name string, perm fs.FileMode) (*Dir, error) {
	sub, err := d.Sub(name)
	if !errors.Is(err, fs.ErrNotExist) {
		return sub, err
	}
	if err := d.Mkdir(name, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return d.Sub(name)
}

// Symlink creates the symlink name in d with the given text.
func (d *Dir) Symlink(target, name string) error {
	if err := d.checkName("symlink", name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Symlinkat(target, d.fd, name) }); err != nil {
		return &fs.PathError{Op: "symlink", Path: d.Join(name), Err: err}
	}
	return nil
}

// Rename renames old in d to name in to (which may be d), replacing a file
// or symlink there (the replaced link's target is not touched).
func (d *Dir) Rename(old string, to *Dir, name string) error {
	if err := d.checkName("rename", old); err != nil {
		return err
	}
	if err := to.checkName("rename", name); err != nil {
		return err
	}
	if err := ignoringEINTR(func() error { return unix.Renameat(d.fd, old, to.fd, name) }); err != nil {
		return &os.LinkError{Op: "rename", Old: d.Join(old), New: to.Join(name), Err: err}
	}
	return nil
}

// RenameNoReplace renames old in d to name in to only if nothing (of any
// type) is at name; otherwise it fails with an error matching fs.ErrExist and
// changes nothing. Across filesystems it fails with EXDEV.
func (d *Dir) RenameNoReplace(old string, to *Dir, name string) error {
	if err := d.checkName("rename", old); err != nil {
		return err
	}
	if err := to.checkName("rename", name); err != nil {
		return err
	}
	err := renameatNoReplace(d.fd, old, to.fd, name)
	if err == nil {
		return nil
	}
	wrap := func(err error) error {
		return &os.LinkError{Op: "rename", Old: d.Join(old), New: to.Join(name), Err: err}
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.ENOTSUP) {
		return wrap(err)
	}
	// No native no-replace rename: linkat refuses an existing name too.
	if err := unix.Linkat(d.fd, old, to.fd, name, 0); err == nil {
		if err := unix.Unlinkat(d.fd, old, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return wrap(err)
		}
		return nil
	} else if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EXDEV) {
		return wrap(err)
	}
	if _, err := to.Lstat(name); err == nil {
		return wrap(unix.EEXIST)
	}
	return d.Rename(old, to, name)
}

// ReplaceSymlink makes name in d a symlink with text target atomically: a
// link under ".<name>.link-<token>" renamed over name, then an fsync of d.
// Whatever name was before is replaced, never written through.
func (d *Dir) ReplaceSymlink(target, name string) error {
	tok, err := HexToken()
	if err != nil {
		return err
	}
	tmp := "." + name + ".link-" + tok
	if err := d.Symlink(target, tmp); err != nil {
		return err
	}
	if err := d.Rename(tmp, d, name); err != nil {
		d.Remove(tmp)
		return err
	}
	return d.Sync()
}

// WriteFileAtomic is WriteFileAtomic for name in d: exclusive temp, write,
// fsync, rename over name, fsync of d; a symlink or directory at name is
// refused.
func (d *Dir) WriteFileAtomic(name string, data []byte, perm fs.FileMode) (err error) {
	if err := d.checkName("write", name); err != nil {
		return err
	}
	if err := d.checkReplaceable(name); err != nil {
		return err
	}
	var f *os.File
	var tmp string
	for attempt := 0; ; attempt++ {
		if tmp, err = AtomicTempName(name); err != nil {
			return err
		}
		f, err = d.Create(tmp, unix.O_WRONLY|unix.O_EXCL, perm)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) || attempt >= 8 {
			return fmt.Errorf("create temp for %s: %w", d.Join(name), err)
		}
	}
	defer func() {
		if err != nil {
			if f != nil {
				f.Close()
			}
			d.Remove(tmp)
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return fmt.Errorf("chmod temp for %s: %w", d.Join(name), err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write temp for %s: %w", d.Join(name), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync temp for %s: %w", d.Join(name), err)
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close temp for %s: %w", d.Join(name), err)
	}
	if err = d.checkReplaceable(name); err != nil {
		return err
	}
	if err = d.Rename(tmp, d, name); err != nil {
		return err
	}
	if serr := d.Sync(); serr != nil {
		return fmt.Errorf("wrote %s but could not make it durable: %w", d.Join(name), serr)
	}
	return nil
}

func (d *Dir) checkReplaceable(name string) error {
	id, err := d.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return checkRegular("write", d.Join(name), id.Mode)
}

// Sync fsyncs the directory (filesystems that cannot are tolerated).
func (d *Dir) Sync() error {
	err := ignoringEINTR(func() error { return unix.Fsync(d.fd) })
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTSUP) {
		return &fs.PathError{Op: "fsync directory", Path: d.path, Err: err}
	}
	return nil
}

// SetTimes sets the access and modification times of name in d to t
// without following a symlink (utimensat, AT_SYMLINK_NOFOLLOW).
func (d *Dir) SetTimes(name string, t time.Time) error {
	if err := d.checkName("set times", name); err != nil {
		return err
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := ignoringEINTR(func() error {
		return unix.UtimesNanoAt(d.fd, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return &fs.PathError{Op: "set times", Path: d.Join(name), Err: err}
	}
	return nil
}
