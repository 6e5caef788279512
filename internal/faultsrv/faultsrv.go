// Package faultsrv is a faulty HTTP origin for tests: one place that
// reproduces what real servers and networks do to downloads, so that the
// download engine, the pull-through mirror and the S3 tier are tested
// against the same faults.
//
// A Server serves registered files over HTTP/1.1 on loopback, correctly by
// default: HEAD with Content-Length and Accept-Ranges, GET with Range/206,
// a strong ETag and If-Range. A script per file makes chosen GETs misbehave
// (see Mode): the first GETs take the script's faults in order, every later
// GET takes its Then fault. For finer control a Rule decides every request
// of every file from what it asks (method, range, count). The server counts
// requests, connections and body bytes, so a test can bound what a client
// fetched.
//
//	srv := faultsrv.New(t)
//	u := srv.Add("/m/weights.onnx", data)
//	srv.Script("/m/weights.onnx", faultsrv.Fault{}, // then: correct answers
//		faultsrv.Fault{Mode: faultsrv.ResetMidBody, At: 1 << 20},
//		faultsrv.Fault{Mode: faultsrv.Status, Status: 503, RetryAfter: "1"})
//	... download u ...
//	srv.Stats("/m/weights.onnx").BodyBytes
//
// URLs carry a signature query (?sig=N&key=SECRET-SIGNATURE), as signed
// storage URLs do (a test can check that the secret never reaches a log or
// an error); Expire invalidates the signatures handed out so far (answered
// 401 or 403) and Add or SignedURL hand out fresh ones, for the refresh path.
package faultsrv

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
	// WrongBytes sends the announced length with the middle byte of the
	// body flipped: the size is right, the digest is not.
	WrongBytes
	// Stall sends At body bytes, then nothing, keeping the connection open
	// until the client gives up (or the server closes).
	Stall
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
	return [...]string{"ok", "reset mid-body", "short body", "wrong bytes", "stall", "endless body",
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
	// IgnoreRange answers a ranged GET with 200 and the whole file (with
	// any body mode).
	IgnoreRange bool
	// NoRanges leaves Accept-Ranges out of HEAD and GET answers.
	NoRanges bool
	// Chunk and Delay throttle this response alone (0: the server's).
	Chunk int64
	Delay time.Duration
	// Tag counts this response's body bytes under Tag (TaggedBytes).
	Tag string
}

// Stats counts one file's traffic.
type Stats struct {
	GETs, HEADs int64
	BodyBytes   int64 // body bytes written to clients (GET)
	Refused     int64 // requests refused for an expired signature
}

// Request is what the server saw of one request: what a Rule decides on,
// and what Requests returns (GETs) for assertions.
type Request struct {
	Method string
	Path   string
	// N counts the GETs of Path, from 1 (0 for a HEAD).
	N int
	// Ranged: a single byte range [First, Last] was asked for (otherwise
	// the whole file, First 0 and Last its last byte).
	Ranged        bool
	First, Last   int64
	Range         string
	IfRange       string
	Authorization bool
}

type file struct {
	path       string
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

	mu     sync.Mutex
	files  map[string]*file
	rule   func(Request) Fault
	tagged map[string]int64
	gets   int64
	heads  int64

	served  atomic.Int64
	conns   atomic.Int64
	active  atomic.Int64
	chunk   atomic.Int64
	delay   atomic.Int64
	stopped chan struct{}
	stop    sync.Once
}

// New starts a server on loopback, closed at the end of t.
func New(t testing.TB) *Server {
	s := &Server{files: map[string]*file{}, tagged: map[string]int64{}, stopped: make(chan struct{})}
	s.chunk.Store(64 << 10)
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.handle))
	s.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	s.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
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
	s.files[path] = &file{path: path, data: data, etag: `"` + hex.EncodeToString(sum[:]) + `"`, expireCode: http.StatusForbidden}
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
	return fmt.Sprintf("%s%s?sig=%d&key=SECRET-SIGNATURE", s.srv.URL, path, f.sig)
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

// Rule makes rule decide every request of every file (HEAD too, with N 0:
// a Status fault answers the HEAD, NoRanges and the endless modes shape it)
// until Rule(nil); scripts are ignored meanwhile.
func (s *Server) Rule(rule func(Request) Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rule = rule
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

// GETs and HEADs count the requests of all files; Conns the connections.
func (s *Server) GETs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

func (s *Server) HEADs() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heads
}

func (s *Server) Conns() int64 { return s.conns.Load() }

// TaggedBytes is the body bytes sent by responses whose fault had Tag tag.
func (s *Server) TaggedBytes(tag string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagged[tag]
}

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
