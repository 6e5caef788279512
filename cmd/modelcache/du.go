package main

import (
	"fmt"
	"io"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
)

func newDuCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "du [--json]",
		Example: "  modelcache du\n  modelcache du --json | jq .total_bytes",
		Short:   "Show disk usage of the cache by category (blobs, package files, entries, temps)",
		Long: "Every byte under the cache root in exactly one category; the total equals\n" +
			"`du -sb $INFERENCE_HOME` (apparent sizes, symlinks not followed, hard links once).\n" +
			"Blobs are split into unique (one package links them), shared (several) and\n" +
			"orphaned (none: `modelcache gc` collects them). Nothing is changed.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, missing, err := openMaintainer(cmd, cfg, true)
			if err != nil {
				return err
			}
			u := &maintain.UsageReport{Home: cfg.Home, TempsByKind: map[maintain.TempKind]maintain.Usage{}}
			if !missing {
				if u, err = m.DiskUsage(cmd.Context()); err != nil {
					return err
				}
			}
			problemLines(cmd.ErrOrStderr(), u.Problems)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), u)
			}
			return writeUsage(cmd.OutOrStdout(), u)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (exact byte counts)")
	return usageErrors(cmd, cobra.NoArgs)
}

func writeUsage(w io.Writer, u *maintain.UsageReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	row := func(name string, x maintain.Usage) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t\n", name, x.Count, humanBytes(x.Bytes), x.Bytes)
	}
	fmt.Fprintf(w, "cache %s\n", u.Home)
	fmt.Fprintln(tw, "CATEGORY\tFILES\tSIZE\tBYTES\t")
	row("blobs", u.Blobs)
	row("  unique", u.BlobsUnique)
	row("  shared", u.BlobsShared)
	row("  orphaned", u.BlobsOrphaned)
	row("package files", u.PackageFiles)
	row("auto-resolution entries", u.Entries)
	row("offline records", u.Records)
	row("temps", u.Temps)
	kinds := make([]string, 0, len(u.TempsByKind))
	for k := range u.TempsByKind {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		row("  "+k, u.TempsByKind[maintain.TempKind(k)])
	}
	row("locks", u.Locks)
	row(".meta", u.Meta)
	row("directories", u.Directories)
	row("other", u.Other)
	fmt.Fprintf(tw, "total\t\t%s\t%d\t\n", humanBytes(u.TotalBytes), u.TotalBytes)
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "sharing saves %s; `modelcache gc --dry-run` shows what can be reclaimed\n", humanBytes(u.SavedBytes))
	return err
}
