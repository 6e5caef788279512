package ocibundle_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/registry"
)

// serveWithDependency serves the example registry with the fruit
// classifier depending on the parcel detector's ONNX package.
func serveWithDependency(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "registry")
	copyTree(t, "../../examples/registry", root)
	mj := filepath.Join(root, "models", "fruit-classifier", "model.json")
	var m map[string]any
	if err := json.Unmarshal(readFile(t, mj), &m); err != nil {
		t.Fatal(err)
	}
	m["model_dependencies"] = []any{map[string]any{"name": "detector", "model_id": "acme-ws/parcel-detector/7", "model_package_id": "detonnxfp32dyn"}}
	b, _ := json.Marshal(m)
	if err := os.WriteFile(mj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	reg, err := registry.Load(context.Background(), root, registry.LoadOptions{})
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

// A package with a dependency travels with the dependency's package; on
// the far side the dependency is materialized first, the link points at it
// and an offline load resolves both.
func TestExportImportWithDependency(t *testing.T) {
	api := serveWithDependency(t)
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, true, "acme-ws/fruit-classifier/2")
	if len(pkgs[0].Dependencies) != 1 {
		t.Fatalf("warm load has dependencies %v", pkgs[0].Dependencies)
	}
	collected, err := ocibundle.Collect(context.Background(), openCache(t, homeA, false), refsOf(pkgs))
	if err != nil {
		t.Fatal(err)
	}
	if len(collected) != 2 {
		t.Fatalf("collected %d packages, want the package and its dependency", len(collected))
	}
	g, err := ocibundle.BuildGraph(collected)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "deps.tar")
	if err := g.WriteTarFile(context.Background(), tarPath); err != nil {
		t.Fatal(err)
	}
	homeB := filepath.Join(t.TempDir(), "b")
	res, err := importBundle(t, homeB, tarPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Packages) != 2 || res.Packages[0].PackageID != "detonnxfp32dyn" {
		t.Fatalf("import order %+v: the dependency must come first", res.Packages)
	}
	p := offlineLoad(t, homeB, "acme-ws/fruit-classifier/2")
	dep, ok := p.Dependencies["detector"]
	if !ok || dep.PackageID != "detonnxfp32dyn" {
		t.Fatalf("offline load dependencies %+v", p.Dependencies)
	}
	cb := openCache(t, homeB, false)
	dirB, _ := cb.Home.PackageDir(pkgs[0].CacheModelID, pkgs[0].PackageID)
	if _, err := cb.Packages.VerifyPackage(context.Background(), dirB); err != nil {
		t.Fatalf("imported package with a dependency does not verify: %v", err)
	}
	link, err := filepath.EvalSymlinks(filepath.Join(dirB, "model_dependencies", "detector"))
	if err != nil || filepath.Dir(filepath.Dir(link)) != filepath.Join(evalDir(t, homeB), "models-cache") {
		t.Errorf("dependency link resolves to %s (%v), outside B's models-cache", link, err)
	}
}

func evalDir(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
