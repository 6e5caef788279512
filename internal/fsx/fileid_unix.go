//go:build unix

package fsx

import (
	"io/fs"
	"syscall"
)

// FileIDOf returns the identity carried by fi (an os.Lstat/os.Stat or
// fs.Stat result on this platform); ok is false when fi.Sys() is not a
// *syscall.Stat_t (an in-memory fs.FS, for example).
func FileIDOf(fi fs.FileInfo) (id FileID, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st == nil {
		return FileID{}, false
	}
	return FileID{
		Dev:     uint64(st.Dev),
		Ino:     uint64(st.Ino),
		Nlink:   uint64(st.Nlink),
		Mode:    fi.Mode(),
		Size:    st.Size,
		MtimeNS: fi.ModTime().UnixNano(),
		CtimeNS: ctimeNS(st),
	}, true
}
