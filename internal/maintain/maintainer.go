package maintain

import (
	"log/slog"
	"time"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/layout"
)

// Maintainer runs the inspection and maintenance commands on one opened
// cache. It holds no state besides its configuration; it is safe for
// concurrent use, though GC and Purge serialize on H/.meta/gc.lock.
type Maintainer struct {
	c    *cache.Cache
	home layout.Home
	log  *slog.Logger
	now  func() time.Time
	// ttl of auto-resolution entries, as the reference computes it.
	ttl time.Duration
	// parallel bounds walkers and hashers (0: derived from GOMAXPROCS).
	parallel int
}

// Option configures New.
type Option func(*Maintainer)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(m *Maintainer) { m.log = l } }

// WithClock injects "now" for ages, grace periods, lease and entry expiry;
// pass the clock given to cache.Open so both agree on expiry.
func WithClock(now func() time.Time) Option { return func(m *Maintainer) { m.now = now } }

// WithParallelism bounds how many model directories are walked and how
// many blobs are hashed at once (default: 2×GOMAXPROCS walkers, capped at
// 16, and one hasher per core).
func WithParallelism(n int) Option { return func(m *Maintainer) { m.parallel = n } }

// New returns a Maintainer for c.
func New(c *cache.Cache, opts ...Option) *Maintainer {
	m := &Maintainer{c: c, home: c.Home, log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(m)
	}
	m.ttl = *autoresolve.TTLMinutes(int64(c.Config.AutoResolutionTTLMinutes))
	return m
}

// offline is the latched OFFLINE_MODE decision of the cache's Config.
func (m *Maintainer) offline() bool { return m.c.Config.Offline }
