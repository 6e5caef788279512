package ocibundle_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// importBundle opens path and imports it into home.
func importBundle(t *testing.T, home, path string) (*ocibundle.Result, error) {
	t.Helper()
	b, err := ocibundle.OpenBundle(path, ocibundle.Limits{})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return ocibundle.Import(context.Background(), openCache(t, home, false), b, b.Roots, ocibundle.Options{})
}

// checkSamePackage asserts that home B holds package p of home A with the
// same manifest bytes and the same file bytes, and that it verifies.
func checkSamePackage(t *testing.T, homeB string, p *modelcache.Package) {
	t.Helper()
	cb := openCache(t, homeB, false)
	dirB, err := cb.Home.PackageDir(p.CacheModelID, p.PackageID)
	if err != nil {
		t.Fatal(err)
	}
	if a, b := readFile(t, manifest.Path(p.Dir)), readFile(t, manifest.Path(dirB)); !sameBytes(a, b) {
		t.Errorf("%s: manifest differs:\nA %s\nB %s", p.PackageID, a, b)
	}
	for h, fa := range p.Files {
		if !sameBytes(readFile(t, fa), readFile(t, filepath.Join(dirB, filepath.FromSlash(h)))) {
			t.Errorf("%s: file %s differs", p.PackageID, h)
		}
	}
	if _, err := cb.Packages.VerifyPackage(context.Background(), dirB); err != nil {
		t.Errorf("%s does not verify in B: %v", p.PackageID, err)
	}
}

// The air-gap round trip in the library: warm A (with warm-up records) →
// export tar and directory → import into an empty B → OFFLINE_MODE loads
// of every exported model pick the same package, same bytes, no dials.
func TestExportImportRoundTrip(t *testing.T) {
	api := serveExamples(t)
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, true, "parcel-det", "acme-ws/fruit-classifier/2")
	refs := refsOf(pkgs)
	g := graphOf(t, homeA, refs)
	out := t.TempDir()
	tarPath := filepath.Join(out, "bundle.tar")
	if err := g.WriteTarFile(context.Background(), tarPath); err != nil {
		t.Fatal(err)
	}

	t.Run("deterministic", func(t *testing.T) {
		again := filepath.Join(out, "again.tar")
		if err := graphOf(t, homeA, refs).WriteTarFile(context.Background(), again); err != nil {
			t.Fatal(err)
		}
		if !sameBytes(readFile(t, tarPath), readFile(t, again)) {
			t.Error("two exports of one cache differ")
		}
		dir := filepath.Join(out, "dir")
		if err := g.WriteDir(context.Background(), dir); err != nil {
			t.Fatal(err)
		}
		b, err := ocibundle.OpenBundle(tarPath, ocibundle.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		d, err := ocibundle.OpenBundle(dir, ocibundle.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Roots) != 2 || len(d.Roots) != 2 || b.Roots[0].Digest != d.Roots[0].Digest || b.Roots[1].Digest != d.Roots[1].Digest {
			t.Errorf("tar and directory forms list different manifests: %v / %v", b.Roots, d.Roots)
		}
	})

	for _, form := range []string{"tar", "dir"} {
		t.Run(form, func(t *testing.T) {
			src := tarPath
			if form == "dir" {
				src = filepath.Join(out, "dir")
				if _, err := os.Stat(src); err != nil {
					if err := g.WriteDir(context.Background(), src); err != nil {
						t.Fatal(err)
					}
				}
			}
			homeB := filepath.Join(t.TempDir(), "b")
			res, err := importBundle(t, homeB, src)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Packages) != 2 || res.BlobsPublished == 0 {
				t.Fatalf("import result %+v", res)
			}
			for _, p := range pkgs {
				checkSamePackage(t, homeB, p)
				got := offlineLoad(t, homeB, p.ModelID)
				if got.PackageID != p.PackageID {
					t.Errorf("offline load of %s chose %s, A loaded %s", p.ModelID, got.PackageID, p.PackageID)
				}
			}
			// Idempotent: nothing new is published, everything still loads.
			again, err := importBundle(t, homeB, src)
			if err != nil || again.BlobsPublished != 0 || len(again.Packages) != 2 {
				t.Fatalf("second import: %+v %v", again, err)
			}
			offlineLoad(t, homeB, "parcel-det")
		})
	}
}

// Without warm-up records the metadata is rebuilt from the manifest; a
// torch package (whose negotiation needs no backend details) still loads
// offline on the far side, and the record says where it came from.
func TestExportReconstructsMetadataFromManifest(t *testing.T) {
	api := serveExamples(t)
	homeA := filepath.Join(t.TempDir(), "a")
	cfg := config.Default()
	cfg.Home, cfg.APIHost = homeA, api
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.Load(context.Background(), "parcel-det", modelcache.WithPackageID("dettorchfp32"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ocibundle.Collect(context.Background(), openCache(t, homeA, false), refsOf([]*modelcache.Package{p}))
	if err != nil {
		t.Fatal(err)
	}
	if pkgs[0].Doc.MetadataSource != ocibundle.MetadataFromManifest {
		t.Fatalf("metadata source %q", pkgs[0].Doc.MetadataSource)
	}
	g, err := ocibundle.BuildGraph(pkgs)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "b.tar")
	if err := g.WriteTarFile(context.Background(), tarPath); err != nil {
		t.Fatal(err)
	}
	homeB := filepath.Join(t.TempDir(), "b")
	if _, err := importBundle(t, homeB, tarPath); err != nil {
		t.Fatal(err)
	}
	checkSamePackage(t, homeB, p)
	if got := offlineLoad(t, homeB, "parcel-det"); got.PackageID != "dettorchfp32" {
		t.Errorf("offline load chose %s", got.PackageID)
	}
	rec, err := openCache(t, homeB, false).Registry.Lookup(context.Background(), "acme-ws/parcel-detector/7")
	if err != nil || rec == nil {
		t.Fatalf("record: %v %v", rec, err)
	}
	if s, _ := rec.Source(); s != offlinereg.SourceImport {
		t.Errorf("record source %q", s)
	}
}

// A package whose blob is corrupt in the source cache is not exported.
func TestExportRefusesCorruptCache(t *testing.T) {
	api := serveExamples(t)
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, true, "parcel-det")
	blob, err := filepath.EvalSymlinks(pkgs[0].Files["weights.onnx"])
	if err != nil {
		t.Fatal(err)
	}
	b := readFile(t, blob)
	b[0] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ocibundle.Collect(context.Background(), openCache(t, homeA, false), refsOf(pkgs))
	if !errors.Is(err, ocibundle.ErrUnsupportedPackage) {
		t.Fatalf("collect of a corrupt cache: %v", err)
	}
}

// Metadata rebuilt from a manifest never replaces what the target's
// record holds from the provider: after importing such a bundle into a
// warmed cache, the ONNX package still negotiates offline.
func TestRebuiltMetadataDoesNotDegradeRecord(t *testing.T) {
	api := serveExamples(t)
	homeB := filepath.Join(t.TempDir(), "b")
	warm(t, homeB, api, true, "parcel-det") // B has the provider's record
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, false, "parcel-det") // A has none
	g := graphOf(t, homeA, refsOf(pkgs))
	tarPath := filepath.Join(t.TempDir(), "a.tar")
	if err := g.WriteTarFile(context.Background(), tarPath); err != nil {
		t.Fatal(err)
	}
	if _, err := importBundle(t, homeB, tarPath); err != nil {
		t.Fatal(err)
	}
	if p := offlineLoad(t, homeB, "parcel-det"); p.PackageID != pkgs[0].PackageID {
		t.Errorf("offline load chose %s", p.PackageID)
	}
	md, err := openCache(t, homeB, false).Registry.LoadModelMetadata(context.Background(), "parcel-det")
	if err != nil || md == nil {
		t.Fatal(err)
	}
	if p, ok := md.Package(pkgs[0].PackageID); !ok || p.ONNXPackageDetails == nil {
		t.Errorf("the record lost the provider's ONNX details: %+v", p)
	}
}
