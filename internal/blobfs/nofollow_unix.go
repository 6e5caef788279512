//go:build unix

package blobfs

import "syscall"

const noFollow = syscall.O_NOFOLLOW
