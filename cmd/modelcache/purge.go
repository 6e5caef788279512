package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
)

func newPurgeCmd(cfg *config.Config) *cobra.Command {
	var asJSON, dryRun, resolution, models, blobs, all bool
	var packages []string
	var grace, partialGrace durationFlag
	grace.d, partialGrace.d = maintain.DefaultGrace, maintain.DefaultPartialGrace
	cmd := &cobra.Command{
		Use:   "purge [MODEL_ID...] [--package ID] [--resolution-cache] [--models] [--blobs] [--all] [--dry-run] [--json]",
		Short: "Remove models, packages, auto-resolution entries or blobs, leaving nothing dangling",
		Long: "Remove every package of MODEL_ID (or only --package ones), in the order that\n" +
			"keeps the cache consistent for concurrent readers: auto-resolution entries naming\n" +
			"a package and its offline-record entries first, then its manifest (so it is no\n" +
			"longer complete), its links, its directory. The blobs that become orphans are\n" +
			"collected by a GC pass of the same command. Packages under a lease are skipped.\n\n" +
			"  --resolution-cache  auto-resolution entries (of MODEL_ID, or all)\n" +
			"  --models            every package of every model\n" +
			"  --blobs             every blob nothing names, without waiting for --grace\n" +
			"  --all               all of the above and every offline record\n\n" +
			"Purge is idempotent: a model of which nothing is left is reported as already gone,\n" +
			"so rerunning an interrupted purge finishes the rest.\n\n" +
			"Exit status: 0 done, 1 something could not be removed or an error, 2 usage error.",
		Example: "  modelcache purge coco/3 --dry-run\n  modelcache purge coco/3 --package a1b2c3\n  modelcache purge --resolution-cache\n  modelcache purge --all --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := maintain.PurgeOptions{ModelIDs: args, PackageIDs: packages, ResolutionCache: resolution, Models: models,
				Blobs: blobs, All: all, DryRun: dryRun, Grace: grace.d, PartialGrace: partialGrace.d}
			if len(args) == 0 && !resolution && !models && !blobs && !all {
				return withCode(exitUsage, fmt.Errorf("purge: name MODEL_IDs, or pass --resolution-cache, --models, --blobs or --all"))
			}
			if len(packages) > 0 && len(args) == 0 {
				return withCode(exitUsage, fmt.Errorf("purge: --package needs a MODEL_ID"))
			}
			m, missing, err := openMaintainer(cmd, cfg, false)
			if err != nil {
				return err
			}
			if missing {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "no cache at %s: nothing to purge\n", cfg.Home)
				return err
			}
			if !asJSON {
				// Progress on stderr as each step lands: a purge killed part-way
				// shows what it did, and a rerun finishes the rest.
				opts.Progress = func(ev maintain.PurgeEvent) {
					fmt.Fprintf(cmd.ErrOrStderr(), "purged %s %s\n", ev.Step, ev.Path)
				}
			}
			rep, err := m.Purge(cmd.Context(), opts)
			if err != nil {
				return invalidParam(err)
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = writePurge(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return err
			}
			if n := purgeFailures(rep); n > 0 {
				return withCode(exitProblems, fmt.Errorf("purge: %d item(s) could not be removed", n))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.BoolVar(&dryRun, "dry-run", false, "show what would be removed and the bytes reclaimable; change nothing")
	f.StringArrayVar(&packages, "package", nil, "only this package id of the named model(s) (repeatable)")
	f.BoolVar(&resolution, "resolution-cache", false, "remove auto-resolution entries (of the named models, or all)")
	f.BoolVar(&models, "models", false, "remove every package of every model")
	f.BoolVar(&blobs, "blobs", false, "remove every unnamed blob now, ignoring --grace")
	f.BoolVar(&all, "all", false, "remove every package, entry, offline record and unnamed blob")
	f.Var(&grace, "grace", "GC pass: keep unmarked blobs and temp files younger than this")
	f.Var(&partialGrace, "partial-grace", "GC pass: keep resumable partial downloads younger than this")
	return usageErrors(cmd, nil)
}

func purgeFailures(r *maintain.PurgeReport) int {
	n := 0
	for _, p := range r.Packages {
		if p.Skipped != "" {
			n++
		}
	}
	for _, rc := range r.Records {
		if rc.Error != "" {
			n++
		}
	}
	for _, e := range r.Entries {
		if e.Reason != "" {
			n++
		}
	}
	return n
}

func writePurge(w io.Writer, r *maintain.PurgeReport) error {
	verb, total := "removed", "reclaimed"
	if r.DryRun {
		verb, total = "would remove", "reclaimable"
	}
	for _, m := range r.Models {
		if m.State == "gone" {
			fmt.Fprintf(w, "model %s: already gone (nothing of it is in the cache)\n", m.ModelID)
		}
	}
	for _, e := range r.Entries {
		if e.Reason != "" {
			fmt.Fprintf(w, "kept entry %s: %s\n", e.Path, e.Reason)
			continue
		}
		fmt.Fprintf(w, "%s entry %s\n", verb, e.Path)
	}
	for _, rc := range r.Records {
		switch {
		case rc.Error != "":
			fmt.Fprintf(w, "offline record %s not updated: %s\n", rc.Path, rc.Error)
		case rc.Deleted:
			fmt.Fprintf(w, "%s offline record %s\n", verb, rc.Path)
		default:
			fmt.Fprintf(w, "update offline record %s: drop %v\n", rc.Path, rc.RemovedPackages)
		}
	}
	for _, p := range r.Packages {
		if p.Skipped != "" {
			fmt.Fprintf(w, "kept package %s %s: %s\n", p.ModelID, p.PackageID, p.Skipped)
			continue
		}
		fmt.Fprintf(w, "%s package %s %s (%s)\n", verb, p.ModelID, p.PackageID, humanBytes(p.Bytes))
	}
	if r.GC != nil {
		for _, it := range r.GC.Removed {
			fmt.Fprintf(w, "%s %s %s (%s)\n", verb, it.Kind, it.Path, humanBytes(it.Bytes))
		}
		problemLines(w, r.GC.Problems)
	}
	_, err := fmt.Fprintf(w, "%s %s\n", humanBytes(r.ReclaimedBytes), total)
	return err
}
