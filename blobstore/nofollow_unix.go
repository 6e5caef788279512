//go:build unix

package blobstore

import "syscall"

const noFollow = syscall.O_NOFOLLOW
