// Package fsx holds the small set of filesystem primitives the cache needs to
// be crash-safe and symlink-safe (on-disk contract §10, §11.3):
//
//   - WriteFileAtomic: exclusive temp ".<final>.<rand8>.tmp", fsync, rename,
//     fsync of the directory; a symlinked final path is refused.
//   - OpenNoFollow / RegularNoFollow / EnsureDir: never follow a symlink at the
//     last path component (components above it may be symlinks: H is used as
//     written, never realpath'ed).
//   - StableHash / MD5File: streaming re-hash in 1 MiB blocks that fails if the
//     file's identity (dev, ino, size, mtime_ns, ctime_ns) changed while it was
//     being read.
//
// Only Unix is supported; elsewhere every function returns ErrUnsupported.
package fsx
