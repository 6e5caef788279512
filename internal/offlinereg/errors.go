package offlinereg

import (
	"errors"
	"fmt"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

// SymlinkError reports a registry directory or record that is a symlink (or
// not the expected file type); nothing was read or written through it.
// errors.Is(err, errdefs.ErrSymlinkRefused) holds for symlinks.
type SymlinkError struct {
	Path string
	// Err is the underlying *fsx.UnsafePathError or a description.
	Err error
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("offline registry: refusing to use %s: %v", e.Path, e.Err)
}

// Unwrap exposes both errdefs.ErrSymlinkRefused (when it is a symlink) and the cause.
func (e *SymlinkError) Unwrap() []error {
	if errors.Is(e.Err, fsx.ErrSymlink) {
		return []error{errdefs.ErrSymlinkRefused, e.Err}
	}
	return []error{e.Err}
}

// asUnsafe converts fsx's unsafe-path errors into *SymlinkError and marks
// lock timeouts with errdefs.ErrLockTimeout; other errors pass unchanged.
func asUnsafe(path string, err error) error {
	var ue *fsx.UnsafePathError
	if errors.As(err, &ue) {
		return &SymlinkError{Path: path, Err: err}
	}
	var te *lock.TimeoutError
	if errors.As(err, &te) && !errors.Is(err, errdefs.ErrLockTimeout) {
		return fmt.Errorf("%w: %w", errdefs.ErrLockTimeout, err)
	}
	return err
}
