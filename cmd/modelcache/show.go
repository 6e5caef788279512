package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
)

func newShowCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show MODEL_ID [--json]",
		Short: "Show one model: packages, files and links, auto-resolution entries, offline record",
		Long: "Describe everything the cache holds for MODEL_ID: each package with its files\n" +
			"(links and the blobs they lead to, regular files, missing declared files),\n" +
			"dependency identities, the auto-resolution entries naming the model and its\n" +
			"offline-weights record with the presence of each recorded package.\n" +
			"Nothing is changed; links are never followed out of the cache.",
		Example: "  modelcache show coco/3\n  modelcache show coco/3 --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			m, missing, err := openMaintainer(cmd, cfg, true)
			if err != nil {
				return err
			}
			if missing {
				return &maintain.NotFoundError{ModelID: args[0]}
			}
			d, err := m.Show(cmd.Context(), args[0])
			if err != nil {
				return invalidParam(err)
			}
			problemLines(cmd.ErrOrStderr(), d.Problems)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), d)
			}
			return writeDetail(cmd.OutOrStdout(), d)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return usageErrors(cmd, cobra.ExactArgs(1))
}

func writeDetail(w io.Writer, d *maintain.ModelDetail) error {
	fmt.Fprintf(w, "model %s\n  dir %s\n", d.ModelID, d.Dir)
	for _, p := range d.Packages {
		fmt.Fprintf(w, "\npackage %s  %s  %s (dir %s, blobs %s, shared %s)  last used %s\n",
			p.PackageID, p.State, humanBytes(p.SizeBytes), humanBytes(p.DirBytes), humanBytes(p.BlobBytes),
			humanBytes(p.SharedBytes), when(p.LastUsed))
		if p.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", p.Error)
		}
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FILE\tKIND\tSIZE\tDETAIL")
		for _, f := range p.Files {
			detail := f.Storage
			switch {
			case f.Kind == "link" && f.Blob != "":
				detail = fmt.Sprintf("-> blob %s (%s, %s)", f.Blob, f.LinkState, humanBytes(max(f.BlobBytes, 0)))
			case f.Kind == "link":
				detail = fmt.Sprintf("-> %s (%s)", f.LinkText, f.LinkState)
			case !f.Declared && f.Kind != "missing":
				detail = "undeclared"
			}
			size := humanBytes(f.Size)
			if f.Kind == "missing" {
				size = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", f.Path, f.Kind, size, detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, dep := range p.Dependencies {
			fmt.Fprintf(w, "  dependency %s -> %s (%s, package %s)\n", dep.Name, dep.TargetPath, dep.CacheModelID, dep.ModelPackageID)
		}
	}
	if len(d.Entries) > 0 {
		fmt.Fprintln(w, "\nauto-resolution entries")
		for _, e := range d.Entries {
			state := "valid"
			if e.Expired {
				state = "expired"
			}
			fmt.Fprintf(w, "  %s  requested %s -> package %s  created %s  %s\n", e.Key, e.ModelID, e.ModelPackageID, e.CreatedAt, state)
		}
	}
	for _, r := range d.Offline {
		fmt.Fprintf(w, "\noffline record %s (%s)\n", r.CanonicalModelID, r.Path)
		if len(r.Aliases) > 0 {
			fmt.Fprintf(w, "  aliases %v\n", r.Aliases)
		}
		for _, p := range r.Packages {
			id := "<malformed>"
			if p.PackageID != nil {
				id = *p.PackageID
			}
			fmt.Fprintf(w, "  package %s  %s", id, p.Presence)
			if len(p.MissingFiles) > 0 {
				fmt.Fprintf(w, "  missing %v", p.MissingFiles)
			}
			if p.LastProvenAt != nil {
				fmt.Fprintf(w, "  proven %s", when(p.LastProvenAt))
			}
			fmt.Fprintln(w)
		}
	}
	return nil
}
