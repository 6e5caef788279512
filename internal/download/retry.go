package download

import (
	"context"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// backoff returns the wait before retry n (n >= 1): 2^min(n-1, 5) units
// with jitter in [0.5, 1.5) (download.md §2.5), so 1, 2, 4, 8, 16, 32, 32 …
// seconds at the default unit.
func backoff(unit time.Duration, n int) time.Duration {
	if n < 1 {
		n = 1
	}
	exp := min(n-1, 5)
	base := float64(unit) * float64(int64(1)<<exp)
	return time.Duration(base * (0.5 + rand.Float64()))
}

// retryAfter parses a Retry-After header (delay-seconds or HTTP-date),
// capped at limit. ok is false when the header is absent or invalid.
func retryAfter(h http.Header, now time.Time, limit time.Duration) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		if secs > int64(limit/time.Second)+1 {
			return limit, true
		}
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
		if d < 0 {
			d = 0
		}
	} else {
		return 0, false
	}
	return min(d, limit), true
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
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
