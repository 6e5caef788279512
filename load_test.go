package modelcache_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/registry"
)

// exampleServer serves examples/registry on loopback and counts requests.
type exampleServer struct {
	URL      string
	metadata atomic.Int64
	files    atomic.Int64
	fail     atomic.Value // string: a path substring answered with 500
	status   atomic.Int64 // when set, every metadata request is answered with it
}

func serveExamples(t testing.TB) *exampleServer { return serveRegistryDir(t, "examples/registry") }

// serveRegistryDir serves a registry directory on loopback and counts requests.
func serveRegistryDir(t testing.TB, dir string) *exampleServer {
	t.Helper()
	reg, err := registry.Load(context.Background(), dir, registry.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	es := &exampleServer{}
	es.fail.Store("")
	h := srv.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f := es.fail.Load().(string); f != "" && strings.Contains(r.URL.Path, f) {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/models/") {
			es.metadata.Add(1)
			if st := es.status.Load(); st != 0 {
				http.Error(w, "injected status", int(st))
				return
			}
		} else if strings.HasPrefix(r.URL.Path, "/files/") {
			es.files.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	es.URL = ts.URL
	return es
}

func cpuRuntime() negotiation.Runtime {
	ort, torch, tv := "1.20.1", "2.6.0", "0.21.0"
	return negotiation.Runtime{ONNXRuntimeVersion: &ort, AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"},
		TorchAvailable: true, TorchVersion: &torch, TorchvisionVersion: &tv}
}

// openCache opens the cache at home as the maintenance commands do.
func openCache(t testing.TB, home string) *cache.Cache {
	t.Helper()
	cfg := config.Default()
	cfg.Home = home
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newConfig(home, apiHost string) config.Config {
	cfg := config.Default()
	cfg.Home = home
	cfg.APIHost = apiHost
	return cfg
}

func newClient(t testing.TB, home, apiHost string, opts ...modelcache.Option) *modelcache.Client {
	t.Helper()
	cfg := newConfig(home, apiHost)
	c, err := modelcache.New(cfg, append([]modelcache.Option{modelcache.WithRuntime(cpuRuntime())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLoadColdThenWarm(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	c := newClient(t, home, es.URL)

	pkg, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-a"))
	if err != nil {
		t.Fatal(err)
	}
	if pkg.FromCache || pkg.CanonicalModelID != "acme-ws/parcel-detector/7" || pkg.Backend != "onnx" {
		t.Fatalf("cold load: %+v", pkg)
	}
	if pkg.Report == nil || len(pkg.Report.Selected) == 0 || pkg.Report.Selected[0] != pkg.PackageID {
		t.Errorf("loaded %s, negotiation ranked %v", pkg.PackageID, pkg.Report)
	}
	m, err := manifest.Read(ctx, pkg.Dir)
	if err != nil || !m.Complete() {
		t.Fatalf("manifest: %v", err)
	}
	for h, p := range pkg.Files {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("file %s: %v", h, err)
		}
	}
	if es.metadata.Load() != 1 || es.files.Load() == 0 {
		t.Errorf("cold load made %d metadata and %d file requests", es.metadata.Load(), es.files.Load())
	}
	if _, ok, err := meta.LastUsed(openCache(t, home).Home, pkg.CacheModelID, pkg.PackageID); !ok || err != nil {
		t.Errorf("no last-used stamp after a load: %v", err)
	}
	entries, _ := filepath.Glob(filepath.Join(home, "auto-resolution-cache", "*.json"))
	if len(entries) != 1 {
		t.Errorf("%d auto-resolution entries after one load", len(entries))
	}

	// Warm: the entry answers, no network at all.
	meta, files := es.metadata.Load(), es.files.Load()
	warm, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-a"))
	if err != nil {
		t.Fatal(err)
	}
	if !warm.FromCache || warm.Dir != pkg.Dir || warm.PackageID != pkg.PackageID {
		t.Errorf("warm load: %+v", warm)
	}
	if es.metadata.Load() != meta || es.files.Load() != files {
		t.Error("warm load touched the network")
	}

	// Another API key is another key: metadata again, but no file download.
	other, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-b"))
	if err != nil {
		t.Fatal(err)
	}
	if other.FromCache || es.metadata.Load() != meta+1 || es.files.Load() != files {
		t.Errorf("other key: from cache %v, metadata %d→%d, files %d→%d", other.FromCache, meta, es.metadata.Load(), files, es.files.Load())
	}

	// Without the auto-resolution cache: metadata every time, no entry written.
	before, _ := filepath.Glob(filepath.Join(home, "auto-resolution-cache", "*.json"))
	m0 := es.metadata.Load()
	for i := 0; i < 2; i++ {
		p, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-c"), modelcache.WithoutAutoResolutionCache())
		if err != nil || p.FromCache {
			t.Fatalf("no-cache load: %v %+v", err, p)
		}
	}
	after, _ := filepath.Glob(filepath.Join(home, "auto-resolution-cache", "*.json"))
	if es.metadata.Load() != m0+2 || len(after) != len(before) {
		t.Errorf("use_auto_resolution_cache off: %d metadata requests, entries %d→%d", es.metadata.Load()-m0, len(before), len(after))
	}
}

func TestLoadTTLExpiry(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	now := time.Now()
	clock := func() time.Time { return now }
	c := newClient(t, home, es.URL, modelcache.WithClock(func() time.Time { return clock() }))
	if _, err := c.Load(ctx, "acme-ws/fruit-classifier/2"); err != nil {
		t.Fatal(err)
	}
	later := now.Add(24*time.Hour + time.Minute)
	clock = func() time.Time { return later }
	m := es.metadata.Load()
	p, err := c.Load(ctx, "acme-ws/fruit-classifier/2")
	if err != nil {
		t.Fatal(err)
	}
	if p.FromCache || es.metadata.Load() != m+1 {
		t.Errorf("entry older than the 24 h TTL still served (from cache %v)", p.FromCache)
	}
}

func TestLoadFallsBackToNextPackage(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	c := newClient(t, t.TempDir(), es.URL)
	first, err := newClient(t, t.TempDir(), es.URL).Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	// Break the first choice's weights: the next ranked package must load.
	target, _ := os.Readlink(first.Files["weights.onnx"])
	es.fail.Store(filepath.Base(target))
	p, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	if p.PackageID == first.PackageID {
		t.Fatalf("loaded %s again although its weights fail", p.PackageID)
	}
	if len(p.Report.Selected) < 2 || p.Report.Selected[1] != p.PackageID {
		t.Errorf("fallback loaded %s, ranking %v", p.PackageID, p.Report.Selected)
	}
	// With every file failing, the error lists each candidate.
	es.fail.Store("/files/")
	_, err = newClient(t, t.TempDir(), es.URL).Load(ctx, "parcel-det")
	var all *modelcache.AllPackagesFailedError
	if !errors.As(err, &all) || len(all.Failures) < 2 {
		t.Fatalf("want AllPackagesFailedError listing candidates, got %v", err)
	}
}

func TestLoadOfflineModeUsesWarmedCacheOnly(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	cfg := config.Default()
	cfg.Home, cfg.APIHost, cfg.OfflineWarmUp = home, es.URL, true
	warm, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()))
	if err != nil {
		t.Fatal(err)
	}
	online, err := warm.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	cfg.OfflineWarmUp, cfg.Offline = false, true
	off, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()))
	if err != nil {
		t.Fatal(err)
	}
	m, f := es.metadata.Load(), es.files.Load()
	p, err := off.Load(ctx, "parcel-det", modelcache.WithoutAutoResolutionCache())
	if err != nil {
		t.Fatalf("offline load of a warmed model: %v", err)
	}
	if p.Dir != online.Dir || es.metadata.Load() != m || es.files.Load() != f {
		t.Errorf("offline load: dir %s (want %s), network used: %v", p.Dir, online.Dir, es.metadata.Load() != m || es.files.Load() != f)
	}
	_, err = off.Load(ctx, "acme-ws/fruit-classifier/2")
	if !errors.Is(err, errdefs.ErrOffline) {
		t.Errorf("offline load of an unknown model: want ErrOffline, got %v", err)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestLoadLockTimeout(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	c := newClient(t, home, es.URL)
	// Another holder of the package's materialization lock (flock excludes
	// across open files even within one process).
	lp, err := openCache(t, home).Home.MaterializationLockPath("acme-ws/parcel-detector/7", "detonnxfp32dyn")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(lp), 0o755)
	held, err := lock.NewLocker(lock.Options{}).Lock(ctx, lp)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	began := time.Now()
	_, err = c.Load(ctx, "parcel-det", modelcache.WithLockTimeout(300*time.Millisecond), modelcache.WithPackageID("detonnxfp32dyn"))
	if !errors.Is(err, errdefs.ErrLockTimeout) {
		t.Fatalf("want a lock timeout, got %v", err)
	}
	if waited := time.Since(began); waited > 10*time.Second {
		t.Errorf("waited %v despite a 300 ms lock timeout", waited)
	}
}

// Signed download URLs can expire while a package downloads: on a 403 from
// storage the loader asks the provider again, once for the whole package.
func TestLoadRefreshesExpiredSignedURLs(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.Load(ctx, "examples/registry", registry.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	var metadataCalls, refused atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/models/") {
			n := metadataCalls.Add(1)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			// Sign every file URL with the call number.
			body := strings.ReplaceAll(rec.Body.String(), `/weights.onnx"`, `/weights.onnx?sig=`+strconv.FormatInt(n, 10)+`"`)
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, body)
			return
		}
		if sig := r.URL.Query().Get("sig"); strings.HasSuffix(r.URL.Path, "/weights.onnx") && sig != "2" {
			refused.Add(1)
			http.Error(w, "signature expired", http.StatusForbidden)
			return
		}
		r.URL.RawQuery = ""
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	home := t.TempDir()
	c := newClient(t, home, ts.URL)
	pkg, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	if refused.Load() == 0 {
		t.Fatal("the expired URL was never tried: the test proves nothing")
	}
	if metadataCalls.Load() != 2 {
		t.Errorf("%d metadata requests, want 2 (the load and one refresh)", metadataCalls.Load())
	}
	if _, err := openCache(t, home).Packages.VerifyPackage(ctx, pkg.Dir); err != nil {
		t.Fatal(err)
	}
}

// A cold load reads no blob twice: blobs the engine verified while
// downloading them for this load skip the step-6 re-hash. A later load of
// the same package for another key re-hashes them (they existed before it).
func TestColdLoadDoesNotReadBlobsAgain(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c := newClient(t, t.TempDir(), es.URL, modelcache.WithLogger(log))
	pkg, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-a"))
	if err != nil {
		t.Fatal(err)
	}
	hashed := 0
	for h := range pkg.Files {
		if p, err := os.Readlink(pkg.Files[h]); err == nil && strings.Contains(p, "shared-blobs") {
			hashed++
		}
	}
	if n := strings.Count(logs.String(), "not read again"); hashed == 0 || n != hashed {
		t.Fatalf("%d of %d freshly downloaded blobs skipped the re-hash\n%s", n, hashed, logs.String())
	}
	before := strings.Count(logs.String(), "not read again")
	if _, err := c.Load(ctx, "parcel-det", modelcache.WithAPIKey("key-b")); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "not read again"); n != before {
		t.Errorf("blobs that existed before the load were trusted without re-hashing (%d skips)", n-before)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A package whose blobs and manifest are complete is a success even when
// only its auto-resolution entry cannot be written (here: a directory sits
// at the entry's name, as a full disk would refuse the write): the load
// returns the package with a warning, and the next load asks the provider.
func TestLoadSucceedsWhenOnlyTheEntryCannotBeWritten(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	c := newClient(t, home, es.URL)
	res, err := c.Resolve(ctx, "parcel-det")
	if err != nil || res.Key == "" {
		t.Fatalf("resolve: %v", err)
	}
	if err := os.MkdirAll(filepath.Join(home, "auto-resolution-cache", res.Key+".json", "blocker"), 0o755); err != nil {
		t.Fatal(err)
	}
	pkg, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatalf("a complete package was reported as a failure: %v", err)
	}
	if len(pkg.Warnings) != 1 || !strings.Contains(pkg.Warnings[0], "not cached") {
		t.Fatalf("warnings %q", pkg.Warnings)
	}
	if _, err := openCache(t, home).Packages.VerifyPackage(ctx, pkg.Dir); err != nil {
		t.Fatal(err)
	}
	m := es.metadata.Load()
	again, err := c.Load(ctx, "parcel-det")
	if err != nil || again.FromCache || es.metadata.Load() != m+1 {
		t.Fatalf("second load: %v, from cache %v", err, again != nil && again.FromCache)
	}
}
