package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/tier"
)

const exitInterrupted = 130

func newTierCmd(cfg *config.Config) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "The fleet's shared S3-compatible blob tier: status and seeding",
		Long: "The shared blob tier (INFERENCE_MODELS_MODEL_BLOB_CACHE_*, docs/fleet.md) is an\n" +
			"S3-compatible bucket that the processes of a fleet, Python and Go, read blobs from\n" +
			"before the origin and write verified blobs to.",
	}
	cmd.AddCommand(newTierStatusCmd(cfg), newTierPushCmd(cfg))
	return cmd
}

func newTierStatusCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	var jobs int
	cmd := &cobra.Command{
		Use:   "status [--json]",
		Short: "Is the tier configured and reachable, and which blobs of this cache does it hold?",
		Long: "Report the tier's configuration (never the secret), whether the bucket answers with\n" +
			"these credentials, the circuit breakers after the checks, and how many of the blobs\n" +
			"of the models in this cache the bucket holds (one HEAD each). Nothing is changed.\n" +
			"Exit status: 0 reachable and every check answered, 1 unreachable or a check failed,\n" +
			"2 the tier is not enabled, misconfigured or OFFLINE_MODE is on.",
		Example: "  modelcache tier status\n  modelcache tier status --json | jq '.in_tier'",
		RunE: func(cmd *cobra.Command, _ []string) error {
			blobs, models, err := localBlobs(cmd, cfg, nil)
			if err != nil {
				return err
			}
			t := tier.New(*cfg, tier.WithLogger(loggerFrom(cmd.Context())))
			defer t.Close(context.WithoutCancel(cmd.Context()))
			st := t.Status(cmd.Context(), blobs, jobs)
			out := tierStatusOut{Home: cfg.Home, Models: models, StatusReport: st}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), out)
			} else {
				err = writeTierStatus(cmd.OutOrStdout(), out)
			}
			if err != nil {
				return err
			}
			switch {
			case cmd.Context().Err() != nil:
				return withCode(exitInterrupted, cmd.Context().Err())
			case !st.Enabled:
				return withCode(exitUsage, errors.New("blob tier disabled: "+st.Disabled))
			case !st.Reachable || st.Error != "":
				return withCode(exitProblems, errors.New("blob tier not healthy: "+firstNonEmpty(st.Error, "unreachable")))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (exact byte counts)")
	cmd.Flags().IntVar(&jobs, "jobs", 8, "HEAD requests in flight at once")
	return usageErrors(cmd, cobra.NoArgs)
}

type tierStatusOut struct {
	Home   string `json:"home"`
	Models int    `json:"models"`
	tier.StatusReport
}

func writeTierStatus(w io.Writer, s tierStatusOut) error {
	if !s.Enabled {
		_, err := fmt.Fprintf(w, "blob tier: disabled (%s)\n", s.Disabled)
		return err
	}
	endpoint := s.Endpoint
	if endpoint == "" {
		endpoint = "AWS S3"
	}
	prefix := s.Prefix + "/"
	if s.Prefix == "" {
		prefix = "(none: keys are the bare MD5)"
	}
	reach := "yes"
	if !s.Reachable {
		reach = "no"
	}
	fmt.Fprintf(w, "blob tier: enabled\n  endpoint     %s (%s addressing)\n  bucket       %s, prefix %s\n", endpoint, s.AddressingStyle, s.Bucket, prefix)
	fmt.Fprintf(w, "  credentials  %s\n  reachable    %s\n", s.Credentials, reach)
	if s.Error != "" {
		fmt.Fprintf(w, "  error        %s\n", s.Error)
	}
	fmt.Fprintf(w, "  breakers     read %s, write %s\n", s.ReadBreaker, s.WriteBreaker)
	fmt.Fprintf(w, "blobs of %d model(s) in %s: %s\n", s.Models, s.Home, tally(s.Local))
	for _, l := range []struct {
		name string
		t    tier.Tally
	}{{"in the tier", s.InTier}, {"missing", s.Missing}, {"size differs", s.Mismatched}, {"unchecked", s.Unchecked}} {
		fmt.Fprintf(w, "  %-13s%s\n", l.name, tally(l.t))
	}
	return nil
}

func newTierPushCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	var jobs int
	cmd := &cobra.Command{
		Use:   "push [MODEL_ID...] [--json]",
		Short: "Seed the tier with the blobs of cached models",
		Long: "Upload the blobs of the given models (default: every model in the cache) to the\n" +
			"tier. Objects that exist are skipped; every upload re-checks the local file's size\n" +
			"and MD5 as it streams and publishes nothing on a mismatch (run `modelcache verify`\n" +
			"for such blobs). After FAILURE_THRESHOLD failures the rest is skipped.\n" +
			"Exit status: 0 every blob is in the tier, 1 some blob is not, 2 the tier is not\n" +
			"enabled, misconfigured or OFFLINE_MODE is on, 130 interrupted.",
		Example: "  modelcache tier push\n  modelcache tier push coco/3 yolov8n-640 --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			t := tier.New(*cfg, tier.WithLogger(loggerFrom(cmd.Context())))
			if err := t.Disabled(); err != nil {
				return withCode(exitUsage, err)
			}
			defer t.Close(context.WithoutCancel(cmd.Context()))
			blobs, models, err := localBlobs(cmd, cfg, args)
			if err != nil {
				return err
			}
			r, err := t.Push(cmd.Context(), blobs, jobs)
			if err != nil && r == nil {
				return err
			}
			out := tierPushOut{Home: cfg.Home, Models: models, Bucket: t.Store().Bucket(), Prefix: cfg.BlobCache.KeyPrefix(), PushReport: *r}
			if asJSON {
				if werr := writeJSON(cmd.OutOrStdout(), out); werr != nil {
					return werr
				}
			} else if werr := writeTierPush(cmd.OutOrStdout(), out); werr != nil {
				return werr
			}
			switch {
			case err != nil:
				return withCode(exitInterrupted, err)
			case r.Failed.Count+r.LocalMismatch.Count+r.Skipped.Count > 0:
				return withCode(exitProblems, fmt.Errorf("%d of %d blob(s) not in the tier", r.Failed.Count+r.LocalMismatch.Count+r.Skipped.Count, r.Local.Count))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (exact byte counts)")
	cmd.Flags().IntVar(&jobs, "jobs", 4, "uploads in flight at once")
	return usageErrors(cmd, nil)
}

type tierPushOut struct {
	Home   string `json:"home"`
	Models int    `json:"models"`
	Bucket string `json:"bucket"`
	Prefix string `json:"prefix"`
	tier.PushReport
}

func writeTierPush(w io.Writer, p tierPushOut) error {
	fmt.Fprintf(w, "pushed the blobs of %d model(s) from %s to bucket %s (prefix %q): %s\n", p.Models, p.Home, p.Bucket, p.Prefix, tally(p.Local))
	for _, l := range []struct {
		name string
		t    tier.Tally
	}{{"uploaded", p.Uploaded}, {"already there", p.Existed}, {"local mismatch", p.LocalMismatch}, {"failed", p.Failed}, {"skipped", p.Skipped}} {
		fmt.Fprintf(w, "  %-15s%s\n", l.name, tally(l.t))
	}
	for _, e := range p.Errors {
		fmt.Fprintf(w, "error %s (%s): %s\n", e.MD5, e.Path, e.Error)
	}
	return nil
}

func tally(t tier.Tally) string { return fmt.Sprintf("%d (%s)", t.Count, humanBytes(t.Bytes)) }

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// localBlobs lists the blobs the packages of the given models (default:
// all) link to, each once, with their files in shared-blobs. It reads the
// cache without changing it.
func localBlobs(cmd *cobra.Command, cfg *config.Config, modelIDs []string) ([]tier.Blob, int, error) {
	m, missing, err := openMaintainer(cmd, cfg, true)
	if err != nil {
		return nil, 0, err
	}
	if missing {
		if len(modelIDs) > 0 {
			return nil, 0, &maintain.NotFoundError{ModelID: modelIDs[0]}
		}
		return nil, 0, nil
	}
	home, err := layout.NewHome(cfg.Home)
	if err != nil {
		return nil, 0, err
	}
	ctx := cmd.Context()
	if len(modelIDs) == 0 {
		l, err := m.List(ctx)
		if err != nil {
			return nil, 0, err
		}
		for _, ms := range l.Models {
			if ms.ModelID == "" {
				loggerFrom(ctx).Warn("model dir without a model id (no manifest yet); its blobs are left out", "dir", ms.Dir)
				continue
			}
			modelIDs = append(modelIDs, ms.ModelID)
		}
	}
	seen := map[string]bool{}
	var out []tier.Blob
	for _, id := range modelIDs {
		d, err := m.Show(ctx, id)
		if err != nil {
			return nil, 0, invalidParam(err)
		}
		for _, p := range d.Packages {
			for _, f := range p.Files {
				if f.LinkState != "blob" || f.Blob == "" || f.BlobBytes < 0 || seen[f.Blob] {
					continue
				}
				path, err := home.BlobPath(f.Blob)
				if err != nil {
					continue // not a blob name: never a path
				}
				seen[f.Blob] = true
				out = append(out, tier.Blob{MD5: f.Blob, Size: f.BlobBytes, Path: path})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return strings.Compare(out[i].MD5, out[j].MD5) < 0 })
	return out, len(modelIDs), nil
}
