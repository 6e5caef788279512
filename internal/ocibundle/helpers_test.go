package ocibundle_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/registry"
)

func cpuRuntime() negotiation.Runtime {
	ort, torch, tv := "1.20.1", "2.6.0", "0.21.0"
	return negotiation.Runtime{ONNXRuntimeVersion: &ort, AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"},
		TorchAvailable: true, TorchVersion: &torch, TorchvisionVersion: &tv}
}

func serveExamples(t *testing.T) string {
	t.Helper()
	reg, err := registry.Load(context.Background(), "../../examples/registry", registry.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	return ts.URL
}

// warm pulls models into home as a host with network would; with warmUp
// the offline-weights records are written too.
func warm(t *testing.T, home, api string, warmUp bool, ids ...string) []*modelcache.Package {
	t.Helper()
	cfg := config.Default()
	cfg.Home, cfg.APIHost, cfg.OfflineWarmUp = home, api, warmUp
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()))
	if err != nil {
		t.Fatal(err)
	}
	var out []*modelcache.Package
	for _, id := range ids {
		p, err := c.Load(context.Background(), id)
		if err != nil {
			t.Fatalf("warm %s: %v", id, err)
		}
		out = append(out, p)
	}
	return out
}

func openCache(t *testing.T, home string, offline bool) *cache.Cache {
	t.Helper()
	cfg := config.Default()
	cfg.Home, cfg.Offline = home, offline
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// refusingClient fails every dial and counts the attempts.
func refusingClient(dials *atomic.Int64) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		return nil, &net.OpError{Op: "dial", Net: network, Err: os.ErrPermission}
	}}}
}

// offlineLoad loads id from home in OFFLINE_MODE through a transport that
// refuses dials; it fails the test on any dial.
func offlineLoad(t *testing.T, home, id string) *modelcache.Package {
	t.Helper()
	var dials atomic.Int64
	cfg := config.Default()
	cfg.Home, cfg.Offline = home, true
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()), modelcache.WithHTTPClient(refusingClient(&dials)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Load(context.Background(), id)
	if err != nil {
		t.Fatalf("OFFLINE_MODE load of %s: %v", id, err)
	}
	if dials.Load() != 0 {
		t.Fatalf("offline load of %s dialed %d times", id, dials.Load())
	}
	return p
}

func refsOf(pkgs []*modelcache.Package) []ocibundle.Ref {
	var refs []ocibundle.Ref
	for _, p := range pkgs {
		refs = append(refs, ocibundle.Ref{CacheModelID: p.CacheModelID, PackageID: p.PackageID, Aliases: []string{p.ModelID}})
	}
	return refs
}

func graphOf(t *testing.T, home string, refs []ocibundle.Ref) *ocibundle.Graph {
	t.Helper()
	pkgs, err := ocibundle.Collect(context.Background(), openCache(t, home, false), refs)
	if err != nil {
		t.Fatal(err)
	}
	g, err := ocibundle.BuildGraph(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// tree maps every path under root (relative) to a description of what is
// there: kind, size, mode, mtime and, for regular files, a content hash.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		desc := fi.Mode().String() + " " + fi.ModTime().String()
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			s := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(s[:])
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			desc += " -> " + l
		}
		out[rel] = desc
		return nil
	})
	return out
}

func sameTree(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for k, v := range after {
		if before[k] != v {
			diffs = append(diffs, k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			diffs = append(diffs, k+" (removed)")
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("%s changed: %v", what, diffs)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }
