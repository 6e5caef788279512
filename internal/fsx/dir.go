package fsx

import (
	"io/fs"
	"strings"
)

// DirEntry is one name of a directory listing with its type bits (as
// getdents reports them; no stat).
type DirEntry struct {
	Name string
	// Type holds only the type bits (fs.ModeDir, fs.ModeSymlink, 0 for a
	// regular file, ...).
	Type fs.FileMode
}

// IsDir reports a directory.
func (e DirEntry) IsDir() bool { return e.Type&fs.ModeDir != 0 }

// IsSymlink reports a symbolic link.
func (e DirEntry) IsSymlink() bool { return e.Type&fs.ModeSymlink != 0 }

// IsRegular reports a regular file.
func (e DirEntry) IsRegular() bool { return e.Type&fs.ModeType == 0 }

// validName reports whether name is a single path component a Dir method
// accepts: not empty, not "." or "..", no "/" and no NUL.
func validName(name string) bool {
	return name != "" && name != "." && name != ".." && !strings.ContainsAny(name, "/\x00")
}
