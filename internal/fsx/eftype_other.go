//go:build unix && !(darwin || freebsd || netbsd || openbsd || dragonfly)

package fsx

func isEFTYPE(error) bool { return false }
