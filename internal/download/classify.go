package download

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
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
	var pe *PermanentError
	var sl *SizeLimitError
	return errors.As(err, &he) || errors.As(err, &de) || errors.As(err, &sm) || errors.As(err, &pe) || errors.As(err, &sl) ||
		errors.Is(err, errRangeIgnored) || errors.Is(err, errStale) || errors.Is(err, errRange416) ||
		errors.Is(err, errChanged) || errors.Is(err, errNoResume)
}

// maxRedirects caps the redirects one request follows (net/http's own cap).
const maxRedirects = 10

var (
	errRedirectLoop     = errors.New("redirect loop: a redirect led back to a URL already visited")
	errTooManyRedirects = fmt.Errorf("more than %d redirects", maxRedirects)
)

// schemeError: a URL (or a redirect target) with a scheme other than
// http or https.
type schemeError struct{ scheme string }

func (e *schemeError) Error() string {
	return fmt.Sprintf("unsupported URL scheme %q (only http and https are fetched)", e.scheme)
}

// malformedError: a URL that does not parse or names no host.
type malformedError struct{ err error }

func (e *malformedError) Error() string {
	if e.err != nil {
		return "malformed URL: " + e.err.Error()
	}
	return "malformed URL: no host"
}

// checkURL accepts absolute http and https URLs with a host. Its errors
// never carry the URL (a signed query string must not reach a message).
func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return &malformedError{err: err}
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
	default:
		return &schemeError{scheme: u.Scheme}
	}
	if u.Host == "" {
		return &malformedError{}
	}
	return nil
}

// checkRedirect is the engine's http.Client.CheckRedirect: a redirect to a
// scheme other than http(s), back to a URL already visited, or past the
// cap fails the request with a permanent error.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if err := checkURL(req.URL.String()); err != nil {
		return err
	}
	next := req.URL.String()
	for _, v := range via {
		if v.URL.String() == next {
			return errRedirectLoop
		}
	}
	if len(via) >= maxRedirects {
		return errTooManyRedirects
	}
	return nil
}

// permanentReason names why a request error can never succeed on retry,
// or returns "" for transient errors (connection refused or reset,
// timeouts, DNS, short bodies), which are retried.
func permanentReason(err error) string {
	var se *schemeError
	var me *malformedError
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, errRedirectLoop):
		return errRedirectLoop.Error()
	case errors.Is(err, errTooManyRedirects):
		return errTooManyRedirects.Error()
	case errors.As(err, &se):
		return se.Error()
	case errors.As(err, &me):
		return me.Error()
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ci):
		return "TLS certificate verification failed"
	case errors.As(err, &rh):
		return "TLS handshake failed: the server does not speak TLS on this port"
	}
	// net/http's own check when a custom client lacks checkRedirect.
	if s := err.Error(); strings.Contains(s, "unsupported protocol scheme") {
		return "unsupported URL scheme"
	} else if strings.Contains(s, "stopped after 10 redirects") {
		return errTooManyRedirects.Error()
	}
	return ""
}

// permanentRequestError wraps err as a *PermanentError when no retry can
// fix it, else returns nil.
func (j *job) permanentRequestError(err error) error {
	r := permanentReason(err)
	if r == "" {
		return nil
	}
	return &PermanentError{Name: j.name, URL: j.safe, Reason: r}
}
