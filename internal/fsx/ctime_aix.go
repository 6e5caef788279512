//go:build aix

package fsx

import "syscall"

func ctimeNS(st *syscall.Stat_t) int64 { return int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec) }
