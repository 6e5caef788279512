package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/internal/textsafe"
	"github.com/modelcache/modelcache/registry"
)

// loadFlags are pull's load arguments: the negotiation flags resolve has
// too, plus what only a load needs.
type loadFlags struct {
	negotiationFlags
	unhashed     bool
	noResolution bool
}

func (f *loadFlags) register(fs *pflag.FlagSet) {
	f.negotiationFlags.register(fs)
	fs.BoolVar(&f.unhashed, "allow-unhashed", false, "download files the provider gives no MD5 for (download_files_without_hash)")
	fs.BoolVar(&f.noResolution, "no-resolution-cache", false, "neither read nor write the auto-resolution cache")
}

// options turns the flags into load options.
func (f *loadFlags) options(fs *pflag.FlagSet, cfg *config.Config) ([]modelcache.LoadOption, error) {
	req, deviceSet, err := f.request(fs, cfg)
	if err != nil {
		return nil, err
	}
	o := []modelcache.LoadOption{modelcache.WithNegotiationRequest(req, deviceSet)}
	if f.unhashed {
		o = append(o, modelcache.AllowFilesWithoutHash())
	}
	if f.noResolution {
		o = append(o, modelcache.WithoutAutoResolutionCache())
	}
	return o, nil
}

func newPullCmd(cfg *config.Config) *cobra.Command {
	var lf loadFlags
	var gf guardFlags
	var asJSON bool
	var serveDir string
	var rf registryFlags
	cmd := &cobra.Command{
		Use:     "pull MODEL_ID|oci://HOST/REPO:TAG",
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
			"  modelcache pull oci://localhost:5000/models/parcel-det:7 --plain-http   # from an OCI registry\n" +
			"  modelcache pull coco/3 --guard --api-key-file tenant.key --offline-grace 1h",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ocibundle.IsReference(args[0]) {
				return pullOCI(cmd, cfg, &rf, args[0], asJSON)
			}
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
			lopts, err := lf.options(cmd.Flags(), &run)
			if err != nil {
				return err
			}
			copts, _, err := lf.clientOptions()
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
	lf.register(cmd.Flags())
	rf.register(cmd)
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
	Warnings         []string                `json:"warnings"`
}

func toJSON(p *modelcache.Package) *packageJSON {
	out := &packageJSON{ModelID: p.ModelID, CanonicalModelID: p.CanonicalModelID, PackageID: p.PackageID,
		Backend: p.Backend, Quantization: p.Quantization, BatchSize: p.BatchSize, Architecture: p.Architecture,
		TaskType: p.TaskType, Dir: p.Dir, Files: p.Files, FromCache: p.FromCache, Dependencies: map[string]*packageJSON{},
		Warnings: append([]string{}, p.Warnings...)}
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
	q := textsafe.String // a provider's strings stay on their line
	model := q(p.ModelID)
	if p.CanonicalModelID != "" && p.CanonicalModelID != p.ModelID {
		model += " → " + q(p.CanonicalModelID)
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
	fmt.Fprintf(w, "package   %s (%s, %s, %s)\n", q(p.PackageID), q(p.Backend), q(p.Quantization), q(batch))
	if p.Report != nil && len(p.Report.Selected) > 1 {
		fmt.Fprintf(w, "ranked    %s\n", q(strings.Join(p.Report.Selected, " > ")))
	}
	fmt.Fprintf(w, "source    %s\n", how)
	fmt.Fprintf(w, "dir       %s\n", q(p.Dir))
	handles := make([]string, 0, len(p.Files))
	for h := range p.Files {
		handles = append(handles, q(h))
	}
	sort.Strings(handles)
	fmt.Fprintf(w, "files     %s\n", strings.Join(handles, ", "))
	for n, d := range p.Dependencies {
		fmt.Fprintf(w, "depends   %s: %s/%s (%s)\n", q(n), q(d.ModelID), q(d.PackageID), q(d.Dir))
	}
	for _, warning := range p.Warnings {
		fmt.Fprintf(w, "warning   %s\n", q(warning))
	}
	return nil
}
