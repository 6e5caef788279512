package registry

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// repoRoot walks up from the package directory to go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatal("go.mod not found")
		}
	}
}

func examplesDir(t testing.TB) string { return filepath.Join(repoRoot(t), "examples", "registry") }

func loadExamples(t testing.TB) *Registry {
	t.Helper()
	reg, err := Load(context.Background(), examplesDir(t), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// serve starts a real loopback server for reg, optionally wrapped.
func serve(t testing.TB, reg *Registry, opts Options, wrap func(http.Handler) http.Handler) (*Server, *httptest.Server) {
	t.Helper()
	s, err := New(reg, opts)
	if err != nil {
		t.Fatal(err)
	}
	var h http.Handler = s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return s, ts
}

// sleeps records the client's waits instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

func client(host string, mod func(*roboflow.Options)) *roboflow.Client {
	o := roboflow.Options{APIHost: host, Logger: slog.New(slog.DiscardHandler), Sleep: (&sleeps{}).sleep, Rand: func() float64 { return 0 }}
	if mod != nil {
		mod(&o)
	}
	return roboflow.New(o)
}

// counter counts requests reaching the wrapped handler, with their raw queries.
type counter struct {
	mu      sync.Mutex
	queries []string
	headers []http.Header
}

func (c *counter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == roboflow.WeightsPath {
			c.mu.Lock()
			c.queries = append(c.queries, r.URL.RawQuery)
			c.headers = append(c.headers, r.Header.Clone())
			c.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

func (c *counter) n() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queries)
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func get(t testing.TB, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// tmpRegistry writes a registry from a map of relative path -> content.
func tmpRegistry(t testing.TB, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// onnxPackage returns package.json text for a static-batch ONNX package.
func onnxPackage(quant string) string {
	return `{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "` + quant +
		`", "dynamicBatchSize": false, "staticBatchSize": 1, "opset": 17}, "trusted_source": true}`
}

// manyPackages builds a registry with one model holding n ONNX packages p00..p(n-1).
func manyPackages(t testing.TB, n int) string {
	files := map[string]string{
		"models/m/model.json": `{"model_id": "ws/many/1", "model_architecture": "yolov8", "task_type": "object-detection"}`,
	}
	for i := 0; i < n; i++ {
		id := "p" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		files["models/m/packages/"+id+"/package.json"] = onnxPackage("fp32")
		files["models/m/packages/"+id+"/files/weights.onnx"] = strings.Repeat(id, 100)
	}
	return tmpRegistry(t, files)
}

func decodeObj(t testing.TB, b []byte) *pyjson.Object {
	t.Helper()
	o, err := pyjson.DecodeObject(b)
	if err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return o
}
