package fsx

import (
	"fmt"
	"io/fs"
)

// FileID is the identity and change stamp of a file as seen by lstat/fstat.
type FileID struct {
	Dev     uint64
	Ino     uint64
	Nlink   uint64
	Mode    fs.FileMode // type bits and permissions, os.FileMode style
	Size    int64
	MtimeNS int64
	CtimeNS int64
}

// SameFile reports whether both describe the same inode.
func (a FileID) SameFile(b FileID) bool { return a.Dev == b.Dev && a.Ino == b.Ino }

// Unchanged reports whether b is the same inode with the same size, mtime and
// ctime: the condition for trusting a hash computed between the two stats.
func (a FileID) Unchanged(b FileID) bool {
	return a.SameFile(b) && a.Size == b.Size && a.MtimeNS == b.MtimeNS && a.CtimeNS == b.CtimeNS
}

// IsRegular reports whether the ID describes a regular file.
func (a FileID) IsRegular() bool { return a.Mode.IsRegular() }

func (a FileID) String() string {
	return fmt.Sprintf("dev=%d ino=%d size=%d mtime_ns=%d ctime_ns=%d", a.Dev, a.Ino, a.Size, a.MtimeNS, a.CtimeNS)
}
