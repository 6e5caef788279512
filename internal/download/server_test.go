package download

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/faultsrv"
	"github.com/modelcache/modelcache/internal/lock"
)

// faultServer is the shared faulty origin (internal/faultsrv) with the
// short names these tests use: add registers a file, setRule decides every
// request (faultReq in, fault out), throttle slows every response, quiesce
// waits for the handlers.
type faultServer struct{ *faultsrv.Server }

type (
	fault    = faultsrv.Fault
	faultReq = faultsrv.Request
)

const (
	faultNone     = faultsrv.OK
	faultStatus   = faultsrv.Status       // answer Status (with RetryAfter)
	faultReset    = faultsrv.ResetMidBody // RST after At body bytes
	faultTruncate = faultsrv.ShortBody    // close (FIN) after At body bytes
	faultStall    = faultsrv.Stall        // stop sending after At body bytes, keep the connection open
	faultCorrupt  = faultsrv.WrongBytes   // flip the middle byte of the body (same size)
)

func newFaultServer(t testing.TB) *faultServer { return &faultServer{faultsrv.New(t)} }

// add registers content at path and returns its URL, whose query stands in
// for a signature that must never be logged.
func (fs *faultServer) add(path string, content []byte) string { return fs.Add(path, content) }

func (fs *faultServer) setRule(r func(faultReq) fault) { fs.Rule(r) }

func (fs *faultServer) throttle(chunk int64, delay time.Duration) { fs.Throttle(chunk, delay) }

// quiesce waits until no handler runs, so that bytes of aborted responses
// are counted before a caller reads the counters.
func (fs *faultServer) quiesce(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := fs.Quiesce(ctx); err != nil {
		t.Fatal(err)
	}
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
