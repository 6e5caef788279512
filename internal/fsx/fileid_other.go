//go:build !unix

package fsx

import "io/fs"

// FileIDOf: no identity beyond the portable fields here.
func FileIDOf(fs.FileInfo) (FileID, bool) { return FileID{}, false }
