package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/registry"
)

// loadFlags are the from_pretrained parameters shared by pull (and resolve).
type loadFlags struct {
	backends      []string
	batch         string
	quantization  []string
	device        string
	onnxProviders string
	packageID     string
	untrusted     bool
	unhashed      bool
	noResolution  bool
	runtimeFile   string
}

func (f *loadFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringArrayVar(&f.backends, "backend", nil, "allowed backend (onnx, trt, torch, torch-script, hugging-face, …); repeatable")
	fl.StringVar(&f.batch, "batch-size", "", "batch size N, or a range MIN-MAX")
	fl.StringArrayVar(&f.quantization, "quantization", nil, "allowed quantization (fp32, fp16, bf16, int8); repeatable")
	fl.StringVar(&f.device, "device", "", "device: cpu, cuda, cuda:0, mps (default: DEFAULT_DEVICE, else cuda when a GPU is seen, else cpu)")
	fl.StringVar(&f.onnxProviders, "onnx-providers", "", "ONNX Runtime execution providers in order, comma-separated")
	fl.StringVar(&f.packageID, "package-id", "", "load exactly this package (no negotiation)")
	fl.BoolVar(&f.untrusted, "allow-untrusted", false, "accept packages not from a trusted source")
	fl.BoolVar(&f.unhashed, "allow-unhashed", false, "download files the provider gives no MD5 for (download_files_without_hash)")
	fl.BoolVar(&f.noResolution, "no-resolution-cache", false, "neither read nor write the auto-resolution cache")
	fl.StringVar(&f.runtimeFile, "runtime", "", "negotiate for the runtime described in this JSON file instead of this machine")
}

func (f *loadFlags) options() ([]modelcache.LoadOption, error) {
	var o []modelcache.LoadOption
	if len(f.backends) > 0 {
		o = append(o, modelcache.WithBackends(f.backends...))
	}
	if f.batch != "" {
		lo, hi, isRange, err := parseBatch(f.batch)
		if err != nil {
			return nil, err
		}
		if isRange {
			o = append(o, modelcache.WithBatchSizeRange(lo, hi))
		} else {
			o = append(o, modelcache.WithBatchSize(lo))
		}
	}
	if len(f.quantization) > 0 {
		o = append(o, modelcache.WithQuantization(f.quantization...))
	}
	if f.device != "" {
		o = append(o, modelcache.WithDevice(f.device))
	}
	if f.onnxProviders != "" {
		var names []string
		for _, n := range strings.Split(f.onnxProviders, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		o = append(o, modelcache.WithONNXExecutionProviders(names...))
	}
	if f.packageID != "" {
		o = append(o, modelcache.WithPackageID(f.packageID))
	}
	if f.untrusted {
		o = append(o, modelcache.AllowUntrustedPackages())
	}
	if f.unhashed {
		o = append(o, modelcache.AllowFilesWithoutHash())
	}
	if f.noResolution {
		o = append(o, modelcache.WithoutAutoResolutionCache())
	}
	return o, nil
}

// clientOptions returns --runtime as a client option.
func (f *loadFlags) clientOptions() ([]modelcache.Option, error) {
	if f.runtimeFile == "" {
		return nil, nil
	}
	rt, err := readRuntimeFile(f.runtimeFile)
	if err != nil {
		return nil, err
	}
	return []modelcache.Option{modelcache.WithRuntime(rt)}, nil
}

func parseBatch(s string) (lo, hi int, isRange bool, err error) {
	bad := fmt.Errorf("--batch-size %q: want N or MIN-MAX with positive integers", s)
	if a, b, ok := strings.Cut(s, "-"); ok {
		lo, err1 := strconv.Atoi(a)
		hi, err2 := strconv.Atoi(b)
		if err1 != nil || err2 != nil || lo < 1 || hi < lo {
			return 0, 0, false, bad
		}
		return lo, hi, true, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, 0, false, bad
	}
	return n, n, false, nil
}

func newPullCmd(cfg *config.Config) *cobra.Command {
	var lf loadFlags
	var gf guardFlags
	var asJSON bool
	var serveDir string
	cmd := &cobra.Command{
		Use:     "pull MODEL_ID",
		Aliases: []string{"load"},
		Short:   "Resolve, download and verify a model package into the cache",
		Long: "Load MODEL_ID the way inference-models' AutoModel.from_pretrained does, up to\n" +
			"running the model: auto-resolution cache hit (no network), else provider metadata,\n" +
			"negotiation for this machine (or --runtime), download, verification and the\n" +
			"package directory with its manifest. Prints what was chosen and where it is.",
		Example: "  modelcache pull acme-ws/parcel-detector/7\n" +
			"  modelcache pull parcel-det --serve-registry examples/registry   # no network needed\n" +
			"  modelcache pull coco/3 --backend onnx --quantization fp16 --batch-size 1-8 --json\n" +
			"  modelcache pull coco/3 --runtime jetson-orin.json   # pre-warm for another machine\n" +
			"  modelcache pull coco/3 --guard --api-key-file tenant.key --offline-grace 1h",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := loggerFrom(ctx)
			run := *cfg
			if serveDir != "" {
				url, stop, err := serveRegistry(ctx, serveDir, log)
				if err != nil {
					return err
				}
				defer stop()
				run.APIHost = url
			}
			lopts, err := lf.options()
			if err != nil {
				return err
			}
			copts, err := lf.clientOptions()
			if err != nil {
				return err
			}
			gcopts, glopts, err := gf.options(cmd, log)
			if err != nil {
				return err
			}
			copts, lopts = append(copts, gcopts...), append(lopts, glopts...)
			// Bars on a terminal (unless DISABLE_INTERACTIVE_PROGRESS_BARS), else log lines.
			obs := download.DefaultObserver(os.Stderr, run.DisableProgressBars, log)
			client, err := modelcache.New(run, append(copts, modelcache.WithLogger(log), modelcache.WithDownloadObserver(obs))...)
			if err != nil {
				return err
			}
			if err := gf.check(ctx, client, args[0], lopts); err != nil {
				return err
			}
			pkg, err := client.Load(ctx, args[0], lopts...)
			if err != nil {
				return err
			}
			if asJSON {
				return writePackageJSON(cmd.OutOrStdout(), pkg)
			}
			return writePackageText(cmd.OutOrStdout(), pkg)
		},
	}
	lf.register(cmd)
	gf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().StringVar(&serveDir, "serve-registry", "", "serve this registry directory on loopback for the duration of the command and load from it")
	return usageErrors(cmd, cobra.ExactArgs(1))
}

// serveRegistry starts our registry server on a free loopback port.
func serveRegistry(ctx context.Context, dir string, log interface {
	Info(string, ...any)
}) (string, func(), error) {
	reg, err := registry.Load(ctx, dir, registry.LoadOptions{})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	url := "http://" + ln.Addr().String()
	srv, err := registry.New(reg, registry.Options{PublicURL: url})
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.Serve(sctx, ln); close(done) }()
	log.Info("serving registry on loopback", "dir", dir, "url", url)
	return url, func() { cancel(); <-done }, nil
}

type packageJSON struct {
	ModelID          string                  `json:"model_id"`
	CanonicalModelID string                  `json:"canonical_model_id"`
	PackageID        string                  `json:"package_id"`
	Backend          string                  `json:"backend"`
	Quantization     string                  `json:"quantization"`
	BatchSize        string                  `json:"batch_size"`
	Architecture     string                  `json:"model_architecture"`
	TaskType         string                  `json:"task_type"`
	Dir              string                  `json:"dir"`
	Files            map[string]string       `json:"files"`
	FromCache        bool                    `json:"from_cache"`
	Candidates       []string                `json:"ranked_packages"`
	Dependencies     map[string]*packageJSON `json:"dependencies"`
}

func toJSON(p *modelcache.Package) *packageJSON {
	out := &packageJSON{ModelID: p.ModelID, CanonicalModelID: p.CanonicalModelID, PackageID: p.PackageID,
		Backend: p.Backend, Quantization: p.Quantization, BatchSize: p.BatchSize, Architecture: p.Architecture,
		TaskType: p.TaskType, Dir: p.Dir, Files: p.Files, FromCache: p.FromCache, Dependencies: map[string]*packageJSON{}}
	if p.Report != nil {
		out.Candidates = p.Report.Selected
	}
	for n, d := range p.Dependencies {
		out.Dependencies[n] = toJSON(d)
	}
	return out
}

func writePackageJSON(w io.Writer, p *modelcache.Package) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(toJSON(p))
}

func writePackageText(w io.Writer, p *modelcache.Package) error {
	model := p.ModelID
	if p.CanonicalModelID != "" && p.CanonicalModelID != p.ModelID {
		model += " → " + p.CanonicalModelID
	}
	how := "downloaded and verified"
	if p.FromCache {
		how = "auto-resolution cache hit (no network)"
	}
	batch := p.BatchSize
	if batch == "" {
		batch = "batch size not declared"
	}
	fmt.Fprintf(w, "model     %s\n", model)
	fmt.Fprintf(w, "package   %s (%s, %s, %s)\n", p.PackageID, p.Backend, p.Quantization, batch)
	if p.Report != nil && len(p.Report.Selected) > 1 {
		fmt.Fprintf(w, "ranked    %s\n", strings.Join(p.Report.Selected, " > "))
	}
	fmt.Fprintf(w, "source    %s\n", how)
	fmt.Fprintf(w, "dir       %s\n", p.Dir)
	handles := make([]string, 0, len(p.Files))
	for h := range p.Files {
		handles = append(handles, h)
	}
	sort.Strings(handles)
	fmt.Fprintf(w, "files     %s\n", strings.Join(handles, ", "))
	for n, d := range p.Dependencies {
		fmt.Fprintf(w, "depends   %s: %s/%s (%s)\n", n, d.ModelID, d.PackageID, d.Dir)
	}
	return nil
}
