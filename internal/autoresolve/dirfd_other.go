//go:build !unix

package autoresolve

import "errors"

// The cache needs O_NOFOLLOW and *at syscalls; elsewhere it refuses to work
// rather than silently weakening the symlink rules.

type dir struct{ path string }

type stat struct {
	dev, ino      uint64
	size          int64
	mtimeNS       int64
	ctimeNS       int64
	regular, link bool
}

func (s stat) unchanged(o stat) bool { return s == o }

func errUnsupported() error { return errors.New("auto-resolution cache: unsupported platform") }

func openDir(path string) (*dir, error)        { return nil, errUnsupported() }
func (d *dir) close()                          {}
func (d *dir) stillAtPath() bool               { return false }
func (d *dir) lstat(name string) (stat, error) { return stat{}, errUnsupported() }
func (d *dir) unlink(name string) error        { return errUnsupported() }
func (d *dir) names() ([]string, error)        { return nil, errUnsupported() }
func (d *dir) readFile(name string, limit int64) ([]byte, stat, stat, error) {
	return nil, stat{}, stat{}, errUnsupported()
}
