package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
)

func newGcCmd(cfg *config.Config) *cobra.Command {
	var asJSON, dryRun bool
	var grace, partialGrace durationFlag
	grace.d, partialGrace.d = maintain.DefaultGrace, maintain.DefaultPartialGrace
	cmd := &cobra.Command{
		Use:   "gc [--dry-run] [--grace 1h] [--partial-grace 24h] [--json]",
		Short: "Collect orphaned blobs, stale temp files and expired entries",
		Long: "Under .meta/gc.lock, mark every blob a manifest, a package link, an unexpired\n" +
			"auto-resolution entry, an offline record or a lease still names; remove the\n" +
			"others once older than --grace and while their lock is free. Also removes temp\n" +
			"files older than --grace, abandoned partial downloads older than --partial-grace\n" +
			"(never while their owner runs), expired auto-resolution entries, expired leases\n" +
			"and stale stamps. Dangling links and symlinks planted in the cache are reported,\n" +
			"never followed. A reference (Python) process sharing the cache may race an old\n" +
			"unmarked blob: its load then fails once and downloads again.",
		Example: "  modelcache gc --dry-run\n  modelcache gc --grace 24h --json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, missing, err := openMaintainer(cmd, cfg, false)
			if err != nil {
				return err
			}
			rep := &maintain.GCReport{DryRun: dryRun, Grace: grace.d.String(), PartialGrace: partialGrace.d.String(),
				Removed: []maintain.Item{}, Skipped: []maintain.Item{}, Problems: []maintain.Problem{}}
			if !missing { // no cache: nothing to collect
				rep, err = m.GC(cmd.Context(), maintain.GCOptions{DryRun: dryRun, Grace: grace.d, PartialGrace: partialGrace.d})
				if err != nil {
					return err
				}
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), rep)
			}
			return writeGC(cmd.OutOrStdout(), rep)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "show what would be removed and the bytes reclaimable; change nothing")
	cmd.Flags().Var(&grace, "grace", "keep unmarked blobs and temp files younger than this")
	cmd.Flags().Var(&partialGrace, "partial-grace", "keep resumable partial downloads younger than this")
	return usageErrors(cmd, cobra.NoArgs)
}

// durationFlag accepts Go durations ("90m", "1h") and refuses negatives.
type durationFlag struct{ d time.Duration }

func (f *durationFlag) String() string { return f.d.String() }
func (f *durationFlag) Type() string   { return "duration" }
func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30m, 1h or 24h")
	}
	if d < 0 {
		return fmt.Errorf("must not be negative")
	}
	f.d = d
	return nil
}

func writeGC(w io.Writer, r *maintain.GCReport) error {
	verb, total := "removed", "reclaimed"
	if r.DryRun {
		verb, total = "would remove", "reclaimable"
	}
	for _, it := range r.Removed {
		fmt.Fprintf(w, "%s %s %s (%s)\n", verb, it.Kind, it.Path, humanBytes(it.Bytes))
	}
	for _, it := range r.Skipped {
		fmt.Fprintf(w, "kept %s %s: %s\n", it.Kind, it.Path, it.Reason)
	}
	problemLines(w, r.Problems)
	_, err := fmt.Fprintf(w, "%d blob(s) in use; %s: %d orphaned blob(s) %s, %d temp file(s) %s, %d entr(y/ies) %s, %d bookkeeping file(s); %s %s\n",
		r.MarkedBlobs, verb, r.Blobs.Count, humanBytes(r.Blobs.Bytes), r.Temps.Count, humanBytes(r.Temps.Bytes),
		r.Entries.Count, humanBytes(r.Entries.Bytes), r.Meta.Count, humanBytes(r.ReclaimedBytes), total)
	return err
}
