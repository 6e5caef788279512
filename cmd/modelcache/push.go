package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/ocibundle"
)

// registryFlags are the OCI registry connection flags of push and pull oci://.
type registryFlags struct {
	plainHTTP      bool
	registryConfig string
	concurrency    int
}

func (f *registryFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&f.plainHTTP, "plain-http", false, "talk plain HTTP to the OCI registry (local registries)")
	fl.StringVar(&f.registryConfig, "registry-config", "", "docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json)")
	fl.IntVar(&f.concurrency, "concurrency", 4, "parallel layer transfers")
}

// open connects to the registry ref names, through the process's transport
// (which refuses every dial in OFFLINE_MODE).
func (f *registryFlags) open(cfg *config.Config, ref string) (*ocibundle.Remote, error) {
	if cfg.Offline {
		return nil, withCode(exitUsage, fmt.Errorf("%w: %s needs the network, which OFFLINE_MODE forbids", errdefs.ErrOffline, ref))
	}
	r, err := ocibundle.OpenRemote(ref, ocibundle.RemoteOptions{
		PlainHTTP: f.plainHTTP, RegistryConfig: f.registryConfig,
		HTTPClient: download.NewClient(download.TransportOptionsFrom(*cfg)),
	})
	if err != nil {
		return nil, withCode(exitUsage, err)
	}
	return r, nil
}

func newPushCmd(cfg *config.Config) *cobra.Command {
	var lf loadFlags
	var rf registryFlags
	var all, asJSON, fetchMetadata bool
	var mountFrom []string
	cmd := &cobra.Command{
		Use:   "push MODEL_ID oci://HOST/REPO:TAG",
		Short: "Publish a model's packages from the cache to an OCI registry",
		Long: "Push the package `pull MODEL_ID` (same flags) would load from this cache, or with\n" +
			"--all-packages every complete package, to an OCI registry as ModelPack artifacts (one\n" +
			"layer per file): the tag names the package manifest, or an index of several. Any\n" +
			"site registry works (Harbor, ECR, GHCR, Artifactory, distribution); `modelcache pull\n" +
			"oci://…` brings it into another cache, `oras pull` fetches the files. See docs/airgap.md.",
		Example: "  modelcache push parcel-det oci://registry.example.com/models/parcel-det:7\n" +
			"  modelcache push parcel-det oci://localhost:5000/models/parcel-det:7 --plain-http\n" +
			"  modelcache push coco/3 oci://harbor.site/ml/coco:3 --all-packages --mount-from ml/base",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			log := loggerFrom(ctx)
			remote, err := rf.open(cfg, args[1])
			if err != nil {
				return err
			}
			refs, cc, err := selectPackages(ctx, *cfg, cmd.Flags(), &lf, args[:1], all, fetchMetadata, log)
			if err != nil {
				return err
			}
			g, pkgs, _, err := collectGraph(ctx, cc, refs, log)
			if err != nil {
				return err
			}
			root, stats, err := remote.Push(ctx, g, ocibundle.PushOptions{Concurrency: rf.concurrency, MountFrom: mountFrom})
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"reference": args[1], "digest": root.Digest, "media_type": root.MediaType, "packages": pkgs, "stats": stats})
			}
			w := cmd.OutOrStdout()
			for _, p := range pkgs {
				fmt.Fprintf(w, "%s  %s  %d files  %d bytes\n", p.ModelID, p.PackageID, p.Files, p.Bytes)
			}
			fmt.Fprintf(w, "pushed %s@%s (%d uploaded, %d mounted, %d already there)\n", args[1], root.Digest, stats.Uploaded, stats.Mounted, stats.Existing)
			return nil
		},
	}
	lf.register(cmd.Flags())
	rf.register(cmd)
	cmd.Flags().BoolVar(&all, "all-packages", false, "every complete package of the model, not only the one pull would load")
	cmd.Flags().StringArrayVar(&mountFrom, "mount-from", nil, "repository of the same registry to mount shared blobs from instead of uploading them; repeatable")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.Flags().BoolVar(&fetchMetadata, "fetch-metadata", false, "ask the weights provider for the model's metadata (see export)")
	return usageErrors(cmd, cobra.ExactArgs(2))
}
