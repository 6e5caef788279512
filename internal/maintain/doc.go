// Package maintain inspects and maintains one INFERENCE_HOME: listing models
// and packages (List, Show), disk usage (DiskUsage), offline verification
// with optional repair (Verify), garbage collection (GC) and removal (Purge),
// following on-disk contract §9, §11 and §12 and offline.md §5.
//
// It also owns the Go-only bookkeeping under H/.meta (§12): last-used stamps
// (TouchLastUsed, called after every successful load), verified stamps
// (WriteVerifiedStamp, called by the downloader after a publish) and leases
// that protect in-flight work from GC (CreateLease).
//
// Safety rules that every function here keeps:
//
//   - Nothing is read, written or deleted through a symlink: a symlink planted
//     in the cache is reported, and at most the link itself is removed (when
//     its whole package is purged), never what it points to.
//   - Sizes are apparent sizes (lstat st_size, each inode once), the numbers
//     `du -b` prints for the same files.
//   - GC and Purge run under H/.meta/gc.lock; a blob is deleted only while its
//     .<md5>.lock is held, and never when a package links to it, an
//     auto-resolution entry or offline record names it, or a lease protects it.
//   - In OFFLINE_MODE nothing under H is written, locked or deleted
//     (offline.md §7): GC, Purge and repairs refuse, Verify writes no stamps.
package maintain
