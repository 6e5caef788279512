//go:build unix && !linux

package fsx

import "golang.org/x/sys/unix"

// Without renameat2 fall through to the link-based path of RenameNoReplace.
func renameNoReplace(string, string) error { return unix.ENOSYS }

func renameatNoReplace(int, string, int, string) error { return unix.ENOSYS }
