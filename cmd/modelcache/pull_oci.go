package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// pullOCI is `pull oci://HOST/REPO:TAG`: the artifact's layers are fetched
// in parallel (blobs the cache has are skipped), verified (sha256 and
// provider MD5), the packages materialized and recorded in the offline
// registry, so later `pull MODEL_ID` finds them online or offline.
func pullOCI(cmd *cobra.Command, cfg *config.Config, rf *registryFlags, ref string, asJSON bool) error {
	ctx := cmd.Context()
	remote, err := rf.open(cfg, ref)
	if err != nil {
		return err
	}
	c, err := cache.Open(*cfg, cache.WithLogger(loggerFrom(ctx)))
	if err != nil {
		return err
	}
	res, root, err := remote.Pull(ctx, c, ocibundle.Options{Source: offlinereg.SourceOCIPull, Concurrency: rf.concurrency})
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"reference": ref, "digest": root.Digest, "result": res})
	}
	if err := writeImportResult(cmd.OutOrStdout(), res, false); err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "pulled %s@%s\n", ref, root.Digest)
	return nil
}
