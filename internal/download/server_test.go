package download

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/lock"
)

// faultServer serves files over HTTP/1.1 with HEAD, Range/206 and ETag,
// counts what it sends, and injects faults chosen per request by rule.
type faultServer struct {
	srv *httptest.Server

	mu    sync.Mutex
	files map[string][]byte
	etags map[string]string // computed once: hashing a large body per request starves a loaded machine
	gets  map[string]int    // GET requests per path
	rule  func(r faultReq) fault

	served   atomic.Int64 // body bytes written to clients
	tagged   sync.Map     // fault.Tag -> *atomic.Int64 body bytes
	active   atomic.Int64 // handlers running
	requests atomic.Int64 // GET requests
	heads    atomic.Int64
	conns    atomic.Int64
	// Throttle: every response writes chunk bytes, then sleeps delay.
	chunk atomic.Int64
	delay atomic.Int64 // nanoseconds
}

type faultReq struct {
	Path   string
	N      int // 1-based GET count of this path
	Ranged bool
	First  int64
	Last   int64 // inclusive
}

type faultKind int

const (
	faultNone     faultKind = iota
	faultStatus             // answer Status (with RetryAfter)
	faultReset              // RST after At body bytes
	faultTruncate           // close (FIN) after At body bytes
	faultStall              // stop sending after At body bytes, keep the connection open
)

type fault struct {
	Kind        faultKind
	At          int64
	Status      int
	RetryAfter  string
	IgnoreRange bool // answer 200 with the whole file
	Corrupt     bool // flip one byte (same size)
	NoRanges    bool // HEAD without Accept-Ranges
	// This response only: Chunk bytes per write (0: the server's), then
	// Delay; Tag counts its body bytes in faultServer.tagged.
	Chunk int64
	Delay time.Duration
	Tag   string
}

type connKey struct{}

func newFaultServer(t testing.TB) *faultServer {
	fs := &faultServer{files: map[string][]byte{}, etags: map[string]string{}, gets: map[string]int{}}
	fs.chunk.Store(64 << 10)
	fs.srv = httptest.NewUnstartedServer(http.HandlerFunc(fs.handle))
	fs.srv.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, c)
	}
	fs.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			fs.conns.Add(1)
		}
	}
	fs.srv.Start()
	t.Cleanup(fs.srv.Close)
	return fs
}

// add registers content at path and returns its URL (with a query string
// standing in for a signature, which must never be logged).
func (fs *faultServer) add(path string, content []byte) string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.files[path] = content
	fs.etags[path] = `"` + md5hex(content) + `"`
	return fs.srv.URL + path + "?sig=SECRET-SIGNATURE"
}

func (fs *faultServer) setRule(r func(faultReq) fault) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.rule = r
}

func (fs *faultServer) throttle(chunk int64, delay time.Duration) {
	fs.chunk.Store(chunk)
	fs.delay.Store(int64(delay))
}

// quiesce waits until no handler runs, so that bytes of aborted responses
// are counted before a caller reads the counters.
func (fs *faultServer) quiesce(t testing.TB) {
	deadline := time.Now().Add(5 * time.Second)
	for fs.active.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers still running", fs.active.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

func (fs *faultServer) handle(w http.ResponseWriter, r *http.Request) {
	fs.active.Add(1)
	defer fs.active.Add(-1)
	fs.mu.Lock()
	body, ok := fs.files[r.URL.Path]
	etag := fs.etags[r.URL.Path]
	rule := fs.rule
	n := 0
	if r.Method == http.MethodGet {
		fs.gets[r.URL.Path]++
		n = fs.gets[r.URL.Path]
	}
	fs.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	fr := faultReq{Path: r.URL.Path, N: n, First: 0, Last: int64(len(body)) - 1}
	if rh := r.Header.Get("Range"); rh != "" {
		a, b, found := strings.Cut(strings.TrimPrefix(rh, "bytes="), "-")
		first, err1 := strconv.ParseInt(a, 10, 64)
		last, err2 := strconv.ParseInt(b, 10, 64)
		if b == "" {
			last, err2 = int64(len(body))-1, nil
		}
		if !found || err1 != nil || err2 != nil || first > last {
			http.Error(w, "bad range", http.StatusBadRequest)
			return
		}
		if first >= int64(len(body)) {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", len(body)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		fr.Ranged, fr.First, fr.Last = true, first, min(last, int64(len(body))-1)
	}
	var f fault
	if rule != nil {
		f = rule(fr)
	}
	h := w.Header()
	if !f.NoRanges {
		h.Set("Accept-Ranges", "bytes")
	}
	h.Set("ETag", etag)
	if r.Method == http.MethodHead {
		fs.heads.Add(1)
		if f.Kind == faultStatus {
			w.WriteHeader(f.Status)
			return
		}
		h.Set("Content-Length", strconv.Itoa(len(body)))
		return
	}
	fs.requests.Add(1)
	if f.Kind == faultStatus {
		if f.RetryAfter != "" {
			h.Set("Retry-After", f.RetryAfter)
		}
		w.WriteHeader(f.Status)
		return
	}
	if ir := r.Header.Get("If-Range"); ir != "" && ir != etag {
		fr.Ranged = false
	}
	data := body
	status := http.StatusOK
	if fr.Ranged && !f.IgnoreRange {
		data = body[fr.First : fr.Last+1]
		status = http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", fr.First, fr.Last, len(body)))
	}
	if f.Corrupt {
		data = append([]byte(nil), data...)
		data[len(data)/2] ^= 0xFF
	}
	h.Set("Content-Length", strconv.Itoa(len(data)))
	w.WriteHeader(status)
	rc := http.NewResponseController(w)
	limit := int64(len(data))
	if f.Kind != faultNone {
		limit = min(limit, f.At)
	}
	chunk := fs.chunk.Load()
	delay := time.Duration(fs.delay.Load())
	if f.Chunk > 0 {
		chunk = f.Chunk
	}
	if f.Delay > 0 {
		delay = f.Delay
	}
	var tag *atomic.Int64
	if f.Tag != "" {
		v, _ := fs.tagged.LoadOrStore(f.Tag, new(atomic.Int64))
		tag = v.(*atomic.Int64)
	}
	var sent int64
	for sent < limit {
		m := min(chunk, limit-sent)
		k, err := w.Write(data[sent : sent+m])
		sent += int64(k)
		fs.served.Add(int64(k))
		if tag != nil {
			tag.Add(int64(k))
		}
		if err != nil {
			return
		}
		if delay > 0 || f.Kind != faultNone {
			_ = rc.Flush()
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
	}
	switch f.Kind {
	case faultReset:
		_ = rc.Flush()
		if c, ok := r.Context().Value(connKey{}).(*net.TCPConn); ok {
			_ = c.SetLinger(0)
			_ = c.Close()
		}
	case faultTruncate:
		_ = rc.Flush()
		panic(http.ErrAbortHandler)
	case faultStall:
		_ = rc.Flush()
		<-r.Context().Done()
	}
}

// taggedBytes is the body bytes sent by responses tagged tag.
func (fs *faultServer) taggedBytes(tag string) int64 {
	if v, ok := fs.tagged.Load(tag); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// logSink collects log output so tests can assert what was (not) logged.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logSink) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// fastTuning scales the engine down for tests: small parts, short timers.
func fastTuning(t *Tuning) {
	t.RangeThreshold = 256 << 10
	t.PartCount = 16
	t.MinPart = 64 << 10
	t.MaxPart = 256 << 10
	t.MinSplit = 128 << 10
	t.BufferSize = 32 << 10
	t.StallTimeout = 400 * time.Millisecond
	// A loaded machine starves streams past short stall timeouts: tests
	// that count stalls set their own cap.
	t.MaxStalls = 1000
	t.SlowAfter = time.Hour
	t.BackoffUnit = time.Millisecond
	t.MaxRetryAfter = 3 * time.Second
	t.HeadTimeout = 2 * time.Second
	t.JournalMinSize = 64 << 10
	t.JournalInterval = 20 * time.Millisecond
	t.HeartbeatInterval = 100 * time.Millisecond
	t.LockTimeout = 3 * time.Second
	t.LockPoll = 5 * time.Millisecond
	t.WaitLogInterval = 200 * time.Millisecond
	t.ProgressInterval = 20 * time.Millisecond
	t.SHA256 = true // whatever the CPU count, so the verified records are tested
	// Direct I/O for every size, as large blobs get by default: faults at
	// unaligned offsets exercise the aligned-block and carried-tail paths.
	t.DirectIO, t.DirectMin = true, 1
}

type testEnv struct {
	home  string
	blobs *blobfs.Store
	locks *lock.Locker
	logs  *logSink
}

func newEnv(t testing.TB, home string) *testEnv {
	if home == "" {
		home = t.TempDir()
	}
	locks := lock.NewLocker(lock.Options{WaitLogInterval: -1})
	bs, err := blobfs.Open(home, locks)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{home: home, blobs: bs, locks: locks, logs: &logSink{}}
}

func (te *testEnv) engine(t testing.TB, mod func(*Tuning), opts ...Option) *Engine {
	cfg := config.Default()
	cfg.Home = te.home
	log := slog.New(slog.NewTextHandler(te.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	all := append([]Option{WithLogger(log), WithTuning(func(tu *Tuning) {
		fastTuning(tu)
		if mod != nil {
			mod(tu)
		}
	})}, opts...)
	e, err := New(cfg, te.blobs, te.locks, all...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
