// Package blobfs is the content-addressed store H/shared-blobs/<md5>
// (on-disk contract §2, §7, §10; download.md §2.7, §3).
//
// Publication protocol (Put): the bytes are streamed into a private, unique
// temp ".<md5>.partial-<16 hex>" created O_EXCL in shared-blobs, hashed while
// written, fsynced, checked (size, MD5) and only then renamed to "<md5>"
// without ever replacing an existing entry, followed by an fsync of the
// directory. The ".<md5>.lock" flock is taken around the publish step to
// de-duplicate work, but correctness does not depend on it: concurrent
// writers of one blob all succeed and leave one file. A crash leaves at most
// a partial file, which Classify recognises (KindPartial) for GC; partials
// from Put never have a journal, so GC should treat a journal-less partial as
// abandoned once its mtime is older than the partial grace period (24 h,
// download.md §3 rule 7). A downloader that writes its own bytes (ranges,
// resume) uses CreatePartial and Commit, which run the same protocol.
//
// Nothing is ever read, written or deleted through a symlink: a symlinked
// shared-blobs directory, or a symlink or directory at a blob name, is an
// *fsx.UnsafePathError.
package blobfs

import (
	"context"
	cryptomd5 "crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

// DirName is the store's directory under the cache root.
const DirName = "shared-blobs"

// Store is a handle on H/shared-blobs. It is safe for concurrent use.
type Store struct {
	dir           string
	locker        *lock.Locker
	log           *slog.Logger
	readOnlyBlobs bool
	noCreate      bool
	// noLock skips the blob lock entirely (tests prove it is not needed for
	// correctness).
	noLock bool
}

// Option configures Open.
type Option func(*Store)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithReadOnlyBlobs publishes blobs as 0444 (on-disk contract §3: only where
// the reference's local-TRT installer, which overwrites blobs, is not used).
func WithReadOnlyBlobs() Option { return func(s *Store) { s.readOnlyBlobs = true } }

// WithoutCreate leaves a missing shared-blobs alone (offline mode and
// read-only caches write nothing); operations then see an empty store, and
// the symlink checks run per operation.
func WithoutCreate() Option { return func(s *Store) { s.noCreate = true } }

// Open returns the store under home (used as written: made absolute
// lexically, never realpath'ed), creating shared-blobs if needed. locker
// should be the process-wide Locker; nil gives the store a private one.
func Open(home string, locker *lock.Locker, opts ...Option) (*Store, error) {
	abs, err := filepath.Abs(home)
	if err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	if locker == nil {
		locker = lock.NewLocker(lock.Options{})
	}
	s := &Store{dir: filepath.Join(abs, DirName), locker: locker, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	if s.noCreate {
		return s, nil
	}
	if err := fsx.EnsureDir(s.dir, 0o777); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	return s, nil
}

// Dir returns the absolute shared-blobs path.
func (s *Store) Dir() string { return s.dir }

// Path returns the final path of a blob (whether or not it exists).
func (s *Store) Path(md5 string) (string, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, md5), nil
}

// LockPath returns the path of the blob's lock file ".<md5>.lock".
func (s *Store) LockPath(md5 string) (string, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return "", err
	}
	return filepath.Join(s.dir, lockName(md5)), nil
}

// Lock takes the blob's lock, e.g. so a downloader can check-then-download
// once per blob; pass the result to Put, Repair via WithHeldLock.
func (s *Store) Lock(ctx context.Context, md5 string, opts ...lock.CallOption) (*lock.Held, error) {
	lp, err := s.LockPath(md5)
	if err != nil {
		return nil, err
	}
	if err := s.checkDir(); err != nil {
		return nil, err
	}
	return s.locker.Lock(ctx, lp, opts...)
}

// OpOption adjusts one Put or Repair call.
type OpOption func(*opOpts)

type opOpts struct{ held *lock.Held }

// WithHeldLock tells Put/Repair that the caller already holds the blob's lock
// (from Store.Lock); locks are not re-entrant, so they must not take it again.
func WithHeldLock(h *lock.Held) OpOption { return func(o *opOpts) { o.held = h } }

// checkDir refuses a shared-blobs that became a symlink or non-directory.
func (s *Store) checkDir() error {
	fi, err := os.Lstat(s.dir)
	if err != nil {
		return fmt.Errorf("blob store: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &fsx.UnsafePathError{Op: "use blob store", Path: s.dir, Kind: fsx.ErrSymlink}
	}
	if !fi.IsDir() {
		return &fsx.UnsafePathError{Op: "use blob store", Path: s.dir, Kind: fsx.ErrNotDir}
	}
	return nil
}

// Stat returns the blob's info if it exists as a regular, non-symlink file.
// A missing blob gives an error matching fs.ErrNotExist; a symlink, directory
// or other type at its name an *fsx.UnsafePathError.
func (s *Store) Stat(md5 string) (fs.FileInfo, error) {
	p, err := s.Path(md5)
	if err != nil {
		return nil, err
	}
	if err := s.checkDir(); err != nil {
		return nil, err
	}
	return fsx.RegularNoFollow(p)
}

// Has reports whether the blob exists as a regular non-symlink file, without
// hashing it (existing blobs are trusted for download decisions, as by the
// reference, and re-hashed at materialization).
func (s *Store) Has(md5 string) (bool, error) {
	_, err := s.Stat(md5)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Put stores the content of r as blob md5 and returns its path. size is the
// expected length, or -1 if unknown. If the blob already exists as a regular
// file, Put returns at once without reading r. Otherwise r is streamed into a
// private temp, verified and published atomically; on a size or MD5 mismatch
// (*blobstore.SizeMismatchError, *blobstore.DigestMismatchError) or any other failure nothing is
// published and the temp is removed.
func (s *Store) Put(ctx context.Context, md5 string, r io.Reader, size int64, opts ...OpOption) (string, error) {
	res, err := s.PutDetailed(ctx, md5, r, size, opts...)
	return res.Path, err
}

// PutResult describes the outcome of PutDetailed or Commit.
type PutResult struct {
	Path string
	// Published: our bytes became the blob. False when an existing blob was
	// used (found before streaming, or published by a concurrent writer).
	Published bool
	// Size and SHA256 of the bytes we verified (zero if nothing was streamed;
	// SHA256 is also empty if Commit was given only the MD5). With File they
	// are what .meta/verified/<md5> records (download.md §2.7 step 9).
	Size   int64
	SHA256 string
	File   fsx.FileID // identity of the published blob; zero unless Published
}

// Digests are hashes a caller computed while writing a partial.
type Digests struct{ MD5, SHA256 string }

// PutDetailed is Put with a description of what happened. MD5 and SHA-256
// are computed on the fly (no re-read).
func (s *Store) PutDetailed(ctx context.Context, md5 string, r io.Reader, size int64, opts ...OpOption) (PutResult, error) {
	final, err := s.Path(md5)
	if err != nil {
		return PutResult{}, err
	}
	// Also recreates shared-blobs if it was removed since Open.
	if err := fsx.EnsureDir(s.dir, 0o777); err != nil {
		return PutResult{}, fmt.Errorf("blob store: %w", err)
	}
	if ok, err := existing(final); ok || err != nil {
		if err != nil {
			return PutResult{}, fmt.Errorf("store blob %s: %w", md5, err)
		}
		return PutResult{Path: final}, nil
	}
	f, err := s.CreatePartial(md5)
	if err != nil {
		return PutResult{}, err
	}
	hm, hs := cryptomd5.New(), sha256.New()
	n, err := copyCtx(ctx, io.MultiWriter(f, hm, hs), r, size)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return PutResult{}, fmt.Errorf("store blob %s: %w", md5, err)
	}
	d := Digests{MD5: hex.EncodeToString(hm.Sum(nil)), SHA256: hex.EncodeToString(hs.Sum(nil))}
	return s.commit(ctx, md5, f, size, n, d, opts)
}

// CreatePartial creates a new, private partial file ".<md5>.partial-<16 hex>"
// in shared-blobs (O_EXCL, mode 0666 &^ umask, the reference's blob mode)
// for a caller that writes the blob itself, e.g. with ranged WriteAt. Hand
// it to Commit, or close and remove it. f.Name() is its path.
func (s *Store) CreatePartial(md5 string) (*os.File, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return nil, err
	}
	if err := fsx.EnsureDir(s.dir, 0o777); err != nil {
		return nil, fmt.Errorf("blob store: %w", err)
	}
	for attempt := 0; ; attempt++ {
		token, err := fsx.HexToken()
		if err != nil {
			return nil, err
		}
		tmp := filepath.Join(s.dir, partialName(md5, token))
		// O_EXCL|O_NOFOLLOW: a process writes only into partials it created
		// (download.md §3 rule 1).
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollow, 0o666)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, fs.ErrExist) || attempt >= 8 {
			return nil, fmt.Errorf("store blob %s: create temp: %w", md5, err)
		}
	}
}

// Commit verifies and publishes a partial the caller wrote (one from
// CreatePartial): fsync, size check (size < 0: unknown), MD5 check, then the
// same publication as Put. known carries digests the caller computed while
// writing; nil means a stable re-read computes them. Unless its name is
// refused up front, the partial is consumed on every outcome: renamed into
// place, or removed (mismatch, another writer won, error).
func (s *Store) Commit(ctx context.Context, md5, partial string, size int64, known *Digests, opts ...OpOption) (PutResult, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return PutResult{}, err
	}
	if k, m := Classify(filepath.Base(partial)); k != KindPartial || m != md5 || filepath.Dir(filepath.Clean(partial)) != s.dir {
		return PutResult{}, fmt.Errorf("commit blob %s: %s is not one of its partial files in %s", md5, partial, s.dir)
	}
	fail := func(f *os.File, err error) (PutResult, error) {
		if f != nil {
			f.Close()
		}
		os.Remove(partial)
		return PutResult{}, fmt.Errorf("store blob %s: %w", md5, err)
	}
	// Read-only descriptor: enough for fsync and fchmod of our own file.
	f, err := fsx.OpenNoFollow(partial)
	if err != nil {
		return fail(nil, err)
	}
	var d Digests
	var id fsx.FileID
	if known != nil {
		d = *known
		id, err = fsx.FstatID(f)
	} else {
		hm, hs := cryptomd5.New(), sha256.New()
		id, err = fsx.StableHash(ctx, partial, io.MultiWriter(hm, hs))
		d = Digests{MD5: hex.EncodeToString(hm.Sum(nil)), SHA256: hex.EncodeToString(hs.Sum(nil))}
	}
	if err != nil {
		return fail(f, err)
	}
	return s.commit(ctx, md5, f, size, id.Size, d, opts)
}

// commit runs the commit protocol (download.md §2.7) for the open partial f
// holding n bytes with digests d. It always closes f, and removes the
// partial unless it became the blob.
func (s *Store) commit(ctx context.Context, md5 string, f *os.File, size, n int64, d Digests, opts []OpOption) (res PutResult, err error) {
	var oo opOpts
	for _, o := range opts {
		o(&oo)
	}
	tmp := f.Name()
	final := filepath.Join(s.dir, md5)
	published := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !published {
			os.Remove(tmp)
		}
		if err != nil {
			err = fmt.Errorf("store blob %s: %w", md5, err)
		}
	}()

	// 1. fsync before the bytes can get their final name (lessons I7).
	if err := f.Sync(); err != nil {
		return PutResult{}, fmt.Errorf("fsync: %w", err)
	}
	// 2, 3. size and MD5.
	if size >= 0 && n != size {
		return PutResult{}, &blobstore.SizeMismatchError{Expected: size, Actual: n, AtLeast: n > size}
	}
	if d.MD5 != md5 {
		return PutResult{}, &blobstore.DigestMismatchError{Expected: md5, Actual: d.MD5, Size: n}
	}
	// 5. optional read-only blobs, through our descriptor.
	if s.readOnlyBlobs {
		if err := f.Chmod(0o444); err != nil {
			return PutResult{}, err
		}
	}
	cerr := f.Close()
	f = nil
	if cerr != nil {
		return PutResult{}, fmt.Errorf("close: %w", cerr)
	}
	// 4, 6, 7. under the lock when we can get it: re-check, no-replace
	// rename, fsync of the directory.
	unlock, err := s.lockForPublish(ctx, md5, oo.held)
	if err != nil {
		return PutResult{}, err
	}
	defer unlock()
	published, err = s.publish(tmp, final)
	if err != nil {
		return PutResult{}, err
	}
	res = PutResult{Path: final, Published: published, Size: n, SHA256: d.SHA256}
	if published {
		if id, err := fsx.LstatID(final); err == nil {
			res.File = id
		}
	}
	return res, nil
}

// copyCtx copies r to w in 1 MiB blocks, checking ctx between blocks. With a
// known size it reads at most size+1 bytes: enough to detect an overlong
// stream without draining it.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader, size int64) (int64, error) {
	if size >= 0 {
		r = io.LimitReader(r, size+1)
	}
	buf := make([]byte, fsx.BlockSize)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// existing reports whether final is a regular file; a symlink, directory or
// other type there is an error (never followed, never replaced).
func existing(final string) (bool, error) {
	_, err := fsx.RegularNoFollow(final)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// lockForPublish takes the blob lock unless the caller holds it. The lock
// only de-duplicates: if it cannot be had in time (a reference process may
// hold it for its whole download), we publish without it, which the
// no-replace rename keeps correct.
func (s *Store) lockForPublish(ctx context.Context, md5 string, held *lock.Held) (func(), error) {
	noop := func() {}
	if s.noLock {
		return noop, nil
	}
	if held != nil {
		if lp, _ := s.LockPath(md5); filepath.Clean(held.Path()) != lp {
			return nil, fmt.Errorf("held lock %s is not the blob's lock %s", held.Path(), lp)
		}
		return noop, nil
	}
	h, err := s.Lock(ctx, md5)
	var te *lock.TimeoutError
	if errors.As(err, &te) {
		s.log.Warn("publishing blob without its lock; the holder is slow or stuck", "blob", md5, "lock", te.Path, "waited", te.Waited)
		return noop, nil
	}
	if err != nil {
		return nil, err
	}
	return func() {
		if err := h.Unlock(); err != nil {
			s.log.Warn("releasing blob lock", "blob", md5, "err", err)
		}
	}, nil
}

// publish renames the verified temp to final unless something already sits
// there. It reports whether our temp became the blob (false: another writer
// won, and our temp must be removed).
func (s *Store) publish(tmp, final string) (bool, error) {
	// Re-check under the lock: another writer may have won meanwhile.
	if ok, err := existing(final); ok || err != nil {
		return false, err
	}
	err := fsx.RenameNoReplace(tmp, final)
	if errors.Is(err, fs.ErrExist) {
		// Lost the race to a writer that did not take the lock; whatever is
		// there must be a regular file for this to count as success.
		if ok, err := existing(final); ok || err != nil {
			return false, err
		}
		return false, fmt.Errorf("publish: %s appeared and vanished during publication; retry", final)
	}
	if err != nil {
		return false, fmt.Errorf("publish: %w", err)
	}
	if err := fsx.SyncDir(s.dir); err != nil {
		return true, err
	}
	return true, nil
}

// Verify re-hashes the blob with a stable read (O_NOFOLLOW, 1 MiB blocks,
// identity unchanged during the read). A wrong hash is *blobstore.DigestMismatchError,
// a missing blob matches fs.ErrNotExist, a concurrent change fsx.ErrChanged.
func (s *Store) Verify(ctx context.Context, md5 string) error {
	_, err := s.verify(ctx, md5)
	return err
}

func (s *Store) verify(ctx context.Context, md5 string) (fsx.FileID, error) {
	p, err := s.Path(md5)
	if err != nil {
		return fsx.FileID{}, err
	}
	if err := s.checkDir(); err != nil {
		return fsx.FileID{}, err
	}
	got, id, err := fsx.MD5File(ctx, p)
	if err != nil {
		return fsx.FileID{}, fmt.Errorf("verify blob %s: %w", md5, err)
	}
	if got != md5 {
		return id, fmt.Errorf("verify blob %s: %w", md5, &blobstore.DigestMismatchError{Expected: md5, Actual: got, Size: id.Size})
	}
	return id, nil
}

// Repair implements the on-disk contract §7 improvement: under the blob's
// lock, re-hash the blob; if it is wrong, move it to ".<md5>.corrupt-<token>"
// and delete it, so the next download replaces it. It reports whether a
// corrupt blob was removed. A missing blob is (false, nil); a symlink or
// directory at the name is left alone and reported as *fsx.UnsafePathError.
// Unlike Put, Repair never proceeds without the lock: it deletes.
func (s *Store) Repair(ctx context.Context, md5 string, opts ...OpOption) (bool, error) {
	var oo opOpts
	for _, o := range opts {
		o(&oo)
	}
	final, err := s.Path(md5)
	if err != nil {
		return false, err
	}
	if oo.held == nil {
		h, err := s.Lock(ctx, md5)
		if err != nil {
			return false, fmt.Errorf("repair blob %s: %w", md5, err)
		}
		defer h.Unlock()
	} else if lp, _ := s.LockPath(md5); filepath.Clean(oo.held.Path()) != lp {
		return false, fmt.Errorf("repair blob %s: held lock %s is not the blob's lock %s", md5, oo.held.Path(), lp)
	}

	bad, err := s.verify(ctx, md5)
	var dm *blobstore.DigestMismatchError
	switch {
	case err == nil:
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case !errors.As(err, &dm):
		return false, err
	}

	// Rename aside rather than unlink: a lock-less writer may publish a good
	// copy at any moment, and only after the rename can we tell which inode
	// we moved.
	token, err := fsx.HexToken()
	if err != nil {
		return false, err
	}
	aside := filepath.Join(s.dir, corruptName(md5, token))
	if err := os.Rename(final, aside); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, fmt.Errorf("repair blob %s: %w", md5, err)
	}
	moved, err := fsx.LstatID(aside)
	if err == nil && !moved.SameFile(bad) {
		// We moved a fresh copy, not the corrupt one (which that writer's
		// publish already displaced): put it back unless yet another one
		// arrived, then drop ours.
		if rerr := fsx.RenameNoReplace(aside, final); rerr == nil {
			s.log.Info("corrupt blob was replaced concurrently; kept the new copy", "blob", md5)
			return true, fsx.SyncDir(s.dir)
		}
	}
	if err := os.Remove(aside); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("repair blob %s: moved corrupt blob to %s but could not delete it: %w", md5, aside, err)
	}
	s.log.Warn("removed corrupt blob; it will be downloaded again", "blob", md5, "actual_md5", dm.Actual, "size", dm.Size)
	return true, fsx.SyncDir(s.dir)
}
