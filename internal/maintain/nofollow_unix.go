//go:build unix

package maintain

import "syscall"

// syscallNoFollow makes an open fail on a symlink at the last component.
const syscallNoFollow = syscall.O_NOFOLLOW

// inodeOf returns the (dev, ino) of an lstat result, for counting hard-linked
// files once as du does.
func inodeOf(fi interface{ Sys() any }) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), st.Ino, true
}
