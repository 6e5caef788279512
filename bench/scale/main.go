// Command scale measures the maintenance commands on caches of 1,000 and
// 10,000 models that modelcache itself writes, and prints a table: per
// command the median wall time of several runs of the real binary and its
// peak RSS at each size, and the 10k/1k ratio.
//
//	go run ./bench/scale                       # 1k and 10k, 3 rounds
//	go run ./bench/scale -sizes 1000 -rounds 5
//	go run ./bench/scale -dir /var/tmp/scale   # where the caches live (kept for reruns)
//
// The caches are built with the library's own Load, in-process and
// concurrently, from a generated weights provider whose files a loopback
// HTTP server serves: per model one package of five files, three of its
// own and two shared with one other model (10k models: 50,000 links,
// 35,000 blobs). A rerun reuses a cache and only loads again what a
// previous run purged.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-launch" {
		launch(os.Args[2:])
		return
	}
	sizes := flag.String("sizes", "1000,10000", "cache sizes (models), comma-separated")
	rounds := flag.Int("rounds", 3, "runs per command (median reported)")
	dir := flag.String("dir", filepath.Join(os.TempDir(), "modelcache-scale"), "where the caches are built and kept")
	par := flag.Int("build-concurrency", 8, "concurrent loads while building a cache")
	flag.Parse()
	log.SetFlags(0)
	var ns []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 10 {
			log.Fatalf("-sizes: %q", s)
		}
		ns = append(ns, n)
	}
	bin := filepath.Join(*dir, "modelcache")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/modelcache").CombinedOutput(); err != nil {
		log.Fatalf("go build: %v\n%s", err, out)
	}
	results := map[int][]row{}
	for _, n := range ns {
		home := filepath.Join(*dir, fmt.Sprintf("home-%d", n))
		t0 := time.Now()
		loaded, err := build(home, n, *par)
		if err != nil {
			log.Fatalf("build %d: %v", n, err)
		}
		log.Printf("cache of %d models at %s: %d cold loads in %s", n, home, loaded, time.Since(t0).Round(time.Millisecond))
		results[n] = measure(bin, home, n, *rounds)
	}
	printTable(os.Stdout, ns, results, *rounds)
}

// content is the deterministic body of a file label (200..700 bytes).
func content(label string) []byte {
	s := sha256.Sum256([]byte(label))
	size := 200 + int(s[0])*2
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		x := sha256.Sum256([]byte(label + ":" + strconv.Itoa(i)))
		b.Write(x[:])
	}
	return b.Bytes()[:size]
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// files of model i among n: three of its own, two of a pool of n/2 shared
// ones (each shared by two models).
func files(i, n int) map[string]string {
	pool := max(n/2, 1)
	a, b := (2*i)%pool, (2*i+1)%pool
	return map[string]string{
		"weights.onnx": fmt.Sprintf("w-%d", i), "class_names.txt": fmt.Sprintf("c-%d", i),
		"inference_config.json": fmt.Sprintf("i-%d", i), "shared/a.bin": fmt.Sprintf("s-%d", a), "shared/b.bin": fmt.Sprintf("s-%d", b),
	}
}

func modelID(i int) string { return fmt.Sprintf("bench/m%05d/1", i) }

// build loads every model of a cache of n into home (cold where missing).
func build(home string, n, par int) (int, error) {
	ctx := context.Background()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := content(strings.TrimPrefix(r.URL.Path, "/f/"))
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/f/"
	index := map[string]int{}
	for i := 0; i < n; i++ {
		index[modelID(i)] = i
	}
	prov := provider.Func(func(_ context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
		i, ok := index[req.ModelID]
		if !ok {
			return nil, fmt.Errorf("no model %q", req.ModelID)
		}
		task := "object-detection"
		dyn := true
		pkg := metadata.ModelPackage{PackageID: "onnx" + strconv.Itoa(i%7), Backend: metadata.BackendONNX,
			Quantization: metadata.QuantizationFP32, TrustedSource: true, DynamicBatchSizeSupported: &dyn,
			ONNXPackageDetails: &metadata.ONNXPackageDetails{Opset: 17}}
		fs := files(i, n)
		handles := make([]string, 0, len(fs))
		for h := range fs {
			handles = append(handles, h)
		}
		sort.Strings(handles)
		for _, h := range handles {
			sum := md5hex(content(fs[h]))
			pkg.Artifacts = append(pkg.Artifacts, metadata.Artifact{FileHandle: h, MD5Hash: &sum, DownloadURL: base + fs[h]})
		}
		return &metadata.ModelMetadata{ModelID: req.ModelID, ModelArchitecture: "yolov8", TaskType: &task, Packages: []metadata.ModelPackage{pkg}}, nil
	})
	cfg := config.Default()
	cfg.Home = home
	cfg.DisableProgressBars = true
	ort := "1.20.1"
	rt := negotiation.Runtime{ONNXRuntimeVersion: &ort, AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"}}
	c, err := modelcache.New(cfg, modelcache.WithRuntime(rt), modelcache.WithProvider("bench", prov),
		modelcache.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(par)
	cold := make([]bool, n)
	for i := 0; i < n; i++ {
		g.Go(func() error {
			p, err := c.Load(gctx, modelID(i), modelcache.WithWeightsProvider("bench"))
			if err != nil {
				return fmt.Errorf("load %s: %w", modelID(i), err)
			}
			cold[i] = !p.FromCache
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	k := 0
	for _, x := range cold {
		if x {
			k++
		}
	}
	return k, nil
}

type row struct {
	name  string
	times []time.Duration
	rss   []int64 // KiB
}

func (r row) median() time.Duration {
	s := append([]time.Duration(nil), r.times...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func (r row) peak() int64 {
	var m int64
	for _, x := range r.rss {
		m = max(m, x)
	}
	return m
}

// launch runs one command and prints "<wall ns> <maxrss KiB>". It is a
// small process of its own: a child's ru_maxrss starts at the RSS of the
// process it was forked from (Linux carries the old mm's high-water mark
// over exec), so launching from the bench, which holds a 10k-model build in
// memory, would put that floor under every figure.
func launch(args []string) {
	cmd := exec.Command(args[0], args[1:]...)
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &errb
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%v: %v\n%s", args, err, errb.String())
		os.Exit(1)
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = int64(ru.Maxrss)
	}
	fmt.Println(d.Nanoseconds(), rss)
}

// measure runs each command rounds times against home.
func measure(bin, home string, n, rounds int) []row {
	self, err := os.Executable()
	if err != nil {
		log.Fatal(err)
	}
	run := func(args ...string) (time.Duration, int64) {
		cmd := exec.Command(self, append([]string{"-launch", bin}, args...)...)
		cmd.Env = append(os.Environ(), "INFERENCE_HOME="+home)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil {
			log.Fatalf("%v: %v\n%s", args, err, errb.String())
		}
		var ns, rss int64
		if _, err := fmt.Sscan(string(out), &ns, &rss); err != nil {
			log.Fatalf("%v: launcher said %q", args, out)
		}
		return time.Duration(ns), rss
	}
	// Records for every blob first, so that verify is incremental.
	run("verify")
	cmds := []struct {
		name string
		args func(round int) []string
	}{
		{"version (process start, baseline)", func(int) []string { return []string{"version"} }},
		{"ls --json", func(int) []string { return []string{"ls", "--json"} }},
		{"du", func(int) []string { return []string{"du"} }},
		{"gc --dry-run", func(int) []string { return []string{"gc", "--dry-run"} }},
		{"show ID", func(r int) []string { return []string{"show", modelID(n/2 + r)} }},
		{"path ID PKG", func(r int) []string { return []string{"path", modelID(r), "onnx" + strconv.Itoa(r%7)} }},
		{"verify (incremental)", func(int) []string { return []string{"verify"} }},
		{"verify --full", func(int) []string { return []string{"verify", "--full"} }},
		{"gc", func(int) []string { return []string{"gc"} }},
		{"purge ID", func(r int) []string { return []string{"purge", modelID(n/3 + r)} }},
	}
	var out []row
	for _, c := range cmds {
		r := row{name: c.name}
		for i := 0; i < rounds; i++ {
			d, rss := run(c.args(i)...)
			r.times = append(r.times, d)
			r.rss = append(r.rss, rss)
		}
		out = append(out, r)
	}
	return out
}

func printTable(w io.Writer, ns []int, res map[int][]row, rounds int) {
	fmt.Fprintf(w, "command: go run ./bench/scale %s\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(w, "machine: %d CPUs (GOMAXPROCS %d), %s/%s, %s\n\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH, loadavg())
	fmt.Fprintf(w, "| command |")
	for _, n := range ns {
		fmt.Fprintf(w, " %s models (median of %d) | peak RSS |", human(n), rounds)
	}
	if len(ns) == 2 {
		fmt.Fprintf(w, " %s/%s |", human(ns[1]), human(ns[0]))
	}
	fmt.Fprintln(w)
	fmt.Fprint(w, "|---|")
	for range ns {
		fmt.Fprint(w, "---|---|")
	}
	if len(ns) == 2 {
		fmt.Fprint(w, "---|")
	}
	fmt.Fprintln(w)
	for i, r := range res[ns[0]] {
		fmt.Fprintf(w, "| `%s` |", r.name)
		for _, n := range ns {
			x := res[n][i]
			fmt.Fprintf(w, " %s | %d MB |", fmtDur(x.median()), x.peak()/1024)
		}
		if len(ns) == 2 {
			a, b := res[ns[0]][i].median(), res[ns[1]][i].median()
			fmt.Fprintf(w, " %.1f× |", float64(b)/float64(a))
		}
		fmt.Fprintln(w)
	}
}

func human(n int) string {
	if n%1000 == 0 {
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

func fmtDur(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "load unknown"
	}
	return "load " + strings.Join(f[:3], " ")
}
