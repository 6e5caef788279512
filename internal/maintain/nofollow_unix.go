//go:build unix

package maintain

import "syscall"

// signalZero probes a pid where /proc is not available.
func signalZero(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
