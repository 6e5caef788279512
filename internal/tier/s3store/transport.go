package s3store

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// DialFunc dials a network connection (net.Dialer.DialContext's shape).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// newTransport is the HTTP transport of every tier request: connects bounded
// by the connect timeout, proxies from the environment (as boto3 honours
// HTTPS_PROXY), enough idle connections for the engine's parallel ranges,
// no transparent gzip (ranges must be byte ranges of the object).
func newTransport(dial DialFunc, connect, stall time.Duration) *http.Transport {
	if dial == nil {
		d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	} else {
		// A caller's dialer still gets the connect bound.
		inner := dial
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, connect)
			defer cancel()
			return inner(ctx, network, addr)
		}
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dial,
		TLSHandshakeTimeout:   connect + stall,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// stallTransport fails a request that makes no progress for its budget:
// the clock restarts with every byte of the request body sent and of the
// response body received, and at the response header. It never bounds a
// whole transfer, which may take as long as it keeps moving.
type stallTransport struct {
	base   http.RoundTripper
	budget time.Duration
}

type budgetKey struct{}

// withBudget gives requests made with ctx another stall budget (a
// CompleteMultipartUpload of a large object may compute for a while before
// its first response byte).
func withBudget(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, budgetKey{}, d)
}

func (t *stallTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	budget := t.budget
	if d, ok := req.Context().Value(budgetKey{}).(time.Duration); ok && d > 0 {
		budget = d
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	w := &watchdog{cancel: cancel, budget: budget}
	method := req.Method
	w.mu.Lock()
	w.timer = time.AfterFunc(budget, func() { cancel(&StallError{Method: method, Budget: budget}) })
	w.mu.Unlock()
	req = req.WithContext(ctx)
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = &progressBody{ReadCloser: req.Body, w: w}
		if gb := req.GetBody; gb != nil {
			req.GetBody = func() (io.ReadCloser, error) {
				b, err := gb()
				if err == nil && b != http.NoBody {
					b = &progressBody{ReadCloser: b, w: w}
				}
				return b, err
			}
		}
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		w.stop()
		cause := context.Cause(ctx)
		cancel(nil)
		if se, ok := cause.(*StallError); ok {
			return nil, se
		}
		return nil, err
	}
	w.touch()
	resp.Body = &watchedBody{ReadCloser: resp.Body, w: w, ctx: ctx}
	return resp, nil
}

type watchdog struct {
	mu      sync.Mutex
	timer   *time.Timer
	budget  time.Duration
	stopped bool
	cancel  context.CancelCauseFunc
}

func (w *watchdog) touch() {
	w.mu.Lock()
	if !w.stopped {
		w.timer.Reset(w.budget)
	}
	w.mu.Unlock()
}

func (w *watchdog) stop() {
	w.mu.Lock()
	w.stopped = true
	w.timer.Stop()
	w.mu.Unlock()
}

type progressBody struct {
	io.ReadCloser
	w *watchdog
}

func (b *progressBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	return n, err
}

type watchedBody struct {
	io.ReadCloser
	w    *watchdog
	ctx  context.Context
	once sync.Once
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.w.touch()
	}
	if err != nil && err != io.EOF {
		if se, ok := context.Cause(b.ctx).(*StallError); ok {
			err = se
		}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(func() {
		b.w.stop()
		b.w.cancel(nil)
	})
	return err
}

// StallError: a tier request made no progress for Budget (the tier's
// READ_TIMEOUT_SECONDS, a stall budget).
type StallError struct {
	Method string
	Budget time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("blob tier %s request made no progress for %s (INFERENCE_MODELS_MODEL_BLOB_CACHE_READ_TIMEOUT_SECONDS)", e.Method, e.Budget)
}

// Timeout marks the error as a timeout for net.Error-style checks.
func (e *StallError) Timeout() bool { return true }
