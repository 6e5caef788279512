//go:build !unix

package maintain

// syscallNoFollow: no O_NOFOLLOW here; callers lstat first (fsx refuses the
// rest of the cache on such platforms anyway).
const syscallNoFollow = 0

func inodeOf(fi interface{ Sys() any }) (dev, ino uint64, ok bool) { return 0, 0, false }
