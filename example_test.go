package modelcache_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http/httptest"
	"os"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
	"github.com/modelcache/modelcache/registry"
)

// exampleAPI serves the bundled example registry through the weights API on
// loopback, as `modelcache registry serve --root examples/registry` does.
func exampleAPI() (url string, stop func()) {
	reg, err := registry.Load(context.Background(), "examples/registry", registry.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		log.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	return ts.URL, ts.Close
}

// cpuHost describes a CPU machine with ONNX Runtime (what `modelcache xray
// --json` reports), so that the examples negotiate the same way everywhere.
func cpuHost() modelcache.Runtime {
	ort := "1.20.1"
	return modelcache.Runtime{ONNXRuntimeVersion: &ort, AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"}}
}

// Load a model by its alias: the first load negotiates and downloads, the
// second is answered by the auto-resolution cache without any request.
func ExampleClient_Load() {
	api, stop := exampleAPI()
	defer stop()
	home, _ := os.MkdirTemp("", "modelcache-example-")
	defer os.RemoveAll(home)

	cfg := config.Default() // or config.Load() to read the environment
	cfg.Home, cfg.APIHost = home, api
	client, err := modelcache.New(cfg, modelcache.WithRuntime(cpuHost()), modelcache.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		pkg, err := client.Load(ctx, "parcel-det", modelcache.WithBackends("onnx"))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(pkg.CanonicalModelID, pkg.PackageID, pkg.Backend, pkg.Quantization, "from cache:", pkg.FromCache)
	}
	// Output:
	// acme-ws/parcel-detector/7 detonnxfp32dyn onnx fp32 from cache: false
	// acme-ws/parcel-detector/7 detonnxfp32dyn onnx fp32 from cache: true
}

// Resolve negotiates without downloading: which packages could run on the
// host, best first.
func ExampleClient_Resolve() {
	api, stop := exampleAPI()
	defer stop()
	home, _ := os.MkdirTemp("", "modelcache-example-")
	defer os.RemoveAll(home)
	cfg := config.Default()
	cfg.Home, cfg.APIHost = home, api
	client, err := modelcache.New(cfg, modelcache.WithRuntime(cpuHost()), modelcache.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	res, err := client.Resolve(context.Background(), "acme-ws/parcel-detector/7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Device, res.Report.Selected)
	// Output:
	// cpu [detonnxfp32dyn]
}

// A custom weights provider: any function from a model id to its metadata.
// This one answers for a team's own names and asks the bundled registry's
// weights API for the rest.
func ExampleWithProvider() {
	api, stop := exampleAPI()
	defer stop()
	home, _ := os.MkdirTemp("", "modelcache-example-")
	defer os.RemoveAll(home)
	upstream := roboflow.New(roboflow.Options{APIHost: api})
	team := provider.Func(func(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
		if req.ModelID == "team/detector" {
			req.ModelID = "acme-ws/parcel-detector/7"
		}
		return upstream.ModelMetadata(ctx, req)
	})
	cfg := config.Default()
	cfg.Home = home
	client, err := modelcache.New(cfg, modelcache.WithProvider("team", team), modelcache.WithRuntime(cpuHost()),
		modelcache.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		log.Fatal(err)
	}
	pkg, err := client.Load(context.Background(), "team/detector", modelcache.WithWeightsProvider("team"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(pkg.ModelID, "→", pkg.CanonicalModelID, pkg.PackageID, len(pkg.Files), "files")
	// Output:
	// team/detector → acme-ws/parcel-detector/7 detonnxfp32dyn 3 files
}
