// Package retry is the one back-off helper of modelcache: the wait before a
// retry (exponential with jitter), the Retry-After header a server may send
// instead, and a context-aware sleep. The download engine and the weights
// API client both retry through it, each with its own schedule from the
// spec (download.md §2.5, registry-protocol.md §4).
package retry

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Backoff is an exponential schedule: the wait before retry n (n >= 1) is
// Unit × 2^min(n-1, MaxDoublings), scaled by a factor drawn uniformly from
// [JitterMin, JitterMax).
type Backoff struct {
	Unit                 time.Duration
	MaxDoublings         int
	JitterMin, JitterMax float64
	// Rand returns a uniform value in [0, 1); nil uses math/rand/v2.
	Rand func() float64
}

// Ranged is the download engine's schedule for connection errors and
// retryable statuses (download.md §2.5): 2^min(n-1, 5) units × [0.5, 1.5),
// so 1, 2, 4, 8, 16, 32, 32 … seconds at a unit of one second.
func Ranged(unit time.Duration) Backoff {
	return Backoff{Unit: unit, MaxDoublings: 5, JitterMin: 0.5, JitterMax: 1.5}
}

// FullJitter is the weights-API schedule (registry-protocol.md §4): wait n
// uniform in [0, 2^(n-1)) units.
func FullJitter(unit time.Duration) Backoff {
	return Backoff{Unit: unit, MaxDoublings: 30, JitterMin: 0, JitterMax: 1}
}

// Delay returns the wait before retry n (n < 1 counts as 1).
func (b Backoff) Delay(n int) time.Duration {
	n = max(n, 1)
	exp := min(n-1, max(b.MaxDoublings, 0), 62)
	r := rand.Float64
	if b.Rand != nil {
		r = b.Rand
	}
	f := b.JitterMin + (b.JitterMax-b.JitterMin)*r()
	d := float64(b.Unit) * math.Ldexp(1, exp) * f
	if d >= math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// ParseRetryAfter reads a Retry-After value: delay-seconds (a non-negative
// number; a fraction is accepted) or an HTTP date, capped at limit. ok is
// false when v is empty or invalid (negative, not a number, not a date):
// the caller then uses its own back-off.
func ParseRetryAfter(v string, now time.Time, limit time.Duration) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(secs) || secs < 0 {
			return 0, false
		}
		if secs >= limit.Seconds() {
			return limit, true
		}
		d = time.Duration(secs * float64(time.Second))
	} else if t, err := http.ParseTime(v); err == nil {
		d = max(t.Sub(now), 0)
	} else {
		return 0, false
	}
	return min(d, limit), true
}

// RetryAfter is ParseRetryAfter of h's Retry-After header.
func RetryAfter(h http.Header, now time.Time, limit time.Duration) (time.Duration, bool) {
	return ParseRetryAfter(h.Get("Retry-After"), now, limit)
}

// Sleep waits d or until ctx ends, returning the context's cause then.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
