package tier

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/tier/s3store"
)

// Tier is the shared object-store tier of one process. A nil *Tier and a
// disabled one are valid and do nothing: Lookup misses, Offer declines,
// Close returns at once. It is safe for concurrent use.
type Tier struct {
	cfg     config.BlobCache
	store   *s3store.Store // nil when disabled
	off     *DisabledError // nil when enabled
	log     *slog.Logger
	metrics *Metrics
	read    *Breaker
	write   *Breaker
	// warned: the one "tier unusable" warning has been logged since the
	// tier last worked.
	warned atomic.Bool

	mu         sync.Mutex
	lastErr    error               // the most recent tier failure, for the warning
	distrusted map[string]struct{} // blobs whose object failed verification here

	up uploader
}

// DisabledError says why a tier does nothing.
type DisabledError struct {
	// Reason: "not enabled", "OFFLINE_MODE", or the configuration problem.
	Reason string
	// Err is the configuration problem (an *config.InvalidEnvError), if any.
	Err error
}

func (e *DisabledError) Error() string { return "blob tier disabled: " + e.Reason }
func (e *DisabledError) Unwrap() error { return e.Err }

// Option configures New.
type Option func(*options)

type options struct {
	log     *slog.Logger
	reg     prometheus.Registerer
	clock   Clock
	storeFn func(*s3store.Options)
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithRegisterer registers the tier's metrics (default: not registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithClock replaces the breakers' clock (tests).
func WithClock(c Clock) Option { return func(o *options) { o.clock = c } }

// WithStoreOptions edits the bucket client's options before it is built
// (tests: a dialer that records dials, a transport that counts requests,
// small parts).
func WithStoreOptions(fn func(*s3store.Options)) Option {
	return func(o *options) {
		prev := o.storeFn
		o.storeFn = func(so *s3store.Options) {
			if prev != nil {
				prev(so)
			}
			fn(so)
		}
	}
}

// WithDial is WithStoreOptions setting the dialer.
func WithDial(d s3store.DialFunc) Option {
	return WithStoreOptions(func(o *s3store.Options) { o.Dial = d })
}

// WithTransport is WithStoreOptions wrapping the HTTP transport.
func WithTransport(wrap func(http.RoundTripper) http.RoundTripper) Option {
	return WithStoreOptions(func(o *s3store.Options) { o.WrapTransport = wrap })
}

// New returns the tier cfg describes. It never fails and never sends a
// request: a tier that is not enabled, runs OFFLINE_MODE, or is
// misconfigured comes back disabled (Disabled says why), and a
// misconfiguration is logged once, as a warning. Pulls never fail because
// of the tier.
func New(cfg config.Config, opts ...Option) *Tier {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	b := cfg.BlobCache
	t := &Tier{cfg: b, log: o.log, metrics: newMetrics(), distrusted: map[string]struct{}{}}
	if o.reg != nil {
		for _, c := range t.metrics.collectors() {
			if err := o.reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					t.log.Warn("blob tier metrics not registered", "err", err)
				}
			}
		}
	}
	switch {
	case !b.Enabled:
		t.off = &DisabledError{Reason: "not enabled (" + config.EnvBlobCacheEnabled + ")"}
	case cfg.Offline:
		t.off = &DisabledError{Reason: "OFFLINE_MODE"}
		t.log.Debug("blob tier off while OFFLINE_MODE is on")
	case b.Problem != nil:
		t.off = &DisabledError{Reason: b.Problem.Error(), Err: b.Problem}
	}
	if t.off == nil {
		so := s3store.OptionsFrom(b)
		if o.storeFn != nil {
			o.storeFn(&so)
		}
		s, err := s3store.New(so)
		if err != nil {
			t.off = &DisabledError{Reason: err.Error(), Err: err}
		} else {
			t.store = s
		}
	}
	if t.off != nil {
		if t.off.Err != nil {
			t.log.Warn("blob tier misconfigured; pulls use the origin only", "err", t.off.Err.Error())
		}
		return t
	}
	t.read = t.newBreaker("read", o.clock)
	t.write = t.newBreaker("write", o.clock)
	t.up.init(t, b.UploadWorkers, b.UploadQueue)
	return t
}

func (t *Tier) newBreaker(op string, clock Clock) *Breaker {
	br := NewBreaker(t.cfg.FailureThreshold, t.cfg.Cooldown, clock)
	t.metrics.BreakerState.WithLabelValues(op).Set(float64(Closed))
	br.onTrip = func(reopen bool) {
		t.metrics.BreakerTrips.WithLabelValues(op).Inc()
		t.metrics.BreakerState.WithLabelValues(op).Set(float64(Open))
		t.mu.Lock()
		last := t.lastErr
		t.mu.Unlock()
		msg := "<none>"
		if last != nil {
			msg = last.Error()
		}
		if !t.warned.Swap(true) {
			t.log.Warn(fmt.Sprintf("blob tier failing; skipping it for %s, then probing once; pulls use the origin meanwhile", t.cfg.Cooldown),
				"op", op, "failures", t.cfg.FailureThreshold, "last_err", msg)
			return
		}
		t.log.Debug("blob tier breaker opened again", "op", op, "probe_failed", reopen, "last_err", msg)
	}
	br.onClose = func() {
		t.metrics.BreakerState.WithLabelValues(op).Set(float64(Closed))
		if t.warned.Swap(false) {
			t.log.Info("blob tier reachable again", "op", op)
		}
	}
	return br
}

// Disabled returns why the tier does nothing, or nil when it is enabled.
func (t *Tier) Disabled() error {
	if t == nil {
		return &DisabledError{Reason: "no tier"}
	}
	if t.off == nil {
		return nil
	}
	return t.off
}

// Metrics returns the tier's collectors.
func (t *Tier) Metrics() *Metrics {
	if t == nil {
		return nil
	}
	return t.metrics
}

// Store is the bucket behind the tier (nil when disabled).
func (t *Tier) Store() *s3store.Store {
	if t == nil {
		return nil
	}
	return t.store
}

// Breakers returns the read (restore) and write (upload) breaker states.
func (t *Tier) Breakers() (read, write BreakerState) {
	if t == nil || t.off != nil {
		return Closed, Closed
	}
	return t.read.State(), t.write.State()
}

// failed records a tier failure for the breaker's warning.
func (t *Tier) failed(br *Breaker, tk Ticket, err error) {
	t.mu.Lock()
	t.lastErr = err
	t.mu.Unlock()
	br.Failure(tk)
}

const maxDistrusted = 4096

// distrust marks blob md5's object as not to be used (and to be replaced by
// the next verified upload).
func (t *Tier) distrust(md5 string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.distrusted) >= maxDistrusted {
		clear(t.distrusted) // bounded memory; a forgotten bad object is rejected again by the engine's check
	}
	t.distrusted[md5] = struct{}{}
}

func (t *Tier) isDistrusted(md5 string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.distrusted[md5]
	return ok
}

func (t *Tier) trust(md5 string) {
	t.mu.Lock()
	delete(t.distrusted, md5)
	t.mu.Unlock()
}
