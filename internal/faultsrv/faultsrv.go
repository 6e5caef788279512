// Package faultsrv is a faulty HTTP origin for tests: one place that
// reproduces what real servers and networks do to downloads, so that the
// download engine, the pull-through mirror and the S3 tier are tested
// against the same faults.
//
// A Server serves registered files over HTTP/1.1 on loopback, correctly by
// default: HEAD with Content-Length and Accept-Ranges, GET with Range/206,
// a strong ETag and If-Range. A script per file makes chosen GETs misbehave
// (see Mode): the first GETs take the script's faults in order, every later
// GET takes its Then fault. The server counts requests and body bytes per
// file, so a test can bound what a client fetched.
//
//	srv := faultsrv.New(t)
//	u := srv.Add("/m/weights.onnx", data)
//	srv.Script("/m/weights.onnx", faultsrv.Fault{}, // then: correct answers
//		faultsrv.Fault{Mode: faultsrv.ResetMidBody, At: 1 << 20},
//		faultsrv.Fault{Mode: faultsrv.Status, Status: 503, RetryAfter: "1"})
//	... download u ...
//	srv.Stats("/m/weights.onnx").BodyBytes
//
// URLs carry a signature query (?sig=N), as signed storage URLs do; Expire
// invalidates the signatures handed out so far (answered 401 or 403) and
// Add or SignedURL hand out fresh ones, for the refresh path.
package faultsrv

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Mode is how one GET misbehaves.
type Mode int

const (
	// OK answers correctly.
	OK Mode = iota
	// ResetMidBody sends At body bytes, then resets the connection (RST).
	ResetMidBody
	// ShortBody sends At body bytes of the announced length, then closes
	// the connection cleanly (FIN): a truncated body.
	ShortBody
	// WrongBytes sends the announced length with one byte flipped in the
	// middle of the file: the size is right, the digest is not.
	WrongBytes
	// Stall sends At body bytes, then nothing, keeping the connection open
	// until the client gives up (or the server closes).
	Stall
	// IgnoreRange answers a ranged GET with 200 and the whole file.
	IgnoreRange
	// Endless answers with an endless body and no Content-Length (chunked);
	// HEAD is refused with 405. No size is announced anywhere.
	Endless
	// EndlessWithLength announces Length bytes (HEAD and GET) and sends an
	// endless body.
	EndlessWithLength
	// RedirectLoop answers 302 to the same URL.
	RedirectLoop
	// RedirectScheme answers 302 to Location (default file:///etc/passwd): a
	// scheme no downloader may follow.
	RedirectScheme
	// Status answers Status with no body, with Retry-After when set.
	Status
)

func (m Mode) String() string {
	return [...]string{"ok", "reset mid-body", "short body", "wrong bytes", "stall", "ignore range", "endless body",
		"endless body with length", "redirect loop", "redirect to another scheme", "status"}[m]
}

// Fault is one GET's behaviour.
type Fault struct {
	Mode Mode
	// At is the body bytes sent before ResetMidBody, ShortBody or Stall.
	At int64
	// Status and RetryAfter for Status.
	Status     int
	RetryAfter string
	// Length announced by EndlessWithLength (default 1 TiB).
	Length int64
	// Location of RedirectScheme.
	Location string
}

// Stats counts one file's traffic.
type Stats struct {
	GETs, HEADs int64
	BodyBytes   int64 // body bytes written to clients (GET)
	Refused     int64 // requests refused for an expired signature
}

// Request is what the server saw of one GET (for assertions).
type Request struct {
	Path          string
	Range         string
	IfRange       string
	Authorization bool
}

type file struct {
	data       []byte
	etag       string
	script     []Fault
	then       Fault
	headStatus int // HEAD answer override (0: normal)
	gets       int
	sig        int // last signature handed out
	validFrom  int // signatures below are expired
	expireCode int
	stats      Stats
	requests   []Request
}

// Server is the faulty origin. Methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu    sync.Mutex
	files map[string]*file

	served  atomic.Int64
	active  atomic.Int64
	chunk   atomic.Int64
	delay   atomic.Int64
	stopped chan struct{}
	stop    sync.Once
}

// New starts a server on loopback, closed at the end of t.
func New(t testing.TB) *Server {
	s := &Server{files: map[string]*file{}, stopped: make(chan struct{})}
	s.chunk.Store(64 << 10)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	s.srv.Start()
	t.Cleanup(s.Close)
	return s
}

type connKey struct{}

// Close releases stalled and endless responses and stops the server.
func (s *Server) Close() {
	s.stop.Do(func() { close(s.stopped) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// URL is the server's base URL (http://127.0.0.1:port).
func (s *Server) URL() string { return s.srv.URL }

// Add registers data at path (answering correctly until scripted) and
// returns a signed URL for it.
func (s *Server) Add(path string, data []byte) string {
	sum := md5.Sum(data)
	s.mu.Lock()
	s.files[path] = &file{data: data, etag: `"` + hex.EncodeToString(sum[:]) + `"`, expireCode: http.StatusForbidden}
	s.mu.Unlock()
	return s.SignedURL(path)
}

// SignedURL hands out a fresh signed URL of path.
func (s *Server) SignedURL(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[path]
	if f == nil {
		panic("faultsrv: SignedURL of an unregistered path " + path)
	}
	f.sig++
	return fmt.Sprintf("%s%s?sig=%d", s.srv.URL, path, f.sig)
}

// Expire makes every URL of path handed out so far answer code (401 or
// 403), as an expired signed URL does; SignedURL gives a valid one.
func (s *Server) Expire(path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[path]
	f.validFrom, f.expireCode = f.sig+1, code
}

// Script sets path's behaviour: the next GETs take seq in order, every
// later one takes then. It resets the GET count the script refers to.
func (s *Server) Script(path string, then Fault, seq ...Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.files[path]
	f.then, f.script, f.gets = then, append([]Fault(nil), seq...), 0
}

// RefuseHEAD makes HEAD of path answer code with no headers of the file.
func (s *Server) RefuseHEAD(path string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path].headStatus = code
}

// Throttle makes every response write chunk bytes at a time with delay
// between writes (0, 0: as fast as possible, 64 KiB writes).
func (s *Server) Throttle(chunk int64, delay time.Duration) {
	if chunk <= 0 {
		chunk = 64 << 10
	}
	s.chunk.Store(chunk)
	s.delay.Store(int64(delay))
}

// Stats returns path's counters.
func (s *Server) Stats(path string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.files[path]; f != nil {
		return f.stats
	}
	return Stats{}
}

// Requests returns the GETs path received, in order.
func (s *Server) Requests(path string) []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.files[path].requests...)
}

// Served is the body bytes of all files written to clients.
func (s *Server) Served() int64 { return s.served.Load() }

// Quiesce waits until no handler runs (so that bytes of aborted responses
// are counted), or until ctx ends.
func (s *Server) Quiesce(ctx context.Context) error {
	for s.active.Load() != 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("faultsrv: %d handlers still running: %w", s.active.Load(), ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	s.mu.Lock()
	f := s.files[r.URL.Path]
	if f == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	if sig, err := strconv.Atoi(r.URL.Query().Get("sig")); err != nil || sig < f.validFrom || sig > f.sig {
		f.stats.Refused++
		code := f.expireCode
		s.mu.Unlock()
		w.WriteHeader(code)
		return
	}
	var ft Fault
	if r.Method == http.MethodHead {
		f.stats.HEADs++
		headStatus := f.headStatus
		ft = f.then
		if len(f.script) > f.gets {
			ft = f.script[f.gets]
		}
		s.mu.Unlock()
		s.head(w, f, ft, headStatus)
		return
	}
	f.stats.GETs++
	ft = f.then
	if f.gets < len(f.script) {
		ft = f.script[f.gets]
	}
	f.gets++
	f.requests = append(f.requests, Request{Path: r.URL.Path, Range: r.Header.Get("Range"), IfRange: r.Header.Get("If-Range"),
		Authorization: r.Header.Get("Authorization") != ""})
	s.mu.Unlock()
	s.get(w, r, f, ft)
}

func (s *Server) head(w http.ResponseWriter, f *file, ft Fault, status int) {
	switch {
	case status != 0:
		w.WriteHeader(status)
		return
	case ft.Mode == Endless:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	case ft.Mode == EndlessWithLength:
		w.Header().Set("Content-Length", strconv.FormatInt(length(ft), 10))
		w.Header().Set("Accept-Ranges", "bytes")
		return
	}
	w.Header().Set("Accept-Ranges", "bytes")
	w.Header().Set("ETag", f.etag)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.data)))
}

func length(ft Fault) int64 {
	if ft.Length > 0 {
		return ft.Length
	}
	return 1 << 40
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, f *file, ft Fault) {
	h := w.Header()
	switch ft.Mode {
	case Status:
		if ft.RetryAfter != "" {
			h.Set("Retry-After", ft.RetryAfter)
		}
		w.WriteHeader(ft.Status)
		return
	case RedirectLoop:
		http.Redirect(w, r, r.URL.String(), http.StatusFound)
		return
	case RedirectScheme:
		loc := ft.Location
		if loc == "" {
			loc = "file:///etc/passwd"
		}
		h.Set("Location", loc)
		w.WriteHeader(http.StatusFound)
		return
	case Endless, EndlessWithLength:
		if ft.Mode == EndlessWithLength {
			h.Set("Content-Length", strconv.FormatInt(length(ft), 10))
		}
		w.WriteHeader(http.StatusOK)
		s.send(w, r, f, nil, -1)
		return
	}
	data, status := f.data, http.StatusOK
	first, last, ranged := parseRange(r.Header.Get("Range"), int64(len(f.data)))
	if ir := r.Header.Get("If-Range"); ir != "" && ir != f.etag {
		ranged = false
	}
	if ranged && first >= int64(len(f.data)) {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(f.data)))
		w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
		return
	}
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", f.etag)
	if ranged && ft.Mode != IgnoreRange {
		data, status = f.data[first:last+1], http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(f.data)))
	}
	if ft.Mode == WrongBytes {
		data = append([]byte(nil), data...)
		if mid := int64(len(f.data))/2 - first; status == http.StatusPartialContent && mid >= 0 && mid < int64(len(data)) {
			data[mid] ^= 0xFF
		} else if status == http.StatusOK && len(data) > 0 {
			data[len(data)/2] ^= 0xFF
		}
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	limit := int64(len(data))
	switch ft.Mode {
	case ResetMidBody, ShortBody, Stall:
		limit = min(limit, ft.At)
	}
	if !s.send(w, r, f, data, limit) {
		return
	}
	rc := http.NewResponseController(w)
	switch ft.Mode {
	case ResetMidBody:
		_ = rc.Flush()
		if c, ok := r.Context().Value(connKey{}).(*net.TCPConn); ok {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	case ShortBody:
		_ = rc.Flush()
		panic(http.ErrAbortHandler)
	case Stall:
		_ = rc.Flush()
		select {
		case <-r.Context().Done():
		case <-s.stopped:
		}
	}
}

// send writes data[:limit] (data nil: endless random-looking bytes) in
// throttled chunks; false when the client went away or the server stops.
func (s *Server) send(w http.ResponseWriter, r *http.Request, f *file, data []byte, limit int64) bool {
	rc := http.NewResponseController(w)
	chunk := s.chunk.Load()
	delay := time.Duration(s.delay.Load())
	var filler []byte
	if data == nil {
		filler = make([]byte, chunk)
		for i := range filler {
			filler[i] = byte(i*131 + 7)
		}
	}
	for sent := int64(0); limit < 0 || sent < limit; {
		var b []byte
		if data == nil {
			b = filler
		} else {
			b = data[sent:min(sent+chunk, limit)]
		}
		n, err := w.Write(b)
		sent += int64(n)
		s.served.Add(int64(n))
		s.mu.Lock()
		f.stats.BodyBytes += int64(n)
		s.mu.Unlock()
		if err != nil {
			return false
		}
		if delay > 0 {
			_ = rc.Flush()
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return false
			case <-s.stopped:
				return false
			}
		}
		select {
		case <-s.stopped:
			return false
		default:
		}
	}
	return true
}

// parseRange reads "bytes=a-b" / "bytes=a-" (one range; others: not ranged).
func parseRange(v string, size int64) (first, last int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, found := strings.Cut(spec, "-")
	if !found {
		return 0, 0, false
	}
	first, err := strconv.ParseInt(a, 10, 64)
	if err != nil || first < 0 {
		return 0, 0, false
	}
	last = size - 1
	if b != "" {
		if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
			return 0, 0, false
		}
		last = min(last, size-1)
	}
	return first, last, true
}
