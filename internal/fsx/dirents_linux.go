package fsx

import (
	"io/fs"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// unknownType marks an entry whose type getdents did not report (DT_UNKNOWN).
const unknownType fs.FileMode = fs.ModeIrregular | fs.ModeTemporary

var direntBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// readDirents lists fd with getdents64 into a pooled 32 KiB buffer.
func readDirents(fd int) ([]DirEntry, error) {
	bp := direntBufs.Get().(*[]byte)
	defer direntBufs.Put(bp)
	buf := *bp
	var out []DirEntry
	for {
		var n int
		err := ignoringEINTR(func() (e error) { n, e = unix.Getdents(fd, buf); return e })
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return out, nil
		}
		for off := 0; off < n; {
			// struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			typ := buf[off+18]
			nameBytes := buf[off+19 : off+reclen]
			l := 0
			for l < len(nameBytes) && nameBytes[l] != 0 {
				l++
			}
			name := string(nameBytes[:l])
			off += reclen
			if name == "." || name == ".." {
				continue
			}
			out = append(out, DirEntry{Name: name, Type: direntType(typ)})
		}
	}
}

func direntType(t uint8) fs.FileMode {
	switch t {
	case unix.DT_REG:
		return 0
	case unix.DT_DIR:
		return fs.ModeDir
	case unix.DT_LNK:
		return fs.ModeSymlink
	case unix.DT_FIFO:
		return fs.ModeNamedPipe
	case unix.DT_SOCK:
		return fs.ModeSocket
	case unix.DT_CHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.DT_BLK:
		return fs.ModeDevice
	}
	return unknownType
}
