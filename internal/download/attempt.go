package download

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/retry"
)

// attempt sends one request for the rest of part p and streams the body
// into the file.
func (j *job) attempt(ctx context.Context, p *part) error {
	j.mu.Lock()
	off, end, url, size, ranges, ifRange := p.cur, p.end, j.url, j.size, j.ranges, j.ifRange
	whole := off == 0 && p.start == 0 && (end < 0 || end == size)
	j.mu.Unlock()

	rctx, rcancel := context.WithCancelCause(ctx)
	defer rcancel(nil)
	st := j.addStream(p, rcancel)
	defer j.removeStream(st)

	if err := checkURL(url); err != nil {
		return &PermanentError{Name: j.name, URL: j.safe, Reason: err.Error()}
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return &PermanentError{Name: j.name, URL: j.safe, Reason: (&malformedError{err: err}).Error()}
	}
	var rangeHdr string
	if !whole {
		if !ranges {
			return errNoResume
		}
		if end >= 0 {
			rangeHdr = fmt.Sprintf("bytes=%d-%d", off, end-1)
		} else {
			rangeHdr = fmt.Sprintf("bytes=%d-", off)
		}
		req.Header.Set("Range", rangeHdr)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := j.e.client.Do(req)
	if err != nil {
		if c := abortCause(rctx); c != nil {
			return c
		}
		if pe := j.permanentRequestError(err); pe != nil {
			return pe
		}
		return scrubURLError(err, j.safe)
	}
	defer resp.Body.Close()
	if fin := resp.Request.URL.String(); fin != url {
		// Use the resolved URL for further requests of this file (download.md §2.4).
		j.mu.Lock()
		if j.url == url {
			j.url = fin
		}
		j.mu.Unlock()
	}

	limit := int64(-1)
	code := resp.StatusCode
	switch {
	case code == http.StatusPartialContent:
		if rangeHdr == "" {
			return &protocolError{"206 without a Range request"}
		}
		first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != off || (end >= 0 && last > end-1) {
			return &protocolError{fmt.Sprintf("Content-Range %q does not match %s", resp.Header.Get("Content-Range"), rangeHdr)}
		}
		if size >= 0 && total >= 0 && total != size {
			return errChanged
		}
		if resp.ContentLength >= 0 && resp.ContentLength != last-first+1 {
			return &protocolError{fmt.Sprintf("Content-Length %d does not match Content-Range %d-%d", resp.ContentLength, first, last)}
		}
		limit = last + 1
		if ifRange != "" {
			j.mu.Lock()
			j.ifRange = "" // the object is unchanged: adopted bytes are good
			j.mu.Unlock()
		}
	case code >= 200 && code < 300:
		if rangeHdr != "" {
			if ifRange != "" {
				return errStale
			}
			return errRangeIgnored
		}
		cl := resp.ContentLength
		if size < 0 && cl > 0 {
			// The size is announced only now (no HEAD size): check it.
			if err := j.e.checkSpace(j.guard.dir, j.name, cl); err != nil {
				return err
			}
		}
		j.mu.Lock()
		if cl >= 0 {
			switch {
			case size < 0:
				j.size, p.end = cl, cl
			case cl != size:
				j.mu.Unlock()
				return &SizeMismatchError{Name: j.name, URL: j.safe, Expected: size, Actual: cl}
			}
		}
		if acceptsRanges(resp.Header) && cl >= 0 {
			j.ranges = true
		}
		if et := resp.Header.Get("ETag"); et != "" && j.etag == "" {
			j.etag = et
		}
		limit = p.end
		j.mu.Unlock()
	case code == http.StatusRequestedRangeNotSatisfiable:
		return errRange416
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return &authError{code: code, url: url}
	case j.e.tune.retryable(code):
		ra, ok := retry.RetryAfter(resp.Header, time.Now(), j.e.tune.MaxRetryAfter)
		return &statusError{code: code, retryAfter: ra, hasRA: ok}
	default:
		return &HTTPError{Name: j.name, URL: j.safe, Status: code, Range: rangeHdr}
	}
	return j.copyBody(rctx, st, p, resp.Body, off, limit)
}

// abortCause is why the engine itself cut a stream's request (stall,
// slowness, lost hedge), or nil for any other failure.
func abortCause(rctx context.Context) error {
	if c := context.Cause(rctx); errors.Is(c, errStalled) || errors.Is(c, errSlow) || errors.Is(c, errHedgeLost) {
		return c
	}
	return nil
}

func parseContentRange(v string) (first, last, total int64, ok bool) {
	v = strings.TrimSpace(v)
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= last {
			return 0, 0, 0, false
		}
	}
	return first, last, total, true
}

func acceptsRanges(h http.Header) bool {
	for _, v := range h.Values("Accept-Ranges") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "bytes") {
				return true
			}
		}
	}
	return false
}
