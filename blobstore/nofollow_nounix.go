//go:build !unix

package blobstore

// fsx refuses to work here anyway (fsx.ErrUnsupported).
const noFollow = 0
