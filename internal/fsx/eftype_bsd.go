//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package fsx

import (
	"errors"

	"golang.org/x/sys/unix"
)

// BSDs may report EFTYPE for O_NOFOLLOW on a symlink.
func isEFTYPE(err error) bool { return errors.Is(err, unix.EFTYPE) }
