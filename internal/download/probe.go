package download

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/retry"
)

// probeResult is what a HEAD told us about a file.
type probeResult struct {
	url    string // after redirects
	size   int64  // -1 unknown
	etag   string // strong ETag, for If-Range
	ranges bool   // Accept-Ranges: bytes with a known size
}

// probeOnce is the batch's probe of it, else a new one.
func (e *Engine) probeOnce(ctx context.Context, it Item) probeResult {
	if it.probed != nil {
		return *it.probed
	}
	return e.probe(ctx, it.URL)
}

// probe sends HEAD (following redirects, download.md §2.4) with the API
// timeout, retrying connection errors and retryable statuses. Whatever fails
// is swallowed: the file is then fetched as one stream, whose response
// tells the rest.
func (e *Engine) probe(ctx context.Context, raw string) probeResult {
	pr := probeResult{url: raw, size: -1}
	t := e.tune
	for try := 1; try <= t.MaxStatusTries; try++ {
		wait := retry.Ranged(t.BackoffUnit).Delay(1)
		if checkURL(raw) != nil {
			return pr // the GET reports it
		}
		hctx, cancel := context.WithTimeout(ctx, t.HeadTimeout)
		req, err := http.NewRequestWithContext(hctx, http.MethodHead, raw, nil)
		if err != nil {
			cancel()
			return pr
		}
		req.Header.Set("Accept-Encoding", "identity")
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
			cancel()
			code := resp.StatusCode
			if code >= 200 && code < 300 {
				pr.url = resp.Request.URL.String()
				if resp.ContentLength >= 0 && resp.Header.Get("Content-Length") != "" {
					pr.size = resp.ContentLength
					pr.ranges = acceptsRanges(resp.Header)
				}
				if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
					pr.etag = et
				}
				return pr
			}
			if !t.retryable(code) {
				e.log.Debug("HEAD failed; fetching as one stream", "url", safeURL(raw), "status", code)
				return pr
			}
			if ra, ok := retry.RetryAfter(resp.Header, time.Now(), t.MaxRetryAfter); ok {
				wait = ra
			}
		} else {
			cancel()
			if ctx.Err() != nil {
				return pr
			}
			if r := permanentReason(err); r != "" {
				// The GET will fail the same way, at once and typed.
				e.log.Debug("HEAD failed permanently", "url", safeURL(raw), "reason", r)
				return pr
			}
			e.log.Debug("HEAD failed", "url", safeURL(raw), "err", scrubURLError(err, safeURL(raw)).Error())
		}
		if try < t.MaxStatusTries {
			if retry.Sleep(ctx, wait) != nil {
				return pr
			}
		}
	}
	return pr
}
