package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// cacheProvider is the weights provider that answers from the cache alone
// when export or push choose packages (registered on their client only).
const cacheProvider = "modelcache-cache"

// selectPackages chooses, without network, the packages to send for each
// model id: what `pull MODEL_ID` with the same flags would load from this
// cache — its auto-resolution entry (or, in OFFLINE_MODE, the offline
// registry), else negotiation over the packages the cache holds, else the
// package an earlier pull of the id loaded — or with all, every exportable
// complete package of the model.
//
// With fetchMetadata the provider is asked for each model's metadata (the
// only step that uses the network), so that the far side negotiates with
// the provider's full package details.
func selectPackages(ctx context.Context, cfg config.Config, fs *pflag.FlagSet, lf *loadFlags, ids []string, all, fetchMetadata bool, log *slog.Logger) ([]ocibundle.Ref, *cache.Cache, error) {
	lopts, err := lf.options(fs, &cfg)
	if err != nil {
		return nil, nil, withCode(exitUsage, err)
	}
	copts, _, err := lf.clientOptions()
	if err != nil {
		return nil, nil, withCode(exitUsage, err)
	}
	run := cfg
	run.OfflineWarmUp, run.APIMaxTries = false, 1
	cc, err := cache.Open(run, cache.WithLogger(log))
	if err != nil {
		return nil, nil, err
	}
	fromCache := provider.Func(func(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
		return ocibundle.CacheMetadata(ctx, cc, req.ModelID, log)
	})
	// Every dial is refused: choosing what to send never touches the network.
	noNet := download.NewClient(download.TransportOptions{Offline: true})
	client, err := modelcache.New(run, append(copts, modelcache.WithLogger(log), modelcache.WithHTTPClient(noNet),
		modelcache.WithProvider(cacheProvider, fromCache))...)
	if err != nil {
		return nil, nil, err
	}
	var online *modelcache.Client
	if fetchMetadata {
		if cfg.Offline {
			return nil, nil, withCode(exitUsage, fmt.Errorf("%w: --fetch-metadata needs the network, which OFFLINE_MODE forbids", errdefs.ErrOffline))
		}
		if online, err = modelcache.New(cfg, append(copts, modelcache.WithLogger(log))...); err != nil {
			return nil, nil, err
		}
	}
	var refs []ocibundle.Ref
	for _, id := range ids {
		first := len(refs)
		if err := selectModel(ctx, client, cc, cfg, id, lopts, all, log, &refs); err != nil {
			return nil, nil, err
		}
		if online != nil && len(refs) > first {
			res, err := online.Resolve(ctx, id, lopts...)
			if res == nil || res.Metadata == nil {
				return nil, nil, fmt.Errorf("%s: --fetch-metadata: the weights provider did not answer: %w", id, err)
			}
			for i := first; i < len(refs); i++ {
				refs[i].Metadata = res.Metadata
			}
		}
	}
	return refs, cc, nil
}

func selectModel(ctx context.Context, client *modelcache.Client, cc *cache.Cache, cfg config.Config, id string, lopts []modelcache.LoadOption,
	all bool, log *slog.Logger, refs *[]ocibundle.Ref) error {
	pkg, err := client.Load(ctx, id, lopts...)
	if err != nil {
		log.Debug("pull would need the network; negotiating over the cached packages", "model_id", id, "err", err)
		pkg, err = client.Load(ctx, id, append(lopts, modelcache.WithWeightsProvider(cacheProvider), modelcache.WithoutAutoResolutionCache())...)
	}
	if err != nil {
		if ref, ok := lastLoaded(ctx, cfg, id, log); ok {
			*refs = append(*refs, ref)
			if !all {
				return nil
			}
		}
	}
	canonical := id
	switch {
	case err == nil:
		canonical = pkg.CanonicalModelID
		if !all {
			*refs = append(*refs, ocibundle.Ref{CacheModelID: pkg.CacheModelID, PackageID: pkg.PackageID, Aliases: []string{id}})
			return nil
		}
	case !all:
		return fmt.Errorf("%s: nothing this cache holds would load with these flags: %w (pull it first, or use --all-packages / --package-id)", id, err)
	}
	infos, serr := ocibundle.CachePackages(ctx, cc, canonical, log)
	if serr != nil {
		return serr
	}
	if len(infos) == 0 {
		return fmt.Errorf("%s: %w: no complete package in %s", id, ocibundle.ErrNotInCache, cfg.Home)
	}
	for _, p := range infos {
		*refs = append(*refs, ocibundle.Ref{CacheModelID: *p.Manifest.ModelID, PackageID: p.PackageID, Aliases: []string{id}})
	}
	return nil
}

// lastLoaded is the last resort of selectModel: the newest auto-resolution
// entry of id (any flags, any key, expired or not) whose package is
// complete and exportable, i.e. what a pull loaded here before. The cache is
// read as in OFFLINE_MODE: no locks, nothing deleted.
func lastLoaded(ctx context.Context, cfg config.Config, id string, log *slog.Logger) (ocibundle.Ref, bool) {
	ro := cfg
	ro.Offline = true
	c, err := cache.Open(ro, cache.WithLogger(log))
	if err != nil {
		return ocibundle.Ref{}, false
	}
	cands, err := c.Resolutions.Candidates(ctx, id, nil)
	if err != nil {
		return ocibundle.Ref{}, false
	}
	for _, cand := range cands {
		e := cand.Entry
		if e.CacheModelID == nil {
			continue
		}
		dir, err := c.Home.PackageDir(*e.CacheModelID, e.ModelPackageID)
		if err != nil {
			continue
		}
		if m, err := manifest.Read(ctx, dir); err == nil && ocibundle.CheckExportable(m) == nil {
			log.Info("chose the package an earlier pull loaded (its auto-resolution entry)", "model_id", id,
				"package_id", e.ModelPackageID, "created_at", e.CreatedAt.Time)
			return ocibundle.Ref{CacheModelID: *e.CacheModelID, PackageID: e.ModelPackageID, Aliases: []string{id}}, true
		}
	}
	return ocibundle.Ref{}, false
}

type exportSummary struct {
	Output   string          `json:"output"`
	Format   string          `json:"format"`
	Packages []exportPackage `json:"packages"`
	Bytes    int64           `json:"bytes"`
}

type exportPackage struct {
	ModelID        string `json:"model_id"`
	PackageID      string `json:"package_id"`
	Files          int    `json:"files"`
	Bytes          int64  `json:"bytes"`
	MetadataSource string `json:"metadata_source"`
}

// collectGraph reads the chosen packages and builds their OCI content.
func collectGraph(ctx context.Context, cc *cache.Cache, refs []ocibundle.Ref, log *slog.Logger) (*ocibundle.Graph, []exportPackage, int64, error) {
	pkgs, err := ocibundle.Collect(ctx, cc, refs)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, p := range pkgs {
		backend, _ := p.Doc.Manifest.Get("backend_type")
		if b, _ := backend.(string); p.Doc.MetadataSource == ocibundle.MetadataFromManifest && (b == "onnx" || b == "trt" || b == "torch-script") {
			log.Warn("no provider metadata for this package in the cache: it travels with metadata rebuilt from its manifest, "+
				"which lacks the "+b+" details OFFLINE_MODE negotiation needs on the far side; pull it with OFFLINE_MODE_WARM_UP=true first, or export with --fetch-metadata",
				"model_id", p.Doc.CanonicalModelID, "package_id", p.Doc.PackageID)
		}
	}
	g, err := ocibundle.BuildGraph(pkgs)
	if err != nil {
		return nil, nil, 0, err
	}
	var out []exportPackage
	seen := map[string]bool{}
	var total int64
	for _, p := range pkgs {
		ep := exportPackage{ModelID: p.Doc.CanonicalModelID, PackageID: p.Doc.PackageID, Files: len(p.Layers), MetadataSource: p.Doc.MetadataSource}
		for _, l := range p.Layers {
			ep.Bytes += l.Size
			if !seen[l.MD5] {
				seen[l.MD5] = true
				total += l.Size
			}
		}
		out = append(out, ep)
	}
	return g, out, total, nil
}

func newExportCmd(cfg *config.Config) *cobra.Command {
	var lf loadFlags
	var out string
	var all, asJSON, fetchMetadata bool
	cmd := &cobra.Command{
		Use:   "export MODEL_ID... -o FILE.tar|DIR",
		Short: "Write models from the cache as an OCI image layout, to carry across an air gap",
		Long: "Write the packages `pull MODEL_ID` (same flags) would load from this cache, or with\n" +
			"--all-packages every complete package of the model, as an OCI image layout: a tar file\n" +
			"when -o ends in .tar, else a directory. One ModelPack artifact per package, one layer\n" +
			"per file, plus the metadata `import` needs for OFFLINE_MODE loads on the far side.\n" +
			"Needs no network; the same cache gives the same bytes. See docs/airgap.md.",
		Example: "  modelcache export parcel-det -o parcel.tar\n" +
			"  modelcache export acme-ws/parcel-detector/7 coco/3 --all-packages -o bundle/\n" +
			"  modelcache export parcel-det --runtime jetson-orin.json -o orin.tar   # what a Jetson would load",
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return withCode(exitUsage, errors.New("-o FILE.tar|DIR is required"))
			}
			ctx := cmd.Context()
			log := loggerFrom(ctx)
			refs, cc, err := selectPackages(ctx, *cfg, cmd.Flags(), &lf, args, all, fetchMetadata, log)
			if err != nil {
				return err
			}
			g, pkgs, total, err := collectGraph(ctx, cc, refs, log)
			if err != nil {
				return err
			}
			sum := exportSummary{Output: out, Packages: pkgs, Bytes: total, Format: "dir"}
			if strings.HasSuffix(out, ".tar") {
				sum.Format = "tar"
				err = g.WriteTarFile(ctx, out)
			} else {
				err = g.WriteDir(ctx, out)
			}
			if err != nil {
				return err
			}
			return writeExportSummary(cmd.OutOrStdout(), sum, asJSON)
		},
	}
	lf.register(cmd.Flags())
	cmd.Flags().StringVarP(&out, "output", "o", "", "bundle to write: a .tar file, else a directory")
	cmd.Flags().BoolVar(&all, "all-packages", false, "every complete package of each model, not only the one pull would load")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&fetchMetadata, "fetch-metadata", false, "ask the weights provider for the models' metadata (needs network; otherwise the offline-weights record or the manifest is used)")
	return usageErrors(cmd, cobra.MinimumNArgs(1))
}

func writeExportSummary(w io.Writer, s exportSummary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	for _, p := range s.Packages {
		fmt.Fprintf(w, "%s  %s  %d files  %d bytes  (metadata: %s)\n", p.ModelID, p.PackageID, p.Files, p.Bytes, p.MetadataSource)
	}
	fmt.Fprintf(w, "wrote %s (%s, %d packages, %d bytes of files)\n", s.Output, s.Format, len(s.Packages), s.Bytes)
	return nil
}
