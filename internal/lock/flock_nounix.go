//go:build !unix || aix

package lock

import (
	"fmt"
	"os"

	"github.com/modelcache/modelcache/internal/fsx"
)

// AIX is excluded too: x/sys/unix has no Flock there.

type attempt int

const (
	busy attempt = iota
	acquired
	stalePath
)

type flockFile struct{}

func tryFlock(path string, _ os.FileMode, _ func()) (*flockFile, attempt, error) {
	return nil, busy, fmt.Errorf("flock %s: %w", path, fsx.ErrUnsupported)
}

func (*flockFile) release(string, bool) error { return nil }
