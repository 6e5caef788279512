package autoresolve

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

// DefaultTTL is AUTO_LOADER_CACHE_EXPIRATION_MINUTES' default (1440 min).
const DefaultTTL = 1440 * time.Minute

// DefaultPerm is the mode of entries we write. Improvement (compatible): the
// reference leaves 0600; readers need read access only (§3).
const DefaultPerm os.FileMode = 0o644

// maxEntrySize bounds what we read into memory; real entries are KiBs.
const maxEntrySize = 64 << 20

// TTLMinutes converts AUTO_LOADER_CACHE_EXPIRATION_MINUTES for Options.TTL,
// saturating instead of overflowing for huge values.
func TTLMinutes(n int64) *time.Duration {
	const maxMinutes = int64(math.MaxInt64 / int64(time.Minute))
	d := time.Duration(max(min(n, maxMinutes), -maxMinutes)) * time.Minute
	return &d
}

// Options configure a Cache.
type Options struct {
	// Dir is <H>/auto-resolution-cache (layout.Home.AutoResolutionCache()).
	// A relative path is made absolute once, lexically.
	Dir string
	// Offline (the latched OFFLINE_MODE) makes the cache read-only: register,
	// invalidate and purge are no-ops, retrieval takes no lock, creates no
	// file, deletes nothing and ignores the TTL.
	Offline bool
	// TTL of an entry, counted from created_at; nil means DefaultTTL. A value
	// <= 0 expires every entry (as the reference does).
	TTL *time.Duration
	// Clock returns "now" (created_at on register, expiry on retrieve); nil
	// means time.Now.
	Clock func() time.Time
	// Locker takes the entry locks; share one per process. nil makes a
	// private one with the default timeout.
	Locker *lock.Locker
	// Perm of written entries; 0 means DefaultPerm.
	Perm os.FileMode
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Cache is the auto-resolution cache of one INFERENCE_HOME. It is safe for
// concurrent use.
type Cache struct {
	dir     string
	offline bool
	ttl     time.Duration
	clock   func() time.Time
	locker  *lock.Locker
	perm    os.FileMode
	log     *slog.Logger
}

// New returns a Cache for opts.
func New(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("%w: auto-resolution cache directory not set", errdefs.ErrInvalidParameter)
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("auto-resolution cache directory %s: %w", opts.Dir, err)
	}
	c := &Cache{dir: dir, offline: opts.Offline, ttl: DefaultTTL, clock: opts.Clock, locker: opts.Locker, perm: opts.Perm, log: opts.Logger}
	if opts.TTL != nil {
		c.ttl = *opts.TTL
	}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	if c.locker == nil {
		c.locker = lock.NewLocker(lock.Options{Logger: c.log})
	}
	if c.perm == 0 {
		c.perm = DefaultPerm
	}
	return c, nil
}

// Dir returns the absolute cache directory.
func (c *Cache) Dir() string { return c.dir }

// EntryPath returns <dir>/<key>.json.
func (c *Cache) EntryPath(key string) string { return filepath.Join(c.dir, key+".json") }

// LockPath returns <dir>/.<key>.json.lock.
func (c *Cache) LockPath(key string) string { return filepath.Join(c.dir, "."+key+".json.lock") }

// SymlinkError reports a symlink where §11.3 forbids following one: the
// cache directory, an entry or its lock. It matches errdefs.ErrSymlinkRefused.
type SymlinkError struct {
	Path string
	What string
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("refusing to follow a symlink: %s %s is a symlink or not a regular file/directory; remove it", e.What, e.Path)
}

func (e *SymlinkError) Unwrap() error { return errdefs.ErrSymlinkRefused }

// validKey applies the reference's stem rule: ^[A-Za-z0-9_-]+$.
func validKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty auto-resolution key", errdefs.ErrInvalidParameter)
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && c != '_' && c != '-' {
			return fmt.Errorf("%w: auto-resolution key %q must match ^[A-Za-z0-9_-]+$", errdefs.ErrInvalidParameter, key)
		}
	}
	return nil
}

// isEntryName reports whether a scan considers name: ^[0-9a-f]{64}\.json$.
func isEntryName(name string) bool {
	const suffix = ".json"
	if len(name) != 64+len(suffix) || name[64:] != suffix {
		return false
	}
	for i := 0; i < 64; i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (c *Cache) lock(ctx context.Context, key string) (*lock.Held, error) {
	lp := c.LockPath(key)
	h, err := c.locker.Lock(ctx, lp)
	if err == nil {
		return h, nil
	}
	var te *lock.TimeoutError
	switch {
	case errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotRegular):
		return nil, &SymlinkError{Path: lp, What: "entry lock"}
	case errors.As(err, &te) && !errors.Is(err, errdefs.ErrLockTimeout):
		return nil, fmt.Errorf("%w: %w", errdefs.ErrLockTimeout, err)
	}
	return nil, err
}

func (c *Cache) unlock(h *lock.Held) {
	if err := h.Unlock(); err != nil {
		c.log.Warn("releasing auto-resolution lock failed", "lock", h.Path(), "err", err)
	}
}

// refuseLink returns a *SymlinkError if path exists and is a symlink.
func refuseLink(path, what string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return &SymlinkError{Path: path, What: what}
	}
	return nil
}

// Register writes the entry for key (§8.3): a no-op offline. The entry is
// stamped with the clock and cache_attribution_version 2. It refuses a
// symlinked cache dir, entry or lock, and an entry the reference's schema
// would reject (e.g. a null model_architecture: the reference writes such
// entries and deletes them on the next read; we never write them). Under the
// entry lock the file is replaced atomically (temp, fsync, rename, dir fsync).
func (c *Cache) Register(ctx context.Context, key string, r Resolution) error {
	if c.offline {
		c.log.Debug("offline mode: auto-resolution cache is read-only; register skipped", "key", key)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validKey(key); err != nil {
		return err
	}
	e := NewEntry(r, c.clock())
	data, err := MarshalEntry(e)
	if err != nil {
		return fmt.Errorf("%w: %w", errdefs.ErrInvalidParameter, err)
	}
	if _, err := ParseEntry(data); err != nil {
		return fmt.Errorf("%w: refusing to write an auto-resolution entry the reference would reject: %w", errdefs.ErrInvalidParameter, err)
	}
	if err := refuseLink(c.dir, "auto-resolution cache directory"); err != nil {
		return err
	}
	if err := fsx.EnsureDir(c.dir, 0o777); err != nil {
		if errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotDir) {
			return &SymlinkError{Path: c.dir, What: "auto-resolution cache directory"}
		}
		return fmt.Errorf("create %s: %w", c.dir, err)
	}
	path := c.EntryPath(key)
	if err := refuseLink(path, "auto-resolution entry"); err != nil {
		return err
	}
	if err := refuseLink(c.LockPath(key), "entry lock"); err != nil {
		return err
	}
	held, err := c.lock(ctx, key)
	if err != nil {
		return err
	}
	defer c.unlock(held)
	// The directory may have been swapped while we waited for the lock.
	if err := refuseLink(c.dir, "auto-resolution cache directory"); err != nil {
		return err
	}
	if err := fsx.WriteFileAtomic(path, data, c.perm); err != nil {
		if errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotRegular) {
			return &SymlinkError{Path: path, What: "auto-resolution entry"}
		}
		return fmt.Errorf("write auto-resolution entry %s: %w", path, err)
	}
	c.log.Debug("registered auto-resolution entry", "key", key, "model_id", r.ModelID, "model_package_id", r.ModelPackageID)
	return nil
}

// Retrieve returns the entry for key, or ok=false on a miss. Every problem
// with the entry itself is a miss (logged): a symlinked dir, entry or lock,
// a missing file, unreadable or invalid content, an expired entry.
//
// Online, an existing entry is read under its lock, and an invalid or
// expired one is deleted (never through a symlink). Offline, no lock is
// taken and no lock file created, the file is read with O_NOFOLLOW and must
// not change while it is read, nothing expires and nothing is deleted.
//
// Online on a cache this process cannot write (the lock file cannot be
// created: EROFS, EACCES), the lock-free rules apply as offline, except that
// an expired entry is still a miss (offline.md §7).
//
// err is non-nil only for an invalid key, a cancelled ctx or a lock timeout
// (errdefs.ErrLockTimeout); callers may treat the latter as a miss.
func (c *Cache) Retrieve(ctx context.Context, key string) (e *Entry, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := validKey(key); err != nil {
		return nil, false, err
	}
	d, err := openDir(c.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("auto-resolution cache unusable; treating as a miss", "dir", c.dir, "err", err)
		}
		return nil, false, nil
	}
	defer d.close()
	if c.offline {
		e, ok := c.retrieveOffline(d, key)
		return e, ok, nil
	}
	return c.retrieveOnline(ctx, d, key)
}

func (c *Cache) retrieveOnline(ctx context.Context, d *dir, key string) (*Entry, bool, error) {
	name, lname := key+".json", "."+key+".json.lock"
	miss := func(msg string, args ...any) (*Entry, bool, error) {
		c.log.Debug("auto-resolution miss: "+msg, append([]any{"key", key}, args...)...)
		return nil, false, nil
	}
	st, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return miss("no entry")
	case err != nil:
		return miss("cannot stat entry", "err", err)
	case st.link:
		c.log.Warn("auto-resolution entry is a symlink; ignored (not followed, not deleted)", "path", c.EntryPath(key))
		return nil, false, nil
	case !st.regular:
		return miss("entry is not a regular file")
	}
	if lst, err := d.lstat(lname); err == nil && !lst.regular {
		c.log.Warn("auto-resolution entry lock is a symlink or not a regular file; entry ignored", "path", c.LockPath(key))
		return nil, false, nil
	}

	if !d.stillAtPath() {
		c.log.Warn("auto-resolution cache directory was replaced; entry ignored", "dir", c.dir)
		return nil, false, nil
	}
	held, err := c.lock(ctx, key)
	if err != nil {
		var se *SymlinkError
		switch {
		case errors.As(err, &se):
			c.log.Warn("auto-resolution entry lock refused; entry ignored", "err", err)
			return nil, false, nil
		case errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, fs.ErrNotExist):
			// Read-only cache (offline.md §7): the lock file cannot be
			// created (the lock package reports the read-only retry's
			// ENOENT). Read by the lock-free rules, delete nothing; an
			// expired entry is still a miss.
			e, ok := c.retrieveOffline(d, key)
			if ok && c.expired(e) {
				return miss("expired (read-only cache: not deleted)")
			}
			return e, ok, nil
		}
		return nil, false, err
	}
	defer c.unlock(held)

	st, err = d.lstat(name)
	if err != nil || st.link || !st.regular {
		return miss("entry vanished or changed type while waiting for the lock")
	}
	data, opened, _, err := d.readFile(name, maxEntrySize)
	if err != nil {
		c.deleteIfSame(d, key, st, "unreadable", err)
		return nil, false, nil
	}
	e, err := ParseEntry(data)
	if err != nil {
		c.deleteIfSame(d, key, opened, "invalid", err)
		return nil, false, nil
	}
	if c.expired(e) {
		c.deleteIfSame(d, key, opened, "expired", nil)
		return nil, false, nil
	}
	return e, true, nil
}

// deleteIfSame unlinks the entry only if the name still refers to the
// regular file we judged (a fresh entry renamed in meanwhile is kept).
func (c *Cache) deleteIfSame(d *dir, key string, judged stat, why string, cause error) {
	name := key + ".json"
	cur, err := d.lstat(name)
	if err != nil || cur.link || !cur.regular || cur.dev != judged.dev || cur.ino != judged.ino {
		return
	}
	if err := d.unlink(name); err != nil {
		c.log.Warn("could not delete auto-resolution entry", "path", c.EntryPath(key), "reason", why, "err", err)
		return
	}
	c.log.Info("deleted auto-resolution entry", "path", c.EntryPath(key), "reason", why, "cause", cause)
}

func (c *Cache) expired(e *Entry) bool {
	if c.ttl <= 0 {
		return true
	}
	return c.clock().Sub(e.CreatedAt.Time) > c.ttl
}

// retrieveOffline is the lock-free read: no lock file, no delete, no expiry;
// the bytes count only if (dev, ino, size, mtime, ctime) did not change
// between the lstat before and the fstat after reading.
func (c *Cache) retrieveOffline(d *dir, key string) (*Entry, bool) {
	name := key + ".json"
	miss := func(msg string, args ...any) (*Entry, bool) {
		c.log.Debug("offline auto-resolution miss: "+msg, append([]any{"key", key}, args...)...)
		return nil, false
	}
	before, err := d.lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return miss("no entry")
	case err != nil:
		return miss("cannot stat entry", "err", err)
	case before.link || !before.regular:
		c.log.Warn("auto-resolution entry is a symlink or not a regular file; ignored", "path", c.EntryPath(key))
		return nil, false
	}
	data, opened, after, err := d.readFile(name, maxEntrySize)
	if err != nil {
		return miss("unreadable", "err", err)
	}
	if !before.unchanged(opened) || !before.unchanged(after) {
		return miss("entry changed while being read")
	}
	e, err := ParseEntry(data)
	if err != nil {
		c.log.Warn("invalid auto-resolution entry ignored (offline: kept on disk)", "path", c.EntryPath(key), "err", err)
		return nil, false
	}
	return e, true
}

// Invalidate deletes the entry for key under its lock (§8.3); a no-op
// offline. A missing or symlinked entry (or directory, or lock) is skipped.
func (c *Cache) Invalidate(ctx context.Context, key string) error {
	if c.offline {
		c.log.Debug("offline mode: auto-resolution cache is read-only; invalidate skipped", "key", key)
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validKey(key); err != nil {
		return err
	}
	d, err := openDir(c.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		c.log.Warn("auto-resolution cache unusable; nothing invalidated", "dir", c.dir, "err", err)
		return nil
	}
	defer d.close()
	_, err = c.invalidate(ctx, d, key)
	return err
}

func (c *Cache) invalidate(ctx context.Context, d *dir, key string) (bool, error) {
	name, lname := key+".json", "."+key+".json.lock"
	st, err := d.lstat(name)
	if err != nil || st.link || !st.regular {
		return false, nil
	}
	if lst, err := d.lstat(lname); err == nil && !lst.regular {
		c.log.Warn("auto-resolution entry lock is a symlink or not a regular file; entry not deleted", "path", c.LockPath(key))
		return false, nil
	}
	if !d.stillAtPath() {
		c.log.Warn("auto-resolution cache directory was replaced; entry not deleted", "dir", c.dir)
		return false, nil
	}
	held, err := c.lock(ctx, key)
	if err != nil {
		var se *SymlinkError
		if errors.As(err, &se) {
			c.log.Warn("auto-resolution entry lock refused; entry not deleted", "err", err)
			return false, nil
		}
		return false, err
	}
	defer c.unlock(held)
	st, err = d.lstat(name)
	if err != nil || st.link || !st.regular {
		return false, nil
	}
	if err := d.unlink(name); err != nil {
		return false, err
	}
	c.log.Debug("invalidated auto-resolution entry", "path", c.EntryPath(key))
	return true, nil
}

// Purge deletes every entry (each under its lock) and returns how many were
// deleted; a no-op offline. Lock files are left in place (§9.4).
func (c *Cache) Purge(ctx context.Context) (int, error) {
	if c.offline {
		c.log.Debug("offline mode: auto-resolution cache is read-only; purge skipped")
		return 0, nil
	}
	d, err := openDir(c.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	defer d.close()
	names, err := d.names()
	if err != nil {
		return 0, err
	}
	sort.Strings(names)
	n := 0
	for _, name := range names {
		if !isEntryName(name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		deleted, err := c.invalidate(ctx, d, name[:64])
		if err != nil {
			return n, err
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// Candidate is one entry found by a scan.
type Candidate struct {
	Key   string
	Entry *Entry
}

// Candidates scans the cache for entries of modelID (§8.3): regular
// non-symlink files named ^[0-9a-f]{64}\.json$ in sorted order, each
// retrieved as by Retrieve (online this may delete invalid or expired
// entries of any key, as the reference does), keeping those whose model_id
// equals modelID and, when credentialHash is given, whose credential_hash
// equals it. The newest created_at comes first.
func (c *Cache) Candidates(ctx context.Context, modelID string, credentialHash *string) ([]Candidate, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := openDir(c.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.log.Warn("auto-resolution cache unusable; no candidates", "dir", c.dir, "err", err)
		}
		return nil, nil
	}
	defer d.close()
	names, err := d.names()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Candidate
	for _, name := range names {
		if !isEntryName(name) {
			continue
		}
		if st, err := d.lstat(name); err != nil || st.link || !st.regular {
			continue
		}
		key := name[:64]
		var e *Entry
		var ok bool
		if c.offline {
			e, ok = c.retrieveOffline(d, key)
		} else {
			e, ok, err = c.retrieveOnline(ctx, d, key)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				c.log.Warn("auto-resolution candidate skipped", "key", key, "err", err)
				continue
			}
		}
		if !ok || e.ModelID != modelID {
			continue
		}
		if credentialHash != nil && (e.CredentialHash == nil || *e.CredentialHash != *credentialHash) {
			continue
		}
		out = append(out, Candidate{Key: key, Entry: e})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Entry.CreatedAt.Time.After(out[j].Entry.CreatedAt.Time) })
	return out, nil
}
