//go:build darwin || freebsd || netbsd || openbsd

package fsx

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

const unknownType fs.FileMode = fs.ModeIrregular | fs.ModeTemporary

// readDirents lists fd through a duplicate wrapped in an *os.File.
func readDirents(fd int) ([]DirEntry, error) {
	dup, err := unix.Dup(fd)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(dup), "")
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(ents))
	for i, e := range ents {
		out[i] = DirEntry{Name: e.Name(), Type: e.Type()}
	}
	return out, nil
}
