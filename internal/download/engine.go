package download

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/lock"
	"golang.org/x/sync/semaphore"
)

// Engine downloads files for one cache root. It is safe for concurrent use;
// a process should use one Engine (single flight and the stream budget are
// per Engine).
type Engine struct {
	tune     Tuning
	offline  bool
	blobs    *blobfs.Store
	locks    *lock.Locker
	client   *http.Client
	log      *slog.Logger
	observer Observer
	obsMu    sync.Mutex
	metaDir  string // H/.meta/verified; "" disables the records

	self            journal.Owner // this process (host, pid, start time) for journals
	unreliableLocks bool          // shared-blobs is on a filesystem where flock may be a no-op

	streams  *semaphore.Weighted // global stream budget (response bodies)
	bufs     sync.Pool
	keptPeak atomic.Int64 // most bytes any job held for its hash followers

	mu      sync.Mutex
	flights map[string]*flight
	tokens  map[string]bool // partial tokens this engine is writing
	rates   []float64       // throughput of recently completed parts (B/s)
	files   map[*fileProgress]struct{}
	ticking bool

	hooks testHooks
}

// testHooks let in-package tests inject faults that the real world produces
// rarely (a full disk); nil hooks do nothing.
type testHooks struct {
	wrapPartial func(*os.File) error                  // called on each new partial; an error fails it
	writeErr    func(path string, off int64) error    // called before each write; an error replaces it
	directErr   func(off int64) error                 // called before each direct write; an error replaces it
	beforeHash  func()                                // called before a follower hashes a kept chunk
	freeBytes   func(dir string) (int64, bool, error) // replaces statfs (free bytes, network fs)
	afterWrite  func(n int64)                         // called after each write with its length
}

// Option configures New.
type Option func(*Engine)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithObserver receives progress events (default: none, library mode).
func WithObserver(o Observer) Option { return func(e *Engine) { e.observer = o } }

// WithTuning adjusts the defaults derived from the configuration.
func WithTuning(fn func(*Tuning)) Option { return func(e *Engine) { fn(&e.tune) } }

// WithHTTPClient replaces the client from NewClient. Only for tests and
// special transports: the offline guarantee then rests on the engine's own
// guard alone (it never sends a request while offline).
func WithHTTPClient(c *http.Client) Option { return func(e *Engine) { e.client = c } }

// New returns an engine that publishes blobs into blobs, using locks (the
// same Locker the blob store was opened with) for blob locks.
func New(cfg config.Config, blobs *blobfs.Store, locks *lock.Locker, opts ...Option) (*Engine, error) {
	if blobs == nil || locks == nil {
		return nil, errors.New("download.New: blob store and locker are required")
	}
	e := &Engine{
		tune:    DefaultTuning(cfg),
		offline: cfg.Offline,
		blobs:   blobs,
		locks:   locks,
		log:     slog.Default(),
		metaDir: filepath.Join(filepath.Dir(blobs.Dir()), ".meta", "verified"),
		flights: map[string]*flight{},
		tokens:  map[string]bool{},
		files:   map[*fileProgress]struct{}{},
	}
	for _, o := range opts {
		o(e)
	}
	e.tune = e.tune.withDefaults()
	if e.client == nil {
		o := TransportOptionsFrom(cfg)
		o.ConnectTimeout = cfg.ChunkConnectTimeout
		e.client = NewClient(o)
	} else if e.client.CheckRedirect == nil {
		// A caller's client gets the engine's redirect rules too.
		c := *e.client
		c.CheckRedirect = checkRedirect
		e.client = &c
	}
	e.self = journal.Self()
	e.streams = semaphore.NewWeighted(int64(e.tune.GlobalStreams))
	bs := e.tune.BufferSize
	e.bufs.New = func() any { b := alignedBuf(bs); return &b }
	if !e.offline {
		if magic, err := fsMagic(blobs.Dir()); err == nil && unreliableLockFS(magic) {
			e.unreliableLocks = true
			e.log.Info("flock may not exclude other hosts on this filesystem; blob locks are hints, waits are capped at the lock timeout",
				"dir", blobs.Dir(), "fs_magic", fmt.Sprintf("%#x", magic))
		}
	}
	return e, nil
}

// Tuning returns the engine's effective tuning.
func (e *Engine) Tuning() Tuning { return e.tune }

// Client returns the engine's HTTP client (offline-guarded when the
// configuration is offline).
func (e *Engine) Client() *http.Client { return e.client }

func (e *Engine) getBuf() *[]byte { return e.bufs.Get().(*[]byte) }

func (e *Engine) putBuf(b *[]byte) { e.bufs.Put(b) }

func (e *Engine) acquireStream(ctx context.Context) error {
	if err := e.streams.Acquire(ctx, 1); err != nil {
		return context.Cause(ctx)
	}
	return nil
}

func (e *Engine) releaseStream() { e.streams.Release(1) }

func (e *Engine) recordPartRate(n int64, d time.Duration) {
	if n < 100<<10 || d <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rates = append(e.rates, float64(n)/d.Seconds())
	if len(e.rates) > 30 {
		e.rates = e.rates[len(e.rates)-30:]
	}
}

func (e *Engine) partRateMedian() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rates) < 5 {
		return 0
	}
	return median(e.rates)
}

func (e *Engine) tokenActive(t string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokens[t]
}

func (e *Engine) setToken(t string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on {
		e.tokens[t] = true
	} else {
		delete(e.tokens, t)
	}
}

// owner is this engine's journal owner record for a partial of token.
func (e *Engine) owner(token string) journal.Owner {
	o := e.self
	o.Token = token
	return o
}

// ownerAlive decides whether a journal's owner may still write to its
// partial (download.md §3 rule 3): this process by its tokens in use,
// another on this host by pid and start time, another host by a heartbeat
// younger than twice the stall timeout.
func (e *Engine) ownerAlive(jf *journal.File) bool {
	l := journal.Liveness{Self: e.self, TokenActive: e.tokenActive, RemoteStale: 2 * e.tune.StallTimeout}
	return l.Alive(jf.Owner, jf.Heartbeat(), time.Now())
}

// writeVerified records .meta/verified/<md5> (on-disk contract §12).
func (e *Engine) writeVerified(md5 string, r blobfs.PutResult) {
	if e.metaDir == "" || r.SHA256 == "" {
		return
	}
	if err := writeVerifiedRecord(e.metaDir, md5, r); err != nil {
		e.log.Debug("cannot write verified record", "blob", md5, "err", err)
	}
}
