// Package lock implements the cache's inter-process locks (on-disk contract
// §9): flock(2) on dot-named lock files, polled until a deadline, with an
// nlink/inode re-check after acquiring, and a per-path in-process mutex in
// front of flock.
//
// A Locker owns the in-process mutex table; every part of a process that locks
// cache files must share one Locker (there is deliberately no package-level
// state). Locks are not re-entrant: an operation that already holds a lock
// passes its *Held on instead of locking again.
package lock

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/modelcache/modelcache/errdefs"
)

// Defaults from the contract (§9, download.md §2.2).
const (
	DefaultTimeout         = 20 * time.Second
	DefaultPollInterval    = 50 * time.Millisecond
	DefaultWaitLogInterval = 10 * time.Second
	DefaultMode            = 0o644
)

// Options configure a Locker. Zero values mean the defaults.
type Options struct {
	// Timeout bounds every wait without progress (INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT).
	Timeout time.Duration
	// PollInterval between flock(LOCK_EX|LOCK_NB) attempts.
	PollInterval time.Duration
	// Mode of created lock files: 0644, or 0664 for a group-shared cache.
	// Existing files we own are widened (never narrowed) to it, as the
	// reference forces 0644.
	Mode os.FileMode
	// UnlinkOnRelease unlinks the lock file while still holding it, then
	// unlocks. Only safe when no filelock < 3.21 peer uses the cache (§9.4).
	UnlinkOnRelease bool
	// Logger receives "still waiting" lines; nil means slog.Default().
	Logger *slog.Logger
	// WaitLogInterval between "still waiting" reports; negative disables them.
	WaitLogInterval time.Duration
	// OnWait, if set, is called with each "still waiting" report (in the
	// waiting goroutine), in addition to the log line.
	OnWait func(WaitStatus)
}

// WaitStatus describes an ongoing wait, for logs and OnWait.
type WaitStatus struct {
	Path   string
	Waited time.Duration
	// HeldInProcess: the holder is another goroutine of this process; Held is
	// then how long it has held the lock. Across processes flock cannot tell.
	HeldInProcess bool
	Held          time.Duration
	// Progress is the last value of the WithProgress function, if any.
	Progress    int64
	HasProgress bool
}

// Locker hands out locks. It is safe for concurrent use.
type Locker struct {
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	slots map[string]*slot // by absolute, cleaned lock path

	// testHookAfterOpen, if set, runs between open and flock of each attempt
	// (tests use it to interleave a peer deterministically).
	testHookAfterOpen func()
}

// slot is the in-process mutex of one lock path. A buffered channel rather
// than a sync.Mutex so that waiting can be abandoned on deadline or ctx.
type slot struct {
	sem       chan struct{}
	refs      int       // goroutines holding or waiting; the slot is dropped at 0
	heldSince time.Time // guarded by Locker.mu
}

// NewLocker returns a Locker with opts (zero fields take the defaults).
func NewLocker(opts Options) *Locker {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.Mode == 0 {
		opts.Mode = DefaultMode
	}
	if opts.WaitLogInterval == 0 {
		opts.WaitLogInterval = DefaultWaitLogInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Locker{opts: opts, log: log, slots: map[string]*slot{}}
}

// Timeout returns the default wait bound of this Locker.
func (l *Locker) Timeout() time.Duration { return l.opts.Timeout }

// CallOption adjusts one Lock call.
type CallOption func(*callOpts)

type callOpts struct {
	timeout  time.Duration
	progress func() int64
	try      bool
}

// WithTimeout overrides the Locker's timeout for one call (values <= 0 are ignored).
func WithTimeout(d time.Duration) CallOption {
	return func(c *callOpts) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithProgress makes the wait progress-aware (§9 Improvement): fn is sampled
// at every poll, and while its value keeps changing (e.g. the holder's partial
// file grows) the timeout counts from the last change instead of the start.
// ctx still bounds the whole wait. Do not use it on filesystems where flock is
// unreliable (download.md §3 rule 8).
func WithProgress(fn func() int64) CallOption {
	return func(c *callOpts) { c.progress = fn }
}

// TimeoutError is returned when a lock could not be acquired in time.
type TimeoutError struct {
	Path   string
	Waited time.Duration
	// InProcess: the holder was another goroutine of this process.
	InProcess bool
}

func (e *TimeoutError) Error() string {
	if e.InProcess {
		return fmt.Sprintf("timed out after %s waiting for lock file %s, held by another operation of this process; "+
			"it is still working or stuck (raise INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT if it is slow but alive)",
			e.Waited.Round(time.Millisecond), e.Path)
	}
	return fmt.Sprintf("timed out after %s waiting for lock file %s, held by another process; "+
		"find it with `fuser -v %s` or `lsof %s` and stop it if it is stuck, "+
		"or raise INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT (seconds) if it is slow but alive",
		e.Waited.Round(time.Millisecond), e.Path, e.Path, e.Path)
}

// Timeout marks the error as a timeout (net.Error style).
func (e *TimeoutError) Timeout() bool { return true }

// Unwrap lets callers test errors.Is(err, errdefs.ErrLockTimeout).
func (e *TimeoutError) Unwrap() error { return errdefs.ErrLockTimeout }

// Held is an acquired lock. Unlock it exactly once; further calls are no-ops.
type Held struct {
	l    *Locker
	path string
	key  string
	s    *slot
	fl   *flockFile

	mu       sync.Mutex
	released bool
}

// Path returns the lock file path as given to Lock.
func (h *Held) Path() string { return h.path }

// Unlock releases the flock (LOCK_UN + close; unlinking first only with
// UnlinkOnRelease), then the in-process mutex.
func (h *Held) Unlock() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.released {
		return nil
	}
	h.released = true
	err := h.fl.release(h.key, h.l.opts.UnlinkOnRelease)
	h.l.leave(h.key, h.s, true)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", h.path, err)
	}
	return nil
}

// Lock acquires the lock file at path, creating it if needed. It waits at
// most the Locker's timeout (or WithTimeout), and never past ctx. A symlink or
// non-regular file at path is refused with an error matching
// fsx.ErrSymlink / fsx.ErrNotRegular; nothing is created through it.
func (l *Locker) Lock(ctx context.Context, path string, opts ...CallOption) (*Held, error) {
	co := callOpts{timeout: l.opts.Timeout}
	for _, o := range opts {
		o(&co)
	}
	return l.lock(ctx, path, co)
}

// TryLock makes a single attempt. It returns (nil, false, nil) when the lock
// is busy (GC uses it to skip blobs whose lock is taken).
func (l *Locker) TryLock(ctx context.Context, path string) (*Held, bool, error) {
	h, err := l.lock(ctx, path, callOpts{timeout: l.opts.Timeout, try: true})
	var te *TimeoutError
	if errors.As(err, &te) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return h, true, nil
}

func (l *Locker) lock(ctx context.Context, path string, co callOpts) (*Held, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	w := newWaiter(l, path, co)
	s := l.enter(abs)

	// 1. In-process mutex: goroutines must exclude each other even where
	// flock would not (NFS emulates it with per-process POSIX locks).
	if err := w.acquireSlot(ctx, s); err != nil {
		l.leave(abs, s, false)
		return nil, err
	}
	l.mu.Lock()
	s.heldSince = time.Now()
	l.mu.Unlock()

	// 2. flock, polled.
	fl, err := w.acquireFlock(ctx, abs)
	if err != nil {
		l.leave(abs, s, true)
		return nil, err
	}
	return &Held{l: l, path: path, key: abs, s: s, fl: fl}, nil
}

func (l *Locker) enter(key string) *slot {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.slots[key]
	if s == nil {
		s = &slot{sem: make(chan struct{}, 1)}
		l.slots[key] = s
	}
	s.refs++
	return s
}

func (l *Locker) leave(key string, s *slot, owned bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if owned {
		s.heldSince = time.Time{}
		<-s.sem
	}
	s.refs--
	if s.refs == 0 {
		delete(l.slots, key)
	}
}

func (l *Locker) heldFor(s *slot) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.heldSince.IsZero() {
		return 0, false
	}
	return time.Since(s.heldSince), true
}

// waiter tracks one Lock call's deadline, progress and wait reports.
type waiter struct {
	l       *Locker
	path    string
	co      callOpts
	start   time.Time
	nextLog time.Time

	progress     int64
	hasProgress  bool
	lastProgress time.Time // the timeout counts from here
	inProcess    bool      // last observed holder was in-process
}

func newWaiter(l *Locker, path string, co callOpts) *waiter {
	now := time.Now()
	w := &waiter{l: l, path: path, co: co, start: now, lastProgress: now}
	if l.opts.WaitLogInterval > 0 {
		w.nextLog = now.Add(l.opts.WaitLogInterval)
	}
	if co.progress != nil {
		w.progress, w.hasProgress = co.progress(), true
	}
	return w
}

// check is called after each failed attempt: it samples progress, emits the
// periodic report, and returns a *TimeoutError once the deadline passed.
func (w *waiter) check(s *slot) error {
	now := time.Now()
	if w.co.progress != nil {
		if p := w.co.progress(); p != w.progress {
			w.progress, w.lastProgress = p, now
		}
	}
	if w.co.try || now.Sub(w.lastProgress) >= w.co.timeout {
		return &TimeoutError{Path: w.path, Waited: now.Sub(w.start), InProcess: w.inProcess}
	}
	if !w.nextLog.IsZero() && !now.Before(w.nextLog) {
		w.nextLog = now.Add(w.l.opts.WaitLogInterval)
		st := WaitStatus{Path: w.path, Waited: now.Sub(w.start), Progress: w.progress, HasProgress: w.hasProgress}
		if w.inProcess {
			st.Held, st.HeldInProcess = w.l.heldFor(s)
		}
		w.report(st)
	}
	return nil
}

func (w *waiter) report(st WaitStatus) {
	msg := fmt.Sprintf("still waiting for %s (waited %ds", st.Path, int(st.Waited.Seconds()))
	if st.HeldInProcess {
		msg += fmt.Sprintf(", held %ds by this process", int(st.Held.Seconds()))
	}
	if st.HasProgress {
		msg += fmt.Sprintf(", progress %d", st.Progress)
	}
	msg += ")"
	attrs := []any{"lock", st.Path, "waited", st.Waited.Round(time.Second)}
	if st.HeldInProcess {
		attrs = append(attrs, "held_in_process", st.Held.Round(time.Second))
	}
	if st.HasProgress {
		attrs = append(attrs, "progress", st.Progress)
	}
	w.l.log.Info(msg, attrs...)
	if w.l.opts.OnWait != nil {
		w.l.opts.OnWait(st)
	}
}

func (w *waiter) ctxErr(ctx context.Context) error {
	return fmt.Errorf("waiting for lock %s: %w", w.path, ctx.Err())
}

func (w *waiter) acquireSlot(ctx context.Context, s *slot) error {
	select {
	case s.sem <- struct{}{}:
		return nil
	default:
	}
	w.inProcess = true
	defer func() { w.inProcess = false }()
	tick := time.NewTicker(w.l.opts.PollInterval)
	defer tick.Stop()
	for {
		if err := w.check(s); err != nil {
			return err
		}
		select {
		case s.sem <- struct{}{}:
			return nil
		case <-ctx.Done():
			return w.ctxErr(ctx)
		case <-tick.C:
		}
	}
}

func (w *waiter) acquireFlock(ctx context.Context, abs string) (*flockFile, error) {
	stale := 0
	for {
		fl, status, err := tryFlock(abs, w.l.opts.Mode, w.l.testHookAfterOpen)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", w.path, err)
		}
		switch status {
		case acquired:
			return fl, nil
		case stalePath:
			// We locked an inode that is no longer the one at path (a peer
			// unlinked or replaced it on release). Retry at once, then back
			// off so that a pathological filesystem cannot make us spin.
			stale++
			if stale <= 3 {
				if err := ctx.Err(); err != nil {
					return nil, w.ctxErr(ctx)
				}
				continue
			}
		case busy:
			stale = 0
		}
		if err := w.check(nil); err != nil {
			return nil, err
		}
		t := time.NewTimer(w.l.opts.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, w.ctxErr(ctx)
		case <-t.C:
		}
	}
}
