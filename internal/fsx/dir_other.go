//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package fsx

import (
	"context"
	"io"
	"io/fs"
	"os"
	"time"
)

// Dir is unsupported here: every method fails with ErrUnsupported (see
// dir_unix.go for the contract).
type Dir struct{ path string }

func OpenRoot(path string) (*Dir, error)                         { return nil, ErrUnsupported }
func (d *Dir) Path() string                                      { return d.path }
func (d *Dir) Join(name string) string                           { return d.path + "/" + name }
func (d *Dir) Close() error                                      { return nil }
func (d *Dir) Sub(string) (*Dir, error)                          { return nil, ErrUnsupported }
func (d *Dir) SubPath(string) (*Dir, error)                      { return nil, ErrUnsupported }
func (d *Dir) Stat() (FileID, error)                             { return FileID{}, ErrUnsupported }
func (d *Dir) Lstat(string) (FileID, error)                      { return FileID{}, ErrUnsupported }
func (d *Dir) Readlink(string) (string, error)                   { return "", ErrUnsupported }
func (d *Dir) Entries() ([]DirEntry, error)                      { return nil, ErrUnsupported }
func (d *Dir) Open(string) (*os.File, error)                     { return nil, ErrUnsupported }
func (d *Dir) ReadFile(string, int64) ([]byte, FileID, error)    { return nil, FileID{}, ErrUnsupported }
func (d *Dir) Create(string, int, fs.FileMode) (*os.File, error) { return nil, ErrUnsupported }
func (d *Dir) Remove(string) error                               { return ErrUnsupported }
func (d *Dir) RemoveDir(string) error                            { return ErrUnsupported }
func (d *Dir) RemoveAll(string) error                            { return ErrUnsupported }
func (d *Dir) Mkdir(string, fs.FileMode) error                   { return ErrUnsupported }
func (d *Dir) EnsureSub(string, fs.FileMode) (*Dir, error)       { return nil, ErrUnsupported }
func (d *Dir) Symlink(string, string) error                      { return ErrUnsupported }
func (d *Dir) Rename(string, *Dir, string) error                 { return ErrUnsupported }
func (d *Dir) RenameNoReplace(string, *Dir, string) error        { return ErrUnsupported }
func (d *Dir) ReplaceSymlink(string, string) error               { return ErrUnsupported }
func (d *Dir) WriteFileAtomic(string, []byte, fs.FileMode) error { return ErrUnsupported }
func (d *Dir) Sync() error                                       { return ErrUnsupported }
func (d *Dir) SetTimes(string, time.Time) error                  { return ErrUnsupported }
func (d *Dir) StableHash(context.Context, string, io.Writer, []byte) (FileID, error) {
	return FileID{}, ErrUnsupported
}
