package download

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcache/modelcache/internal/retry"
)

// runPart fetches one part with retries; it owns the part until it is done
// or failed for good.
func (j *job) runPart(ctx context.Context, p *part) error {
	t := j.e.tune
	var failures, statusTries, slow int
	for {
		if j.partComplete(p) {
			j.finishPart(p)
			return nil
		}
		if err := j.e.acquireStream(ctx); err != nil {
			return err
		}
		j.mu.Lock()
		before := p.cur
		j.mu.Unlock()
		err := j.attempt(ctx, p)
		j.e.releaseStream()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		j.mu.Lock()
		progressed := p.cur > before
		rng := j.rangeText(p)
		j.mu.Unlock()
		if progressed {
			failures, statusTries = 0, 0
		}
		var se *statusError
		var ae *authError
		if !errors.Is(err, errHedgeLost) && !errors.As(err, &ae) && !permanent(err) {
			if rerr := j.pastDeadline(err, rng, max(failures, statusTries)+1); rerr != nil {
				return rerr
			}
		}
		switch {
		case errors.As(err, &se):
			statusTries++
			if statusTries >= t.MaxStatusTries {
				return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: statusTries, Status: se.code}
			}
			wait := retry.Ranged(t.BackoffUnit).Delay(statusTries)
			if se.hasRA {
				wait = se.retryAfter
			}
			wait = j.untilDeadline(wait)
			j.e.log.Debug("retryable status; waiting", "file", j.name, "url", j.safe, "status", se.code, "wait", wait, "range", rng)
			if err := retry.Sleep(ctx, wait); err != nil {
				return err
			}
		case errors.Is(err, errHedgeLost):
			continue // the hedge finished the part
		case errors.Is(err, errStalled):
			j.mu.Lock()
			j.stalls++
			n := j.stalls
			j.mu.Unlock()
			j.e.log.Info("stream stalled; resuming on a new connection", "file", j.name, "url", j.safe, "range", rng, "stalls", n)
			if n > t.MaxStalls {
				return &StallError{Name: j.name, URL: j.safe, Stalls: n, Timeout: t.StallTimeout}
			}
		case errors.Is(err, errSlow):
			slow++
			j.e.log.Info("stream slow; restarting it on a new connection", "file", j.name, "url", j.safe, "range", rng)
			if slow%3 == 0 {
				failures++
				if failures >= t.MaxAttempts {
					return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: failures, Err: err}
				}
			}
		case errors.As(err, &ae):
			if err := j.refreshURL(ctx, ae, rng); err != nil {
				return err
			}
		case permanent(err):
			return err
		default:
			if progressed {
				j.e.log.Debug("connection lost; resuming", "file", j.name, "url", j.safe, "range", rng, "err", err.Error())
				continue
			}
			failures++
			if failures >= t.MaxAttempts {
				return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: failures, Err: err}
			}
			wait := j.untilDeadline(retry.Ranged(t.BackoffUnit).Delay(failures))
			j.e.log.Debug("transient error; retrying", "file", j.name, "url", j.safe, "range", rng, "attempt", failures, "wait", wait, "err", err.Error())
			if err := retry.Sleep(ctx, wait); err != nil {
				return err
			}
		}
	}
}

// pastDeadline records a transient failure and returns the RetryError
// that ends the file once it has gone RetryDeadline without a byte.
func (j *job) pastDeadline(err error, rng string, attempts int) error {
	d := j.e.tune.RetryDeadline
	if d <= 0 {
		return nil
	}
	j.mu.Lock()
	now := time.Now()
	if j.failingSince.IsZero() {
		j.failingSince = now
	}
	elapsed := now.Sub(j.failingSince)
	j.mu.Unlock()
	if elapsed < d {
		return nil
	}
	re := &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: attempts, Err: err, Deadline: d, Elapsed: elapsed}
	var se *statusError
	if errors.As(err, &se) {
		re.Status, re.Err = se.code, nil
	}
	return re
}

// untilDeadline caps a back-off wait at the time left before the retry
// deadline, so that the file fails on time rather than after a long sleep.
func (j *job) untilDeadline(wait time.Duration) time.Duration {
	d := j.e.tune.RetryDeadline
	if d <= 0 {
		return wait
	}
	j.mu.Lock()
	since := j.failingSince
	j.mu.Unlock()
	if since.IsZero() {
		return wait
	}
	return max(min(wait, d-time.Since(since)), 0)
}

// refreshURL asks the caller for a fresh URL once (signed URL expired).
// Streams refused with an URL that was refreshed meanwhile just retry.
func (j *job) refreshURL(ctx context.Context, ae *authError, rng string) error {
	j.refreshMu.Lock()
	defer j.refreshMu.Unlock()
	j.mu.Lock()
	cur := j.url
	j.mu.Unlock()
	if cur != ae.url {
		return nil
	}
	if j.refresh == nil || j.refreshed {
		return &HTTPError{Name: j.name, URL: j.safe, Status: ae.code, Range: rng}
	}
	j.refreshed = true
	u, err := j.refresh(ctx)
	if err != nil {
		return fmt.Errorf("refresh URL of %s after 401/403: %w", j.name, err)
	}
	j.mu.Lock()
	j.url = u
	j.mu.Unlock()
	j.e.log.Info("download URL refreshed after 401/403", "file", j.name, "url", safeURL(u))
	return nil
}
