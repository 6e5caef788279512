//go:build unix

package meta

import (
	"os"

	"golang.org/x/sys/unix"
)

// lockShared and lockExclusive flock the log itself (released on close):
// appenders share it, a compaction holds it alone.
func lockShared(f *os.File) error    { return flock(f, unix.LOCK_SH) }
func lockExclusive(f *os.File) error { return flock(f, unix.LOCK_EX) }

func flock(f *os.File, how int) error {
	for {
		err := unix.Flock(int(f.Fd()), how)
		if err != unix.EINTR {
			return err
		}
	}
}
