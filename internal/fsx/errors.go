package fsx

import (
	"errors"
	"fmt"
)

// Sentinel kinds, matchable with errors.Is on the typed errors below.
var (
	// ErrSymlink: a symlink sits where a real file or directory is required.
	ErrSymlink = errors.New("is a symlink (refusing to follow it)")
	// ErrNotRegular: something other than a regular file (directory, FIFO, ...).
	ErrNotRegular = errors.New("is not a regular file")
	// ErrNotDir: something other than a directory where one is required.
	ErrNotDir = errors.New("is not a directory")
	// ErrChanged: the file changed while it was being read.
	ErrChanged = errors.New("changed while being read")
	// ErrUnsupported: the platform lacks the primitives (flock, O_NOFOLLOW, ...).
	ErrUnsupported = errors.New("not supported on this platform")
)

// UnsafePathError reports a path whose type makes the operation unsafe, e.g. a
// symlink squatting on a blob or lock name. errors.Is(err, ErrSymlink) etc.
// tells the kind.
type UnsafePathError struct {
	Op   string // what we were about to do: "open", "write", "rename", ...
	Path string
	Kind error // ErrSymlink, ErrNotRegular or ErrNotDir
}

func (e *UnsafePathError) Error() string {
	return fmt.Sprintf("%s %s: %v", e.Op, e.Path, e.Kind)
}

func (e *UnsafePathError) Unwrap() error { return e.Kind }

// ChangedError reports that a file's identity or metadata changed between the
// lstat before a read and the fstat after it (a concurrent writer or replace).
type ChangedError struct {
	Path          string
	Before, After FileID
}

func (e *ChangedError) Error() string {
	return fmt.Sprintf("read %s: file %v (before: %s, after: %s); retry once the writer is done",
		e.Path, ErrChanged, e.Before, e.After)
}

func (e *ChangedError) Unwrap() error { return ErrChanged }

// TooLargeError: a file holds more bytes than its reader accepts.
type TooLargeError struct {
	Path  string
	Size  int64 // bytes seen (at least Limit+1 when read)
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s is implausibly large (%d bytes; at most %d are read)", e.Path, e.Size, e.Limit)
}
