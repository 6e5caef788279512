package download

import (
	"errors"
	"fmt"
	"time"
)

// Internal verdicts of one attempt; runPart and download turn them into
// retries, restarts or typed errors.
var (
	errStalled      = errors.New("stream stalled")
	errSlow         = errors.New("stream much slower than its siblings")
	errHedgeLost    = errors.New("the other request for this part finished it first")
	errRangeIgnored = errors.New("server answered a ranged request with the whole file")
	errStale        = errors.New("object changed since the partial was written (If-Range answered 200)")
	errRange416     = errors.New("range not satisfiable (416)")
	errNoResume     = errors.New("connection lost and the server does not support ranges; restarting from byte 0")
	errChanged      = errors.New("object size changed during the download")
)

// statusError is a retryable status.
type statusError struct {
	code       int
	retryAfter time.Duration
	hasRA      bool
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// authError is 401/403 from storage: usually an expired signed URL.
type authError struct {
	code int
	url  string // the URL that was refused
}

func (e *authError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// protocolError: a response that does not match the request (wrong
// Content-Range, wrong Content-Length). Retried like a network error.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func permanent(err error) bool {
	var he *HTTPError
	var de *DiskError
	var sm *SizeMismatchError
	return errors.As(err, &he) || errors.As(err, &de) || errors.As(err, &sm) ||
		errors.Is(err, errRangeIgnored) || errors.Is(err, errStale) || errors.Is(err, errRange416) ||
		errors.Is(err, errChanged) || errors.Is(err, errNoResume)
}
