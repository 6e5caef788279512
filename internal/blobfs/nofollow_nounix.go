//go:build !unix

package blobfs

// fsx refuses to work here anyway (fsx.ErrUnsupported).
const noFollow = 0
