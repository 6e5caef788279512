//go:build linux || dragonfly || openbsd || solaris || illumos

package fsx

import "syscall"

func ctimeNS(st *syscall.Stat_t) int64 { return syscall.TimespecToNsec(st.Ctim) }
