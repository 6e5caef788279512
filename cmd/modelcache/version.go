package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/internal/version"
)

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "version",
		Example: "  modelcache version\n  modelcache version --json",
		Short:   "Print the version, Go version and module path",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprintf(out, "modelcache %s\ngo: %s\nmodule: %s\nplatform: %s\n",
				info.Version, info.GoVersion, info.Module, info.Platform)
			if err == nil && info.Commit != "" {
				suffix := ""
				if info.Modified {
					suffix = " (modified)"
				}
				_, err = fmt.Fprintf(out, "commit: %s %s%s\n", info.Commit, info.CommitTime, suffix)
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
