// Command download benchmarks the download engine over loopback against the
// disk-write limit, curl and aria2c, in one run on the same bytes.
//
//	go run ./bench/download                      # from the repository root
//	go run ./bench/download -size-mib 2048 -rounds 3
//
// It builds a registry directory holding one package (one large file plus
// small ones) of random bytes, serves it with the registry server
// (package registry) on 127.0.0.1, reads the download URLs and MD5s from the
// weights API, and then, in every round (tool order rotated per round):
//
//   - dd:         dd of each source file to a fresh file, then sync (the disk-write limit)
//   - modelcache: a child process (this program with -pull) running the
//     engine's Batch into an empty INFERENCE_HOME: parallel files and ranges,
//     MD5 (+ SHA-256) verified, fsync, atomic publish into shared-blobs
//   - curl:       one curl process fetching the files sequentially, then sync
//   - aria2c:     aria2c -x8 -s8 (no MD5 check), then sync
//
// and prints the median MB/s (MB = 10^6 bytes) of each. Every tool is timed
// until its bytes are on disk (sync / fsync included). The CLI pull command
// does not exist yet; -pull uses the engine directly. All files are removed
// at the end.
package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/registry"
)

type file struct {
	Handle string `json:"fileHandle"`
	URL    string `json:"downloadUrl"`
	MD5    string `json:"md5Hash"`
	Size   int64  `json:"-"`
	src    string
}

func main() {
	sizeMiB := flag.Int("size-mib", 2048, "size of the large file in MiB")
	rounds := flag.Int("rounds", 3, "rounds (median reported)")
	dir := flag.String("dir", "", "work directory (default: a new directory under $TMPDIR)")
	outFlag := flag.String("out", "", "where the tools write (default: -dir); must be on the filesystem under test")
	keep := flag.Bool("keep", false, "keep the generated registry in -dir and reuse it next time")
	tools := flag.String("tools", "dd,modelcache,engine,curl,aria2c", "tools to measure, comma-separated")
	mcBin := flag.String("modelcache", "", "modelcache binary for the pull row (default: go build ./cmd/modelcache)")
	runtimeDoc := flag.String("runtime", "examples/runtimes/cpu-onnx.json", "runtime document the pull negotiates for")
	pull := flag.String("pull", "", "internal: pull the files listed in this JSON file into $INFERENCE_HOME")
	verbose := flag.Bool("v", false, "engine logs at debug level (pull)")
	flag.Parse()
	if *pull != "" {
		if err := runPull(*pull, *verbose); err != nil {
			fmt.Fprintln(os.Stderr, "pull:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*sizeMiB, *rounds, *dir, *outFlag, strings.Split(*tools, ","), *verbose, *keep, *mcBin, *runtimeDoc); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// runPull is the modelcache contender: the engine's batch pull of every
// file into $INFERENCE_HOME, exactly as materialize would call it.
func runPull(list string, verbose bool) error {
	if p := os.Getenv("BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	b, err := os.ReadFile(list)
	if err != nil {
		return err
	}
	var files []file
	if err := json.Unmarshal(b, &files); err != nil {
		return err
	}
	cfg, err := config.FromEnv(os.LookupEnv)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	locks := lock.NewLocker(lock.Options{Timeout: cfg.LockTimeout, Logger: log})
	blobs, err := blobfs.Open(cfg.Home, locks, blobfs.WithLogger(log))
	if err != nil {
		return err
	}
	tune, err := tuningFromEnv(os.Getenv("BENCH_TUNE"))
	if err != nil {
		return err
	}
	e, err := download.New(cfg, blobs, locks, download.WithLogger(log), download.WithTuning(tune))
	if err != nil {
		return err
	}
	items := make([]download.Item, len(files))
	for i, f := range files {
		items[i] = download.Item{Name: f.Handle, URL: f.URL, MD5: f.MD5}
	}
	res, err := e.Batch(context.Background(), items)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Cached {
			return fmt.Errorf("%s was already present: the cache was not empty", r.Name)
		}
	}
	return nil
}

// tuningFromEnv applies BENCH_TUNE="key=value,..." (sizes in bytes,
// durations in Go syntax) for tuning experiments.
func tuningFromEnv(spec string) (func(*download.Tuning), error) {
	type setter func(*download.Tuning, string) error
	i64 := func(f func(*download.Tuning) *int64) setter {
		return func(t *download.Tuning, v string) error { _, err := fmt.Sscan(v, f(t)); return err }
	}
	in := func(f func(*download.Tuning) *int) setter {
		return func(t *download.Tuning, v string) error { _, err := fmt.Sscan(v, f(t)); return err }
	}
	dur := func(f func(*download.Tuning) *time.Duration) setter {
		return func(t *download.Tuning, v string) (err error) { *f(t), err = time.ParseDuration(v); return err }
	}
	keys := map[string]setter{
		"streams":         in(func(t *download.Tuning) *int { return &t.StreamsPerFile }),
		"files":           in(func(t *download.Tuning) *int { return &t.FilesInParallel }),
		"parts":           in(func(t *download.Tuning) *int { return &t.PartCount }),
		"buffer":          in(func(t *download.Tuning) *int { return &t.BufferSize }),
		"min_part":        i64(func(t *download.Tuning) *int64 { return &t.MinPart }),
		"max_part":        i64(func(t *download.Tuning) *int64 { return &t.MaxPart }),
		"min_split":       i64(func(t *download.Tuning) *int64 { return &t.MinSplit }),
		"journal_min":     i64(func(t *download.Tuning) *int64 { return &t.JournalMinSize }),
		"journal_every":   i64(func(t *download.Tuning) *int64 { return &t.JournalEvery }),
		"journal":         dur(func(t *download.Tuning) *time.Duration { return &t.JournalInterval }),
		"sha256":          func(t *download.Tuning, v string) error { t.SHA256 = v == "true"; return nil },
		"early_writeback": func(t *download.Tuning, v string) error { t.EarlyWriteback = v == "true"; return nil },
		"hash_lead":       i64(func(t *download.Tuning) *int64 { return &t.HashLead }),
		"direct":          func(t *download.Tuning, v string) error { t.DirectIO = v == "true"; return nil },
		"direct_min":      i64(func(t *download.Tuning) *int64 { return &t.DirectMin }),
		"hedge_after":     dur(func(t *download.Tuning) *time.Duration { return &t.HedgeAfter }),
	}
	var sets []func(*download.Tuning) error
	for _, kv := range strings.Split(spec, ",") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		f, ok := keys[k]
		if !ok {
			return nil, fmt.Errorf("BENCH_TUNE: unknown key %q", k)
		}
		sets = append(sets, func(t *download.Tuning) error { return f(t, v) })
	}
	var probe download.Tuning
	for _, s := range sets {
		if err := s(&probe); err != nil {
			return nil, fmt.Errorf("BENCH_TUNE: %w", err)
		}
	}
	return func(t *download.Tuning) {
		for _, s := range sets {
			_ = s(t)
		}
	}, nil
}

func run(sizeMiB, rounds int, dir, outDir string, tools []string, verbose, keep bool, mcBin, runtimeDoc string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if dir == "" {
		d, err := os.MkdirTemp("", "modelcache-bench-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	if outDir == "" {
		outDir = dir
	} else {
		if err := os.MkdirAll(outDir, 0o755); err != nil {
			return err
		}
		defer os.RemoveAll(outDir)
	}
	root := filepath.Join(dir, "registry")
	sources, err := existing(root, int64(sizeMiB)<<20)
	if err != nil || !keep {
		fmt.Fprintf(os.Stderr, "generating a %d MiB package in %s ...\n", sizeMiB, root)
		if sources, err = generate(root, int64(sizeMiB)<<20); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "loading the registry (hashes every file) ...")
	reg, err := registry.Load(ctx, root, registry.LoadOptions{})
	if err != nil {
		return err
	}
	srv, err := registry.New(reg, registry.Options{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	files, err := listFiles(base, sources)
	if err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	listPath := filepath.Join(dir, "files.json")
	lb, _ := json.Marshal(files)
	if err := os.WriteFile(listPath, lb, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "serving %d files, %.1f MB, from %s\n", len(files), float64(total)/1e6, base)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	if runtimeDoc, err = filepath.Abs(runtimeDoc); err != nil {
		return err
	}
	if mcBin == "" && strings.Contains(strings.Join(tools, ","), "modelcache") {
		mcBin = filepath.Join(dir, "modelcache")
		fmt.Fprintln(os.Stderr, "building ./cmd/modelcache ...")
		if err := sh("go", "build", "-o", mcBin, "./cmd/modelcache"); err != nil {
			return fmt.Errorf("build modelcache (run from the repository root or pass -modelcache): %w", err)
		}
	}
	runners := map[string]func(out string) error{
		"dd": func(out string) error {
			for _, f := range files {
				if err := sh("dd", "if="+f.src, "of="+filepath.Join(out, f.MD5), "bs=1M", "status=none"); err != nil {
					return err
				}
			}
			return sh("sync")
		},
		"modelcache": func(out string) error {
			cmd := wrapped(mcBin, "pull", "bench/large/1", "--runtime", runtimeDoc)
			cmd.Env = append(os.Environ(), "INFERENCE_HOME="+out, "ROBOFLOW_API_HOST="+base, "DISABLE_INTERACTIVE_PROGRESS_BARS=True")
			cmd.Stderr = os.Stderr
			return cmd.Run()
		},
		"engine": func(out string) error {
			args := []string{"-pull", listPath}
			if verbose {
				args = append(args, "-v")
			}
			cmd := wrapped(self, args...)
			cmd.Env = append(os.Environ(), "INFERENCE_HOME="+out)
			cmd.Stderr = os.Stderr
			return cmd.Run()
		},
		"curl": func(out string) error {
			args := []string{"-sS", "--fail"}
			for _, f := range files {
				args = append(args, "-o", filepath.Join(out, f.MD5), f.URL)
			}
			if err := sh("curl", args...); err != nil {
				return err
			}
			return sh("sync")
		},
		"aria2c": func(out string) error {
			var in strings.Builder
			for _, f := range files {
				fmt.Fprintf(&in, "%s\n  out=%s\n", f.URL, f.MD5)
			}
			inPath := out + ".aria2.in"
			if err := os.WriteFile(inPath, []byte(in.String()), 0o644); err != nil {
				return err
			}
			defer os.Remove(inPath)
			if err := sh("aria2c", "-x8", "-s8", "-d", out, "-i", inPath, "--console-log-level=warn",
				"--summary-interval=0", "--allow-overwrite=true", "--auto-file-renaming=false", "-q"); err != nil {
				return err
			}
			return sh("sync")
		},
	}
	var active []string
	for _, t := range tools {
		t = strings.TrimSpace(t)
		if _, ok := runners[t]; !ok {
			return fmt.Errorf("unknown tool %q", t)
		}
		if t != "modelcache" && t != "engine" {
			if _, err := exec.LookPath(t); err != nil {
				fmt.Fprintf(os.Stderr, "skipping %s: not installed (apt-get install %s)\n", t, map[string]string{"aria2c": "aria2"}[t]+map[bool]string{true: t}[t != "aria2c"])
				continue
			}
		}
		active = append(active, t)
	}
	results := map[string][]float64{}
	for r := range rounds {
		for k := range active {
			name := active[(k+r)%len(active)]
			out := filepath.Join(outDir, fmt.Sprintf("out-%s-%d", name, r))
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			_ = sh("sync")
			time.Sleep(2 * time.Second) // let writeback of the previous run settle
			warmMemory(total + 1<<30)
			c0 := readCPU()
			start := time.Now()
			if err := runners[name](out); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			el := time.Since(start)
			cpu := readCPU().sub(c0)
			if err := verify(out, files, name); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			mbs := float64(total) / 1e6 / el.Seconds()
			results[name] = append(results[name], mbs)
			fmt.Fprintf(os.Stderr, "round %d  %-10s %6.2f s  %7.0f MB/s   machine CPU: %s\n", r+1, name, el.Seconds(), mbs, cpu)
			if err := os.RemoveAll(out); err != nil {
				return err
			}
		}
	}
	md5Ceiling := md5Rate(sources[0].src)
	printTable(os.Stdout, results, active, total, len(files), md5Ceiling, rounds)
	return nil
}

// warmMemory writes and frees n bytes of tmpfs right before a run. On a
// VM, guest memory the hypervisor has not backed yet (never touched, or
// handed back by free-page reporting) costs a host-side fault per page on
// first touch, which caps any writer at a few hundred MB/s and makes
// results depend on the history of the guest's free memory. Touching it
// first gives every run the memory a bare-metal machine has.
func warmMemory(n int64) {
	f, err := os.CreateTemp("/dev/shm", "bench-warm-")
	if err != nil {
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4<<20)
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			return
		}
	}
}

// cpuTimes are the machine-wide CPU seconds of /proc/stat (all processes,
// kernel threads included): where the two shared cores went during a run.
type cpuTimes struct{ user, sys, idle, iowait, other float64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	v := make([]float64, 11)
	for i := 1; i < len(f) && i < len(v); i++ {
		fmt.Sscan(f[i], &v[i])
		v[i] /= 100 // USER_HZ
	}
	// user nice system idle iowait irq softirq steal
	return cpuTimes{user: v[1] + v[2], sys: v[3] + v[6] + v[7], idle: v[4], iowait: v[5], other: v[8]}
}

func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	return cpuTimes{c.user - o.user, c.sys - o.sys, c.idle - o.idle, c.iowait - o.iowait, c.other - o.other}
}

func (c cpuTimes) String() string {
	return fmt.Sprintf("user %.1f s, sys %.1f s, idle %.1f s, iowait %.1f s", c.user, c.sys, c.idle, c.iowait)
}

// wrapped is name args, under $BENCH_WRAP when set (e.g. BENCH_WRAP="perf
// record -g -o pull.data --" profiles the pull alone).
func wrapped(name string, args ...string) *exec.Cmd {
	if wrap := strings.Fields(os.Getenv("BENCH_WRAP")); len(wrap) > 0 {
		return exec.Command(wrap[0], append(append(wrap[1:], name), args...)...)
	}
	return exec.Command(name, args...)
}

func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// generate writes the registry: one package with the large file and small
// ones, random bytes.
func generate(root string, large int64) ([]file, error) {
	pkg := filepath.Join(root, "models", "bench", "packages", "benchpkg")
	files := filepath.Join(pkg, "files")
	if err := os.MkdirAll(files, 0o755); err != nil {
		return nil, err
	}
	write := func(p string, s string) error { return os.WriteFile(p, []byte(s), 0o644) }
	if err := write(filepath.Join(root, "registry.json"), `{"format": "modelcache-registry", "format_version": 1}`); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(root, "models", "bench", "model.json"),
		`{"model_id": "bench/large/1", "model_architecture": "rfdetr", "task_type": "object-detection"}`); err != nil {
		return nil, err
	}
	if err := write(filepath.Join(pkg, "package.json"),
		`{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "dynamicBatchSize": true, "opset": 17}, "trusted_source": true}`); err != nil {
		return nil, err
	}
	specs := []struct {
		name string
		size int64
	}{
		{"weights.onnx", large}, {"tokenizer.json", 8 << 20}, {"vocab.txt", 1 << 20},
		{"class_names.txt", 4 << 10}, {"inference_config.json", 2 << 10},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var out []file
	for _, s := range specs {
		p := filepath.Join(files, s.name)
		if err := randomFile(p, s.size, rng); err != nil {
			return nil, err
		}
		out = append(out, file{Handle: s.name, Size: s.size, src: p})
	}
	return out, sh("sync")
}

// existing returns the files of a kept registry if its large file has the
// requested size.
func existing(root string, large int64) ([]file, error) {
	files := filepath.Join(root, "models", "bench", "packages", "benchpkg", "files")
	var out []file
	for _, name := range []string{"weights.onnx", "tokenizer.json", "vocab.txt", "class_names.txt", "inference_config.json"} {
		fi, err := os.Stat(filepath.Join(files, name))
		if err != nil {
			return nil, err
		}
		out = append(out, file{Handle: name, Size: fi.Size(), src: filepath.Join(files, name)})
	}
	if out[0].Size != large {
		return nil, errors.New("size differs")
	}
	return out, nil
}

func randomFile(path string, size int64, rng *rand.Rand) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 4<<20)
	for left := size; left > 0; {
		n := min(int64(len(buf)), left)
		for i := int64(0); i+8 <= n; i += 8 {
			v := rng.Uint64()
			buf[i], buf[i+1], buf[i+2], buf[i+3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
			buf[i+4], buf[i+5], buf[i+6], buf[i+7] = byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56)
		}
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}

// listFiles reads download URLs and MD5s from the weights API.
func listFiles(base string, sources []file) ([]file, error) {
	resp, err := http.Get(base + "/models/v1/external/weights?modelId=bench/large/1")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var wrapper struct {
		Meta struct {
			ModelPackages []struct {
				PackageFiles []file `json:"packageFiles"`
			} `json:"modelPackages"`
		} `json:"modelMetadata"`
	}
	if err := json.Unmarshal(raw, &wrapper); err != nil {
		return nil, err
	}
	body := wrapper.Meta
	if len(body.ModelPackages) != 1 {
		return nil, fmt.Errorf("want 1 package, got %d: %s", len(body.ModelPackages), raw)
	}
	var out []file
	for _, s := range sources {
		found := false
		for _, f := range body.ModelPackages[0].PackageFiles {
			if f.Handle == s.Handle {
				f.Size, f.src = s.Size, s.src
				out = append(out, f)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("%s not served", s.Handle)
		}
	}
	return out, nil
}

// verify checks every tool's output: sizes for all, MD5 of the small files
// (the large one is checked by size only, to keep rounds short; the engine
// verifies MD5 itself), and the blob layout for modelcache.
func verify(out string, files []file, tool string) error {
	if tool == "modelcache" {
		// The pull also materialized the package: its manifest must exist.
		ms, _ := filepath.Glob(filepath.Join(out, "models-cache", "*", "*", "model_config.json"))
		if len(ms) == 0 {
			return errors.New("no materialized package under models-cache")
		}
	}
	for _, f := range files {
		p := filepath.Join(out, f.MD5)
		if tool == "modelcache" || tool == "engine" {
			p = filepath.Join(out, blobfs.DirName, f.MD5)
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Size() != f.Size {
			return fmt.Errorf("%s: %d bytes, want %d", f.Handle, fi.Size(), f.Size)
		}
		if f.Size < 64<<20 {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := md5.Sum(b)
			if hex.EncodeToString(s[:]) != f.MD5 {
				return fmt.Errorf("%s: wrong MD5", f.Handle)
			}
		}
	}
	return nil
}

// md5Rate measures crypto/md5 over the large file from the page cache: the
// single-core ceiling of any downloader that verifies MD5.
func md5Rate(path string) float64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	h := md5.New()
	start := time.Now()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil && !errors.Is(err, io.EOF) {
		return 0
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
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

func printTable(w io.Writer, res map[string][]float64, order []string, total int64, nfiles int, md5c float64, rounds int) {
	fmt.Fprintf(w, "\npackage: %d files, %.1f MB; loopback; median of %d rounds; MB = 10^6 bytes; every time includes getting the bytes to disk (fsync/sync)\n\n",
		nfiles, float64(total)/1e6, rounds)
	fmt.Fprintf(w, "| %-32s | %9s | %-26s | %8s | %9s |\n", "tool", "MB/s", "runs (MB/s)", "vs dd", "vs aria2c")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 34), strings.Repeat("-", 11), strings.Repeat("-", 28), strings.Repeat("-", 10), strings.Repeat("-", 11))
	label := map[string]string{
		"dd":         "disk-write limit (dd + sync)",
		"modelcache": "modelcache pull (MD5-verified)",
		"engine":     "  engine alone (Engine.Batch)",
		"curl":       "curl, sequential (+ sync)",
		"aria2c":     "aria2c -x8 -s8 (+ sync)",
	}
	dd, ar := median(res["dd"]), median(res["aria2c"])
	for _, name := range order {
		m := median(res[name])
		var runs []string
		for _, v := range res[name] {
			runs = append(runs, fmt.Sprintf("%.0f", v))
		}
		ratio := func(b float64) string {
			if b == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", m/b)
		}
		fmt.Fprintf(w, "| %-32s | %9.0f | %-26s | %8s | %9s |\n", label[name], m, strings.Join(runs, ", "), ratio(dd), ratio(ar))
	}
	fmt.Fprintf(w, "| %-32s | %9.0f | %-26s | %8s | %9s |\n", "(MD5 of the large file, 1 core)", md5c, "from page cache", "-", "-")
	// Rounds run the tools back to back, so per-round ratios cancel drift
	// of the shared machine between rounds.
	for _, base := range []string{"dd", "aria2c"} {
		mc, b := res["modelcache"], res[base]
		if len(mc) == 0 || len(mc) != len(b) {
			continue
		}
		var rs []float64
		var txt []string
		for i := range mc {
			rs = append(rs, mc[i]/b[i])
			txt = append(txt, fmt.Sprintf("%.2f", mc[i]/b[i]))
		}
		fmt.Fprintf(w, "\nmodelcache pull / %s per round: %s; median %.2fx\n", base, strings.Join(txt, ", "), median(rs))
	}
}
