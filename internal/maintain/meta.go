package maintain

import (
	"fmt"
	"io/fs"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
)

// maxMetaFile bounds what is read from a journal or another small record.
const maxMetaFile = 1 << 20

func kindOf(fi fs.FileInfo) error { return kindOfMode(fi.Mode()) }

func kindOfMode(m fs.FileMode) error {
	if m&fs.ModeSymlink != 0 {
		return fsx.ErrSymlink
	}
	if m.IsDir() {
		return fsx.ErrNotRegular
	}
	return fsx.ErrNotDir
}

// errOffline is returned by every operation that would write under H while
// OFFLINE_MODE is on.
func errOffline(op string) error {
	return fmt.Errorf("%s: %w: OFFLINE_MODE is on, and nothing under INFERENCE_HOME is changed then; run it online", op, errdefs.ErrOffline)
}
