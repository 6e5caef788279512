//go:build unix

package journal

import (
	"errors"
	"syscall"
)

// signalZero probes a pid where /proc is not available.
func signalZero(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
