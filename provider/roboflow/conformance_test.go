package roboflow_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/modelcache/modelcache/provider/providertest"
	"github.com/modelcache/modelcache/provider/roboflow"
	"github.com/modelcache/modelcache/registry"
)

// The API client against our registry server serving examples/registry.
func TestConformance(t *testing.T) {
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
	providertest.Run(t, roboflow.New(roboflow.Options{APIHost: ts.URL}), providertest.Fixture{
		Known: "parcel-det", Canonical: "acme-ws/parcel-detector/7",
		Packages: []string{"detonnxfp16dyn", "detonnxfp32dyn", "detonnxfp32nms", "dettorchfp32", "dettrta100fp16",
			"dettrtl4fp16", "dettrtorinfp16", "dettrtt4fp16trt8"},
		Unknown: "acme-ws/no-such-model/1",
	})
}
