package tier

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// tierConfig is the configuration a process gets from the environment
// that points it at srv (testsvc.S3Server.Env), read by config.FromEnv.
func tierConfig(t *testing.T, srv *testsvc.S3Server, prefix string, extra ...string) config.Config {
	t.Helper()
	env := srv.Env(prefix)
	// Generous budgets: the machine is shared and slow at random.
	env[config.EnvBlobCacheConnectTimeout] = "10"
	env[config.EnvBlobCacheReadTimeout] = "60"
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.BlobCache.Problem != nil {
		t.Fatal(cfg.BlobCache.Problem)
	}
	return cfg
}

// logRecorder keeps every log record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	l.recs = append(l.recs, r.Clone())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) count(level slog.Level) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r.Level == level {
			n++
		}
	}
	return n
}

func (l *logRecorder) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, r := range l.recs {
		fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		b.WriteByte('\n')
	}
	return b.String()
}

// counting counts the requests that reach the transport.
type counting struct {
	rt http.RoundTripper
	n  *atomic.Int64
}

func (c counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.rt.RoundTrip(r)
}

func countRequests(n *atomic.Int64) Option {
	return WithTransport(func(rt http.RoundTripper) http.RoundTripper { return counting{rt, n} })
}

// recordDials counts every dial the tier's client makes.
func recordDials(n *atomic.Int64) Option {
	return WithDial(func(ctx context.Context, network, addr string) (net.Conn, error) {
		n.Add(1)
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	})
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed*7+3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sumOf(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// localBlob writes b where a cache would keep it and returns its Blob.
func localBlob(t *testing.T, b []byte) Blob {
	t.Helper()
	sum := sumOf(b)
	p := filepath.Join(t.TempDir(), sum)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return Blob{MD5: sum, Size: int64(len(b)), Path: p}
}

// fetchLikeTheEngine fetches src the way the download engine does: parallel
// ranges with If-Range on src.Client, no HEAD, then checks size and MD5
// against the blob's announced values. It returns the bytes received and
// the verification error, if any.
func fetchLikeTheEngine(t *testing.T, src *Source, wantMD5 string, wantSize int64, parts int) (int64, error) {
	t.Helper()
	buf := make([]byte, src.Size)
	chunk := (src.Size + int64(parts) - 1) / int64(parts)
	var wg sync.WaitGroup
	errs := make(chan error, parts)
	var got atomic.Int64
	for off := int64(0); off < src.Size; off += chunk {
		end := min(off+chunk, src.Size) - 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodGet, src.URL, nil)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
			if src.ETag != "" {
				req.Header.Set("If-Range", `"`+strings.Trim(src.ETag, `"`)+`"`)
			}
			resp, err := src.Client.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusPartialContent {
				errs <- fmt.Errorf("range %d-%d: HTTP %d", off, end, resp.StatusCode)
				return
			}
			n, err := io.ReadFull(resp.Body, buf[off:end+1])
			got.Add(int64(n))
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return got.Load(), err
	}
	if int64(len(buf)) != wantSize {
		return got.Load(), fmt.Errorf("size %d, want %d", len(buf), wantSize)
	}
	if s := sumOf(buf); s != wantMD5 {
		return got.Load(), &blobstore.DigestMismatchError{Expected: wantMD5, Actual: s, Size: int64(len(buf))}
	}
	return got.Load(), nil
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func objectBytes(t *testing.T, srv *testsvc.S3Server, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(srv.ObjectPath(key))
	if err != nil {
		return nil
	}
	return b
}
