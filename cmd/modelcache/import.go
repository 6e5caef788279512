package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

func newImportCmd(cfg *config.Config) *cobra.Command {
	var asJSON, progress bool
	var concurrency int
	cmd := &cobra.Command{
		Use:   "import FILE.tar|DIR",
		Short: "Bring models from an exported bundle into the cache, verified, for OFFLINE_MODE use",
		Long: "Read a bundle written by `modelcache export` (an OCI image layout, tar or directory):\n" +
			"every entry is checked, every file's sha256 and provider MD5 verified before anything\n" +
			"is published; then the packages are materialized and the offline-weights registry\n" +
			"records written, so `OFFLINE_MODE=true modelcache pull MODEL_ID` (and inference-models\n" +
			"in offline mode) load them. Needs no network; running it again is harmless.",
		Example: "  modelcache import parcel.tar\n" +
			"  modelcache import /media/usb/bundle/ --json\n" +
			"  OFFLINE_MODE=true modelcache pull parcel-det   # afterwards",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if cfg.Offline {
				return withCode(exitUsage, fmt.Errorf("%w: import writes the cache, which OFFLINE_MODE forbids; run it without OFFLINE_MODE (it needs no network)", errdefs.ErrOffline))
			}
			b, err := ocibundle.OpenBundle(args[0], ocibundle.Limits{})
			if err != nil {
				return err
			}
			defer b.Close()
			c, err := cache.Open(*cfg, cache.WithLogger(loggerFrom(ctx)))
			if err != nil {
				return err
			}
			opts := ocibundle.Options{Source: offlinereg.SourceImport, Concurrency: concurrency}
			if progress {
				opts.Progress = jsonProgress(cmd.ErrOrStderr())
			}
			res, err := ocibundle.Import(ctx, c, b, b.Roots, opts)
			if err != nil {
				return err
			}
			return writeImportResult(cmd.OutOrStdout(), res, asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&progress, "progress-json", false, "report progress as JSON lines on stderr (verified, published, materialized, recorded)")
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "files verified in parallel")
	return usageErrors(cmd, cobra.ExactArgs(1))
}

// jsonProgress writes one JSON object per event, flushed line by line.
func jsonProgress(w io.Writer) func(ocibundle.Event) {
	enc := json.NewEncoder(w)
	return func(e ocibundle.Event) {
		enc.Encode(e)
		if f, ok := w.(*os.File); ok {
			f.Sync()
		}
	}
}

func writeImportResult(w io.Writer, res *ocibundle.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	for _, p := range res.Packages {
		fmt.Fprintf(w, "%s  %s  %s\n", p.CanonicalModelID, p.PackageID, p.Dir)
	}
	fmt.Fprintf(w, "%d packages; %d files verified (%d bytes), %d published, %d already present\n",
		len(res.Packages), res.BlobsVerified, res.BytesVerified, res.BlobsPublished, res.BlobsSkipped)
	return nil
}
