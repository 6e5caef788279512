// Command load measures model loading on examples/registry and prints a table:
// in-process warm Load (auto-resolution hit) and cold Load latency, and the
// whole-process time of a warm and a cold `modelcache pull`, next to the
// process-start baseline `modelcache version` measured in the same run.
//
//	go run ./bench/load [-warm 3000] [-cold 20] [-cli 30]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/registry"
)

func main() {
	warmN := flag.Int("warm", 3000, "in-process warm loads")
	coldN := flag.Int("cold", 20, "in-process cold loads")
	cliN := flag.Int("cli", 30, "runs of each CLI measurement")
	root := flag.String("registry", "examples/registry", "registry directory")
	flag.Parse()
	ctx := context.Background()

	url, stop := serve(ctx, *root)
	defer stop()
	tmp, err := os.MkdirTemp("", "modelcache-bench-load")
	must(err)
	defer os.RemoveAll(tmp)
	rtFile := filepath.Join(*root, "..", "runtimes", "cpu-onnx.json")
	rt := readRuntime(rtFile)

	newClient := func(home string) *modelcache.Client {
		cfg := config.Default()
		cfg.Home, cfg.APIHost = home, url
		c, err := modelcache.New(cfg, modelcache.WithRuntime(rt), modelcache.WithLogger(slog.New(slog.DiscardHandler)))
		must(err)
		return c
	}

	// In-process warm: one cold load, then timed hits.
	c := newClient(filepath.Join(tmp, "warm"))
	_, err = c.Load(ctx, "parcel-det")
	must(err)
	warm := timeN(*warmN, func() {
		p, err := c.Load(ctx, "parcel-det")
		must(err)
		if !p.FromCache {
			log.Fatal("warm load missed the auto-resolution cache")
		}
	})
	cold := timeN(*coldN, func() {
		home, err := os.MkdirTemp(tmp, "cold")
		must(err)
		_, err = newClient(home).Load(ctx, "parcel-det")
		must(err)
	})

	bin := filepath.Join(tmp, "modelcache")
	out, err := exec.Command("go", "build", "-o", bin, "./cmd/modelcache").CombinedOutput()
	if err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	env := append(os.Environ(), "ROBOFLOW_API_HOST="+url, "INFERENCE_HOME="+filepath.Join(tmp, "cli"))
	run := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	pull := []string{"pull", "parcel-det", "--runtime", rtFile, "--log-level", "warn"}
	run(pull...)
	// Without --runtime every process needs this host's x-ray for the key;
	// it comes from .meta/xray.json while the host is unchanged. A package id
	// makes the load independent of what this host can run.
	pullXray := []string{"pull", "parcel-det", "--package-id", "detonnxfp32dyn", "--log-level", "warn"}
	run(pullXray...)
	version := timeN(*cliN, func() { run("version") })
	warmCLI := timeN(*cliN, func() { run(pull...) })
	warmXray := timeN(*cliN, func() { run(pullXray...) })
	coldCLI := timeN(*cliN, func() {
		cmd := exec.Command(bin, pull...)
		home, err := os.MkdirTemp(tmp, "clicold")
		must(err)
		cmd.Env = append(os.Environ(), "ROBOFLOW_API_HOST="+url, "INFERENCE_HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			log.Fatalf("cold pull: %v\n%s", err, out)
		}
	})

	fmt.Printf("%-44s %8s %12s %12s %12s\n", "measurement", "runs", "median", "p10", "p90")
	row := func(name string, d []time.Duration) {
		fmt.Printf("%-44s %8d %12s %12s %12s\n", name, len(d), pct(d, 50), pct(d, 10), pct(d, 90))
	}
	row("Load in-process, warm (auto-resolution hit)", warm)
	row("Load in-process, cold (metadata+download)", cold)
	row("process start baseline: modelcache version", version)
	row("modelcache pull, warm, --runtime file", warmCLI)
	row("modelcache pull, warm, cached host x-ray", warmXray)
	row("modelcache pull, cold, --runtime file", coldCLI)
	fmt.Printf("\nwarm pull / version baseline = %.2f×; targets: warm in-process ≤ 200µs, warm CLI ≤ 20ms (medians)\n",
		float64(pct(warmCLI, 50))/float64(pct(version, 50)))
}

func serve(ctx context.Context, root string) (string, func()) {
	reg, err := registry.Load(ctx, root, registry.LoadOptions{})
	must(err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	url := "http://" + ln.Addr().String()
	srv, err := registry.New(reg, registry.Options{PublicURL: url, Logger: slog.New(slog.DiscardHandler)})
	must(err)
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	return url, func() { cancel(); <-done }
}

func readRuntime(path string) negotiation.Runtime {
	var rt negotiation.Runtime
	b, err := os.ReadFile(path)
	must(err)
	must(json.Unmarshal(b, &rt))
	return rt
}

func timeN(n int, f func()) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		t := time.Now()
		f()
		out[i] = time.Since(t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func pct(d []time.Duration, p int) time.Duration {
	i := (len(d) - 1) * p / 100
	return d[i].Round(time.Microsecond)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
