// Command registry benchmarks the registry server over loopback against a
// baseline measured in the same run: a minimal handler serving the same
// bytes from memory. It prints the median of several rounds and the ratio.
//
//	go run ./bench/registry                  # from the repository root
//	go run ./bench/registry -rounds 7 -duration 3s -concurrency 16 -file-mib 128
//
// Metadata: GET /models/v1/external/weights for the example detector (an
// alias, 8 packages). Files: GET of one file of -file-mib MiB (sendfile path
// of the registry vs. w.Write from memory).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/registry"
)

type result struct {
	Name      string    `json:"name"`
	Unit      string    `json:"unit"`
	Registry  []float64 `json:"registry"`
	Baseline  []float64 `json:"baseline"`
	MedReg    float64   `json:"median_registry"`
	MedBase   float64   `json:"median_baseline"`
	MedRatio  float64   `json:"median_ratio"`
	RatioRuns []float64 `json:"ratios"`
}

func main() {
	rounds := flag.Int("rounds", 5, "measurement rounds (median reported)")
	dur := flag.Duration("duration", 2*time.Second, "duration of each measurement")
	conc := flag.Int("concurrency", 8, "concurrent clients")
	fileMiB := flag.Int("file-mib", 64, "size of the served file in MiB")
	examples := flag.String("examples", filepath.Join("examples", "registry"), "example registry (metadata benchmark)")
	asJSON := flag.Bool("json", false, "print JSON instead of a table")
	flag.Parse()
	if err := run(*rounds, *dur, *conc, *fileMiB, *examples, *asJSON); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}

func run(rounds int, dur time.Duration, conc, fileMiB int, examples string, asJSON bool) error {
	ctx := context.Background()
	// Registry 1: the bundled examples, for metadata.
	exReg, err := registry.Load(ctx, examples, registry.LoadOptions{})
	if err != nil {
		return err
	}
	// Registry 2: one model with one big file, for file serving.
	tmp, err := os.MkdirTemp("", "registry-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	big := make([]byte, 0, fileMiB<<20)
	for i := 0; len(big) < fileMiB<<20; i++ {
		s := sha256.Sum256([]byte("bench:" + strconv.Itoa(i)))
		big = append(big, s[:]...)
	}
	big = big[:fileMiB<<20]
	files := map[string][]byte{
		"models/big/model.json":                    []byte(`{"model_id": "bench/big/1", "model_architecture": "yolov8"}`),
		"models/big/packages/p1/package.json":      []byte(`{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1, "opset": 17}}`),
		"models/big/packages/p1/files/weights.bin": big,
	}
	for p, b := range files {
		full := filepath.Join(tmp, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			return err
		}
	}
	bigReg, err := registry.Load(ctx, tmp, registry.LoadOptions{})
	if err != nil {
		return err
	}

	exSrv, err := registry.New(exReg, registry.Options{})
	if err != nil {
		return err
	}
	bigSrv, err := registry.New(bigReg, registry.Options{MaxConcurrentFiles: 4 * conc})
	if err != nil {
		return err
	}
	exURL, stop1, err := serve(exSrv.Handler())
	if err != nil {
		return err
	}
	defer stop1()
	bigURL, stop2, err := serve(bigSrv.Handler())
	if err != nil {
		return err
	}
	defer stop2()

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc * 2, DisableCompression: true}}
	metaPath := "/models/v1/external/weights?modelId=parcel-det"
	metaBody, err := fetch(client, exURL+metaPath)
	if err != nil {
		return err
	}
	// The baseline serves the registry's exact response body from memory.
	var fileURL string
	{
		var v struct {
			ModelMetadata struct {
				ModelPackages []struct {
					PackageFiles []struct {
						DownloadURL string `json:"downloadUrl"`
					} `json:"packageFiles"`
				} `json:"modelPackages"`
			} `json:"modelMetadata"`
		}
		b, err := fetch(client, bigURL+"/models/v1/external/weights?modelId=bench/big/1")
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		fileURL = v.ModelMetadata.ModelPackages[0].PackageFiles[0].DownloadURL
	}
	baseline := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := big
		ct := "application/octet-stream"
		if r.URL.Path == "/meta" {
			body, ct = metaBody, "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	baseURL, stop3, err := serve(baseline)
	if err != nil {
		return err
	}
	defer stop3()
	if b, err := fetch(client, fileURL); err != nil || !bytes.Equal(b, big) {
		return fmt.Errorf("registry file differs from the baseline bytes (%v)", err)
	}

	meta := &result{Name: "metadata requests/s", Unit: "req/s"}
	file := &result{Name: fmt.Sprintf("file serving MB/s (%d MiB file)", fileMiB), Unit: "MB/s"}
	for i := 0; i < rounds; i++ {
		// Alternate the order to spread drift evenly.
		order := []bool{true, false}
		if i%2 == 1 {
			order = []bool{false, true}
		}
		for _, reg := range order {
			mu := exURL + metaPath
			fu := fileURL
			if !reg {
				mu, fu = baseURL+"/meta", baseURL+"/file"
			}
			n, _, el1, err := load(client, mu, len(metaBody), conc, dur)
			if err != nil {
				return err
			}
			_, bytesRead, el2, err := load(client, fu, len(big), conc, dur)
			if err != nil {
				return err
			}
			rps := float64(n) / el1.Seconds()
			mbps := float64(bytesRead) / 1e6 / el2.Seconds()
			if reg {
				meta.Registry = append(meta.Registry, rps)
				file.Registry = append(file.Registry, mbps)
			} else {
				meta.Baseline = append(meta.Baseline, rps)
				file.Baseline = append(file.Baseline, mbps)
			}
		}
	}
	for _, r := range []*result{meta, file} {
		for i := range r.Registry {
			r.RatioRuns = append(r.RatioRuns, r.Registry[i]/r.Baseline[i])
		}
		r.MedReg, r.MedBase, r.MedRatio = median(r.Registry), median(r.Baseline), median(r.RatioRuns)
	}
	cmdline := fmt.Sprintf("go run ./bench/registry -rounds %d -duration %s -concurrency %d -file-mib %d", rounds, dur, conc, fileMiB)
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"command": cmdline, "go": runtime.Version(), "cpus": runtime.NumCPU(), "results": []*result{meta, file}})
	}
	fmt.Printf("registry server vs. in-memory baseline, loopback, same run\n")
	fmt.Printf("command: %s\n", cmdline)
	fmt.Printf("%s, %d CPUs, %d rounds x %s, %d concurrent clients, medians:\n\n", runtime.Version(), runtime.NumCPU(), rounds, dur, conc)
	fmt.Printf("%-34s %14s %18s %8s\n", "", "registry", "baseline (memory)", "ratio")
	for _, r := range []*result{meta, file} {
		fmt.Printf("%-34s %14.0f %18.0f %8.2f\n", r.Name, r.MedReg, r.MedBase, r.MedRatio)
	}
	return nil
}

func fetch(c *http.Client, u string) ([]byte, error) {
	resp, err := c.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// load runs conc clients fetching u for d (requests in flight at the
// deadline complete); it returns completed requests, body bytes read and
// the elapsed time. Every response must be 200 with want bytes.
func load(c *http.Client, u string, want, conc int, d time.Duration) (int64, int64, time.Duration, error) {
	var n, nb atomic.Int64
	var firstErr error
	var once sync.Once
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 256<<10)
			for time.Now().Before(deadline) {
				resp, err := c.Get(u)
				if err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				var got int64
				for {
					k, rerr := resp.Body.Read(buf)
					got += int64(k)
					nb.Add(int64(k))
					if rerr != nil {
						break
					}
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || got != int64(want) {
					once.Do(func() { firstErr = fmt.Errorf("GET %s: %s, %d bytes (want %d)", u, resp.Status, got, want) })
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return n.Load(), nb.Load(), time.Since(start), firstErr
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
