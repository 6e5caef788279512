//go:build !unix

package meta

import (
	"os"

	"github.com/modelcache/modelcache/internal/fsx"
)

func lockShared(*os.File) error    { return fsx.ErrUnsupported }
func lockExclusive(*os.File) error { return fsx.ErrUnsupported }
