package modelcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// A custom provider registered with WithProvider serves loads that select
// it; New refuses reserved and empty names instead of logging them.
func TestCustomProviderThroughLoad(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	var asked atomic.Int64
	upstream := roboflow.New(roboflow.Options{APIHost: es.URL})
	mine := provider.Func(func(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
		asked.Add(1)
		return upstream.ModelMetadata(ctx, req)
	})
	c := newClient(t, t.TempDir(), "http://127.0.0.1:1", modelcache.WithProvider("mine", mine))
	pkg, err := c.Load(ctx, "parcel-det", modelcache.WithWeightsProvider("mine"))
	if err != nil {
		t.Fatal(err)
	}
	if asked.Load() != 1 || pkg.CanonicalModelID != "acme-ws/parcel-detector/7" {
		t.Fatalf("custom provider asked %d times, loaded %+v", asked.Load(), pkg)
	}
	if _, err := c.Load(ctx, "parcel-det", modelcache.WithWeightsProvider("unknown")); err == nil {
		t.Fatal("a load through an unregistered provider succeeded")
	}
	for _, name := range []string{"roboflow", "Roboflow-Offline-Weights", " "} {
		cfg := newConfig(t.TempDir(), es.URL)
		if _, err := modelcache.New(cfg, modelcache.WithProvider(name, mine)); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("WithProvider(%q): New returned %v, want an invalid-parameter error", name, err)
		}
	}
}

// httpFetcher is a custom Fetcher: plain GETs, optionally corrupting bytes.
type httpFetcher struct {
	opened  atomic.Int64
	corrupt string // handle whose bytes are flipped
}

func (f *httpFetcher) Open(ctx context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
	f.opened.Add(1)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.DownloadURL, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	if a.FileHandle != f.corrupt {
		return resp.Body, resp.ContentLength, nil
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, 0, err
	}
	b[len(b)/2] ^= 0xff
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

// A custom Fetcher replaces the engine; modelcache still verifies what it
// hands over and publishes nothing that fails.
func TestCustomFetcherThroughLoad(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	f := &httpFetcher{}
	c := newClient(t, home, es.URL, modelcache.WithFetcher(f))
	pkg, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	if int(f.opened.Load()) != len(pkg.Files) || pkg.Transfer.Downloaded != len(pkg.Files) {
		t.Fatalf("fetcher opened %d files, transfer %+v, package has %d", f.opened.Load(), pkg.Transfer, len(pkg.Files))
	}
	if _, err := openCache(t, home).Packages.VerifyPackage(ctx, pkg.Dir); err != nil {
		t.Fatal(err)
	}

	bad := &httpFetcher{corrupt: "weights.onnx"}
	home2 := t.TempDir()
	_, err = newClient(t, home2, es.URL, modelcache.WithFetcher(bad)).Load(ctx, "parcel-det", modelcache.WithMaxPackageAttempts(1))
	if !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("corrupt bytes from a fetcher: got %v, want a digest mismatch", err)
	}
	weights := filepath.Base(mustReadlink(t, pkg.Files["weights.onnx"]))
	if _, err := os.Lstat(filepath.Join(home2, "shared-blobs", weights)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a blob that failed verification was published: %v", err)
	}
}

func mustReadlink(t *testing.T, p string) string {
	t.Helper()
	s, err := os.Readlink(p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// recordingAccess is an AccessManager that records every call.
type recordingAccess struct {
	mu        sync.Mutex
	forbidden map[string]bool // model ids
	noCached  bool
	noCachedM map[string]bool // model ids whose cached packages are refused
	calls     []string
}

func (a *recordingAccess) record(s string) {
	a.mu.Lock()
	a.calls = append(a.calls, s)
	a.mu.Unlock()
}

func (a *recordingAccess) IsModelAccessForbidden(_ context.Context, modelID string, _ *string) bool {
	a.record("forbidden? " + modelID)
	return a.forbidden[modelID]
}

func (a *recordingAccess) OnModelAccessForbidden(_ context.Context, modelID string, _ *string) {
	a.record("told forbidden " + modelID)
}

func (a *recordingAccess) CanUseCachedPackage(_ context.Context, modelID, packageID string, _ *string) bool {
	a.record("cached? " + modelID + " " + packageID)
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.noCached && !a.noCachedM[modelID]
}

func (a *recordingAccess) OnModelPackageAccessGranted(_ context.Context, modelID, packageID string, _ *string) {
	a.record("granted " + modelID + " " + packageID)
}

func (a *recordingAccess) has(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, c := range a.calls {
		if c == s {
			return true
		}
	}
	return false
}

// Every hook of the AccessManager is consulted where the reference
// consults it.
func TestAccessManagerThroughLoad(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	acc := &recordingAccess{forbidden: map[string]bool{"acme-ws/fruit-classifier/2": true}}
	c := newClient(t, t.TempDir(), es.URL, modelcache.WithAccessManager(acc))

	m := es.metadata.Load()
	_, err := c.Load(ctx, "acme-ws/fruit-classifier/2")
	var denied *modelcache.AccessDeniedError
	if !errors.As(err, &denied) || es.metadata.Load() != m {
		t.Fatalf("forbidden model: %v after %d metadata requests", err, es.metadata.Load()-m)
	}

	pkg, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	if !acc.has("granted parcel-det " + pkg.PackageID) {
		t.Errorf("no grant recorded: %v", acc.calls)
	}
	warm, err := c.Load(ctx, "parcel-det")
	if err != nil || !warm.FromCache || !acc.has("cached? parcel-det "+pkg.PackageID) {
		t.Fatalf("warm load %v (from cache %v); calls %v", err, warm != nil && warm.FromCache, acc.calls)
	}
	// A cached package the manager refuses is not served from the cache:
	// the provider is asked again.
	acc.noCached = true
	m = es.metadata.Load()
	again, err := c.Load(ctx, "parcel-det")
	if err != nil || again.FromCache || es.metadata.Load() != m+1 {
		t.Fatalf("refused cache: %v, from cache %v, %d metadata requests", err, again != nil && again.FromCache, es.metadata.Load()-m)
	}

	// The provider's 401 reaches OnModelAccessForbidden.
	es.fail.Store("") // no injected 500s
	es.status.Store(int64(http.StatusUnauthorized))
	_, err = newClient(t, t.TempDir(), es.URL, modelcache.WithAccessManager(acc)).Load(ctx, "parcel-det")
	if !errors.Is(err, provider.ErrUnauthorized) || !acc.has("told forbidden parcel-det") {
		t.Fatalf("401: %v; calls %v", err, acc.calls)
	}
}

// WithDownloadObserver sees every file of a cold load reach "done".
func TestDownloadObserverThroughLoad(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	var mu sync.Mutex
	done := map[string]bool{}
	obs := download.ObserverFunc(func(ev download.Event) {
		if ev.Type == download.EventPhase && ev.File != nil && ev.File.Phase == download.PhaseDone {
			mu.Lock()
			done[ev.File.Name] = true
			mu.Unlock()
		}
	})
	pkg, err := newClient(t, t.TempDir(), es.URL, modelcache.WithDownloadObserver(obs)).Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for h := range pkg.Files {
		if !done[h] {
			t.Errorf("no done event for %s (saw %v)", h, done)
		}
	}
}

// A cache copied elsewhere (cp -a) is judged by its own files: after the
// copy loses a blob, a load from the copy is not a hit served through the
// original tree's absolute paths, and the copy is repaired, not the
// original.
func TestCopiedCacheHitChecksItsOwnFiles(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	a := filepath.Join(t.TempDir(), "a")
	pkg, err := newClient(t, a, es.URL).Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	b := filepath.Join(t.TempDir(), "b")
	if out, err := exec.Command("cp", "-a", a, b).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v %s", err, out)
	}
	blob := filepath.Base(mustReadlink(t, pkg.Files["weights.onnx"]))
	if err := os.Remove(filepath.Join(b, "shared-blobs", blob)); err != nil {
		t.Fatal(err)
	}
	files := es.files.Load()
	p, err := newClient(t, b, es.URL).Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	if p.FromCache || es.files.Load() == files || !strings.HasPrefix(p.Dir, b+string(filepath.Separator)) {
		t.Fatalf("copy with a missing blob: from cache %v, %d file requests, dir %s", p.FromCache, es.files.Load()-files, p.Dir)
	}
	if _, err := os.Stat(filepath.Join(b, "shared-blobs", blob)); err != nil {
		t.Fatalf("the copy was not repaired: %v", err)
	}
	// A complete copy is a hit of its own.
	warm, err := newClient(t, b, es.URL).Load(ctx, "parcel-det")
	if err != nil || !warm.FromCache || !strings.HasPrefix(warm.Dir, b+string(filepath.Separator)) {
		t.Fatalf("warm load from the copy: %v, %+v", err, warm)
	}
}

// Under an access manager, a package directory inside the cache cannot be
// loaded by path (that would skip the manager); the caller's own
// directories can, and without a manager nothing changes.
func TestLocalDirInsideCacheNeedsTheAccessManager(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	pkg, err := newClient(t, home, es.URL).Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	guarded := newClient(t, home, es.URL, modelcache.WithAccessManager(&recordingAccess{}))
	if _, err := guarded.Load(ctx, pkg.Dir); !errors.Is(err, access.ErrAccessDenied) {
		t.Fatalf("a cached package loaded by path under an access manager: %v", err)
	}
	own := filepath.Join(t.TempDir(), "mine")
	if err := os.MkdirAll(own, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(own, "model_config.json"), []byte(`{"model_architecture": "yolov8", "backend_type": "onnx"}`), 0o644)
	os.WriteFile(filepath.Join(own, "weights.onnx"), []byte("w"), 0o644)
	if _, err := guarded.Load(ctx, own); err != nil {
		t.Fatalf("the caller's own directory: %v", err)
	}
	if _, err := newClient(t, home, es.URL).Load(ctx, pkg.Dir); err != nil {
		t.Fatalf("without an access manager: %v", err)
	}
}

// A cache hit serves the dependency packages too: the access manager is
// asked about each, and refusing one makes the load go to the provider.
func TestHitAsksAboutDependencies(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "registry")
	if out, err := exec.Command("cp", "-a", "examples/registry", root).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	mj := filepath.Join(root, "models", "parcel-segmenter", "model.json")
	b, _ := os.ReadFile(mj)
	withDep := strings.Replace(string(b), `"model_dependencies": null`, `"model_dependencies": [{"name": "detector", "model_id": "parcel-det", "model_package_id": "detonnxfp32dyn"}]`, 1)
	if withDep == string(b) {
		t.Fatal("fixture unchanged")
	}
	os.WriteFile(mj, []byte(withDep), 0o644)
	es := serveRegistryDir(t, root)
	acc := &recordingAccess{noCachedM: map[string]bool{}}
	c := newClient(t, t.TempDir(), es.URL, modelcache.WithAccessManager(acc))
	first, err := c.Load(ctx, "acme-ws/parcel-segmenter/3")
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Dependencies) != 1 {
		t.Fatalf("dependencies %v", first.Dependencies)
	}
	warm, err := c.Load(ctx, "acme-ws/parcel-segmenter/3")
	if err != nil || !warm.FromCache || !acc.has("cached? parcel-det detonnxfp32dyn") {
		t.Fatalf("warm: %v, from cache %v; calls %v", err, warm != nil && warm.FromCache, acc.calls)
	}
	acc.mu.Lock()
	acc.noCachedM["parcel-det"] = true
	acc.mu.Unlock()
	m := es.metadata.Load()
	again, err := c.Load(ctx, "acme-ws/parcel-segmenter/3")
	if err != nil || again.FromCache || es.metadata.Load() == m {
		t.Fatalf("refused dependency: %v, from cache %v, %d metadata requests", err, again != nil && again.FromCache, es.metadata.Load()-m)
	}
}

// A warm load never serves from a symlinked models-cache (planted content
// outside the cache): the hit is refused, and the load fails naming the
// layout instead of writing through the link.
func TestWarmLoadRefusesSymlinkedModelsCache(t *testing.T) {
	ctx := context.Background()
	es := serveExamples(t)
	home := t.TempDir()
	c := newClient(t, home, es.URL)
	if _, err := c.Load(ctx, "parcel-det"); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "planted")
	if err := os.Rename(filepath.Join(home, "models-cache"), outside); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(home, "models-cache")); err != nil {
		t.Fatal(err)
	}
	before := treeState(t, outside)
	pkg, err := newClient(t, home, es.URL).Load(ctx, "parcel-det")
	if err == nil && (pkg.FromCache || strings.HasPrefix(pkg.Dir, filepath.Join(home, "models-cache"))) {
		t.Fatalf("served through a symlinked models-cache: %+v", pkg)
	}
	if after := treeState(t, outside); after != before {
		t.Fatalf("the tree outside the cache changed:\nbefore %s\nafter  %s", before, after)
	}
}

// treeState describes every entry under root (path, type, size, mode, mtime).
func treeState(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d;", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	return b.String()
}
