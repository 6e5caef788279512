package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
)

func newVerifyCmd(cfg *config.Config) *cobra.Command {
	var asJSON, full, repair bool
	cmd := &cobra.Command{
		Use:   "verify [MODEL_ID...] [--full] [--repair] [--json]",
		Short: "Re-check blobs, links, package files and dependencies offline; optionally repair",
		Long: "Re-hash blobs (MD5; skipped while .meta/verified/<md5> still matches size,\n" +
			"mtime and inode, unless --full), check every blob link, the SHA-256 of unhashed\n" +
			"files, dependency links and identities, and the presence of offline-recorded\n" +
			"packages. Without MODEL_ID the whole cache is checked, orphaned blobs included.\n" +
			"No network is used and no link is followed out of the cache.\n\n" +
			"--repair fixes what it can offline, under each package's lock: corrupt blobs and\n" +
			"files are moved aside and deleted (the next load downloads them again); a regular\n" +
			"file where a blob link belongs moves into shared-blobs if its MD5 matches; wrong\n" +
			"links to good blobs are replaced.\n\n" +
			"Exit status: 0 all ok, 1 problems remain, 2 usage or I/O error.",
		Example: "  modelcache verify\n  modelcache verify coco/3 --full --json\n  modelcache verify --repair",
		RunE: func(cmd *cobra.Command, args []string) error {
			// Online, verify records stamps, so the cache is opened as configured.
			m, missing, err := openMaintainer(cmd, cfg, false)
			if err != nil {
				return withCode(exitUsage, err)
			}
			rep := &maintain.VerifyReport{Models: args, Full: full, Repair: repair, PartialPackages: []string{}, Findings: []maintain.Finding{}, OK: true}
			if args == nil {
				rep.Models = []string{}
			}
			if !missing {
				rep, err = m.Verify(cmd.Context(), maintain.VerifyOptions{ModelIDs: args, Full: full, Repair: repair})
				if err != nil {
					return withCode(exitUsage, err)
				}
			}
			if asJSON {
				err = writeJSON(cmd.OutOrStdout(), rep)
			} else {
				err = writeVerify(cmd.OutOrStdout(), rep)
			}
			if err != nil {
				return withCode(exitUsage, err)
			}
			if !rep.OK {
				return withCode(exitProblems, fmt.Errorf("verify: %d problem(s) found", rep.Problems))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&full, "full", false, "re-hash every blob, ignoring verified stamps")
	cmd.Flags().BoolVar(&repair, "repair", false, "fix what can be fixed offline")
	return usageErrors(cmd, nil)
}

func writeVerify(w io.Writer, r *maintain.VerifyReport) error {
	for _, f := range r.Findings {
		state := "PROBLEM"
		if f.Repaired {
			state = "REPAIRED"
		}
		fmt.Fprintf(w, "%s %s: %s: %s\n", state, f.Kind, f.Path, f.Detail)
		if f.Action != "" {
			fmt.Fprintf(w, "  -> %s\n", f.Action)
		}
	}
	for _, p := range r.PartialPackages {
		fmt.Fprintf(w, "note: %s has no manifest yet (in progress or interrupted): only its links were checked\n", p)
	}
	_, err := fmt.Fprintf(w, "%d package(s), %d file(s), %d blob(s) checked (%d hashed, %s read; %d unchanged since verified)",
		r.Packages, r.Files, r.Blobs, r.BlobsHashed, humanBytes(r.BytesHashed), r.BlobsStamped)
	if err != nil {
		return err
	}
	if r.OK {
		_, err = fmt.Fprintln(w, ": all ok")
	} else {
		_, err = fmt.Fprintf(w, ": %d problem(s)\n", r.Problems)
	}
	return err
}
