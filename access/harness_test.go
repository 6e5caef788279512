package access_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/registry"
)

// The tenants of the matrix. The keys are long and distinctive so that a
// leak anywhere is found by a plain substring search.
const (
	keyA       = "rk-guard-tenant-A-4c1f9b2e7d3a8650"
	keyB       = "rk-guard-tenant-B-93e0d5a7c2f14b68"
	keyWarmer  = "rk-guard-operator-W-0f7a6b5c4d3e2f1a"
	keyTrial   = "rk-guard-trial-T-5566778899aabbcc"
	keyPaused  = "rk-guard-paused-P-ccbbaa9988776655"
	keyUnknown = "rk-guard-unknown-U-1234567890abcdef"

	modelX = "acme-ws/parcel-detector/7"
	modelY = "acme-ws/fruit-classifier/2"
)

var allKeys = []string{keyA, keyB, keyWarmer, keyTrial, keyPaused, keyUnknown}

// accessJSON: A may read X and Y, B only Y, anonymous nothing; W (the
// operator who warms caches in the tests) everything.
func accessJSON(aModels ...string) string {
	list, _ := json.Marshal(aModels)
	return `{"allow_anonymous": false, "keys": [
  {"name": "tenant-a", "key": "` + keyA + `", "models": ` + string(list) + `},
  {"name": "tenant-b", "key": "` + keyB + `", "models": ["` + modelY + `"]},
  {"name": "operator", "key": "` + keyWarmer + `", "models": ["*"]},
  {"name": "trial", "key": "` + keyTrial + `", "models": ["*"], "status": "payment_required"},
  {"name": "paused", "key": "` + keyPaused + `", "models": ["*"], "status": "usage_paused"}
]}`
}

// syncBuffer collects logs written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upstream is our registry server on loopback with access.json, its handler
// swappable (an access.json change) and its metadata requests counted.
type upstream struct {
	URL      string
	srv      *httptest.Server
	h        atomic.Value // http.Handler
	metadata atomic.Int64
}

func newUpstream(t testing.TB, w *world, aModels ...string) *upstream {
	t.Helper()
	u := &upstream{}
	u.h.Store(w.registryHandler(t, aModels...))
	u.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/models/") {
			u.metadata.Add(1)
		}
		u.h.Load().(http.Handler).ServeHTTP(rw, r)
	}))
	t.Cleanup(u.srv.Close)
	u.URL = u.srv.URL
	return u
}

// swap changes access.json (a new server over the same URL).
func (u *upstream) swap(t testing.TB, w *world, aModels ...string) {
	u.h.Store(w.registryHandler(t, aModels...))
}

// down makes the provider unreachable: the listener is closed, so every
// connection is refused.
func (u *upstream) down() { u.srv.Close() }

// world is everything one test observes: logs, audit, metrics and homes.
type world struct {
	logs    syncBuffer // client and registry logs, debug level
	audit   syncBuffer
	metrics *prometheus.Registry
	base    string
	homes   []string
	errs    []string
	mu      sync.Mutex
}

// newWorld's homes live as long as the test t (not its subtests), so the
// final search sees them all.
func newWorld(t testing.TB) *world {
	return &world{metrics: prometheus.NewRegistry(), base: t.TempDir()}
}

func (w *world) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (w *world) home(t testing.TB) string {
	h, err := os.MkdirTemp(w.base, "home")
	if err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	w.homes = append(w.homes, h)
	w.mu.Unlock()
	return h
}

func (w *world) noteErr(err error) {
	if err == nil {
		return
	}
	w.mu.Lock()
	w.errs = append(w.errs, err.Error())
	w.mu.Unlock()
}

func (w *world) registryHandler(t testing.TB, aModels ...string) http.Handler {
	t.Helper()
	root := t.TempDir()
	copyTree(t, "../examples/registry", root)
	if err := os.WriteFile(filepath.Join(root, "access.json"), []byte(accessJSON(aModels...)), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Load(context.Background(), root, registry.LoadOptions{Logger: w.logger()})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{Logger: w.logger()})
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func cpuRuntime() negotiation.Runtime {
	ort, torch, tv := "1.20.1", "2.6.0", "0.21.0"
	return negotiation.Runtime{ONNXRuntimeVersion: &ort, AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"},
		TorchAvailable: true, TorchVersion: &torch, TorchvisionVersion: &tv}
}

// proc is one process of a cache: a client, and its guard unless allowAll.
type proc struct {
	home    string
	apiHost string
	offline bool
	warmUp  bool
	grace   time.Duration // 0: deny (access.NoOfflineGrace)
	now     func() time.Time
	// allowAll: no guard (the reference's behaviour).
	allowAll bool
}

func (w *world) client(t testing.TB, p proc) *modelcache.Client {
	t.Helper()
	cfg := config.Default()
	cfg.Home, cfg.APIHost, cfg.Offline, cfg.OfflineWarmUp = p.home, p.apiHost, p.offline, p.warmUp
	cfg.APIMaxTries = 1 // a refused connection fails at once
	opts := []modelcache.Option{modelcache.WithRuntime(cpuRuntime()), modelcache.WithLogger(w.logger())}
	if p.now != nil {
		opts = append(opts, modelcache.WithClock(p.now))
	}
	if !p.allowAll {
		grace := p.grace
		if grace == 0 {
			grace = access.NoOfflineGrace
		}
		opts = append(opts, modelcache.WithAccessGuard(access.Options{
			OfflineGrace: grace,
			AuditLogger:  slog.New(slog.NewJSONHandler(&w.audit, nil)),
			Metrics:      w.metrics,
		}))
	}
	c, err := modelcache.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// load is one tenant's load ("" key: anonymous); it reports whether the
// tenant got the model, and checks that what it got is that model.
func (w *world) load(t testing.TB, c *modelcache.Client, key, model string) (*modelcache.Package, error) {
	t.Helper()
	var opts []modelcache.LoadOption
	if key != "" {
		opts = append(opts, modelcache.WithAPIKey(key))
	}
	pkg, err := c.Load(context.Background(), model, opts...)
	w.noteErr(err)
	if err == nil && (pkg == nil || pkg.CanonicalModelID != model) {
		t.Errorf("load of %s returned %+v", model, pkg)
	}
	if err != nil && pkg != nil {
		t.Errorf("a failed load of %s returned a package: %s", model, pkg.Dir)
	}
	return pkg, err
}

// assertNoKeyAnywhere greps every home (names and contents), every log,
// the audit log, every error and the metrics exposition for every key.
func (w *world) assertNoKeyAnywhere(t *testing.T) {
	t.Helper()
	mfs, err := w.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exposition strings.Builder
	for _, mf := range mfs {
		exposition.WriteString(mf.String())
	}
	outputs := map[string]string{
		"logs": w.logs.String(), "audit log": w.audit.String(),
		"errors": strings.Join(w.errs, "\n"), "metrics": exposition.String(),
	}
	if len(w.logs.String()) == 0 || len(w.audit.String()) == 0 || exposition.Len() == 0 {
		t.Errorf("nothing captured to search (logs %d, audit %d, metrics %d bytes)", len(w.logs.String()), len(w.audit.String()), exposition.Len())
	}
	files := 0
	for _, home := range w.homes {
		filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			for _, k := range allKeys {
				if strings.Contains(p, k) {
					t.Errorf("a path names a key: %s", p)
				}
			}
			if d.Type().IsRegular() {
				files++
				b, _ := os.ReadFile(p)
				for _, k := range allKeys {
					if bytes.Contains(b, []byte(k)) {
						t.Errorf("%s holds a key in clear", p)
					}
				}
			}
			return nil
		})
	}
	if files == 0 {
		t.Error("no file in any home to search")
	}
	for name, out := range outputs {
		for _, k := range allKeys {
			if strings.Contains(out, k) {
				t.Errorf("the %s contain a key", name)
			}
		}
	}
}
