package offline_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/provider/offline"
	"github.com/modelcache/modelcache/provider/providertest"
	"github.com/modelcache/modelcache/registry"
)

// The offline-weights registry of a cache warmed by one online load
// (OFFLINE_MODE_WARM_UP): the record announces every package, the provider
// serves the one whose files are on disk.
func TestConformance(t *testing.T) {
	ctx := context.Background()
	reg, err := registry.Load(ctx, "../../examples/registry", registry.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	cfg := config.Default()
	cfg.Home, cfg.APIHost, cfg.OfflineWarmUp = t.TempDir(), ts.URL, true
	ort := "1.20.1"
	c, err := modelcache.New(cfg, modelcache.WithRuntime(negotiation.Runtime{ONNXRuntimeVersion: &ort,
		AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"}}))
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := c.Load(ctx, "parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	p, err := offline.New(cfg.Home)
	if err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, p, providertest.Fixture{
		Known: "parcel-det", Canonical: "acme-ws/parcel-detector/7", Packages: []string{pkg.PackageID},
		Unknown: "acme-ws/fruit-classifier/2",
	})
}
