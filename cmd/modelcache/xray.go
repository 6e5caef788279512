package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/xray"
)

// newXrayCmd returns `modelcache xray [--json]`: the runtime facts package
// negotiation matches against (docs/negotiation.md).
func newXrayCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "xray [--json]",
		Example: "  modelcache xray\n  modelcache xray --json > this-host.json   # reuse with pull/resolve --runtime on another machine",
		Short:   "Print the runtime facts used to choose model packages (GPUs, CUDA, TensorRT, ONNX Runtime, ...)",
		Long: "Inspect this host the way inference-models' runtime x-ray does: GPUs and compute\n" +
			"capability, NVIDIA driver, CUDA, TensorRT, Jetson module and L4T, OS version, ONNX\n" +
			"Runtime and its execution providers, torch/transformers/TensorRT Python packages.\n" +
			"Each fact says where it came from. Nothing needs to be installed: unknown facts are\n" +
			"null. --json prints the runtime document `resolve --runtime` reads back.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := xray.OptionsFromConfig(*cfg)
			opts.Logger = loggerFrom(cmd.Context())
			rt, err := xray.Probe(cmd.Context(), opts)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				enc.SetEscapeHTML(false)
				if werr := enc.Encode(rt); werr != nil {
					return werr
				}
				return err
			}
			if werr := writeXrayTable(out, rt); werr != nil {
				return werr
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the runtime JSON document (with sources and warnings)")
	return cmd
}

func writeXrayTable(w interface{ Write([]byte) (int, error) }, rt xray.Runtime) error {
	b, err := json.Marshal(rt.Facts)
	if err != nil {
		return err
	}
	var facts map[string]json.RawMessage
	if err := json.Unmarshal(b, &facts); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FACT\tVALUE\tSOURCE")
	for _, f := range xray.Fields {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f, string(facts[f]), rt.Sources[f])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, warn := range rt.Warnings {
		if _, err := fmt.Fprintf(w, "warning: %s\n", strings.TrimSpace(warn)); err != nil {
			return err
		}
	}
	return nil
}
