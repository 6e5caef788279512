//go:build !unix

package fsx

import (
	"context"
	"io"
	"io/fs"
	"os"
)

// The cache relies on O_NOFOLLOW, flock and POSIX rename semantics; on other
// platforms every primitive fails loudly rather than silently weakening them.

const BlockSize = 1 << 20

func LstatID(string) (FileID, error)                               { return FileID{}, ErrUnsupported }
func FstatID(*os.File) (FileID, error)                             { return FileID{}, ErrUnsupported }
func IsSymlink(string) (bool, error)                               { return false, ErrUnsupported }
func RegularNoFollow(string) (fs.FileInfo, error)                  { return nil, ErrUnsupported }
func OpenNoFollow(string) (*os.File, error)                        { return nil, ErrUnsupported }
func ReadFileNoFollow(string, int64) ([]byte, error)               { return nil, ErrUnsupported }
func EnsureDir(string, fs.FileMode) error                          { return ErrUnsupported }
func SyncDir(string) error                                         { return ErrUnsupported }
func WriteFileAtomic(string, []byte, fs.FileMode) error            { return ErrUnsupported }
func WriteAtomic(string, fs.FileMode, func(io.Writer) error) error { return ErrUnsupported }
func RenameNoReplace(string, string) error                         { return ErrUnsupported }

func StableHash(context.Context, string, io.Writer) (FileID, error) { return FileID{}, ErrUnsupported }

func MD5File(context.Context, string) (string, FileID, error) { return "", FileID{}, ErrUnsupported }
