//go:build darwin || ios || freebsd || netbsd

package fsx

import "syscall"

func ctimeNS(st *syscall.Stat_t) int64 { return syscall.TimespecToNsec(st.Ctimespec) }
