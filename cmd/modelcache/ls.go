package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/maintain"
)

// Exit statuses of the maintenance commands: 0 ok, 1 problems found or an
// error, 2 usage error (and, for verify, an I/O error).
const (
	exitProblems = 1
	exitUsage    = 2
)

// exitError carries the exit status a command wants; main maps any other
// error to 1.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process exit status for this error.
func (e *exitError) ExitCode() int { return e.code }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageErrors makes flag and argument errors exit 2.
func usageErrors(cmd *cobra.Command, args cobra.PositionalArgs) *cobra.Command {
	// One error line, as under the root command, also when run on their own.
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	if args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return withCode(exitUsage, args(c, a)) }
	}
	return cmd
}

// invalidParam maps errors the library classifies as bad arguments to 2.
func invalidParam(err error) error {
	if errors.Is(err, errdefs.ErrInvalidParameter) || errors.Is(err, errdefs.ErrInsecureIdentifier) {
		return withCode(exitUsage, err)
	}
	return err
}

// openMaintainer opens the cache. Read-only commands open it as offline so
// that they create nothing (no CACHEDIR.TAG, no lock files); missing=true
// when there is no cache at all (nothing is created then either).
func openMaintainer(cmd *cobra.Command, cfg *config.Config, readOnly bool) (m *maintain.Maintainer, missing bool, err error) {
	if _, err := os.Stat(cfg.Home); errors.Is(err, fs.ErrNotExist) {
		return nil, true, nil
	}
	c := *cfg
	if readOnly {
		c.Offline = true
	}
	log := loggerFrom(cmd.Context())
	opened, err := cache.Open(c, cache.WithLogger(log))
	if err != nil {
		return nil, false, err
	}
	return maintain.New(opened, maintain.WithLogger(log)), false, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// humanBytes prints IEC units; JSON output carries exact byte counts.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for x := n / unit; x >= unit; x /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04")
}

func newLsCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	var sortBy string
	cmd := &cobra.Command{
		Use:     "ls [--sort name|size|last-used] [--json]",
		Example: "  modelcache ls\n  modelcache ls --sort size\n  modelcache ls --json | jq '.models[].packages[] | {package_id, state}'",
		Short:   "List cached models and packages with sizes, sharing, last use and state",
		Long: "List every model cache root and its packages: size on disk (package dir plus the\n" +
			"blobs it links to; bytes as `du -b` counts them), bytes shared with other\n" +
			"packages, last successful load, and state (complete, partial: no manifest yet,\n" +
			"broken: unreadable manifest). Nothing is changed.",
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch sortBy {
			case "name", "size", "last-used":
			default:
				return withCode(exitUsage, fmt.Errorf("--sort %q: want name, size or last-used", sortBy))
			}
			m, missing, err := openMaintainer(cmd, cfg, true)
			if err != nil {
				return err
			}
			l := &maintain.Listing{Home: cfg.Home, Models: []maintain.ModelSummary{}}
			if !missing {
				if l, err = m.List(cmd.Context()); err != nil {
					return err
				}
			}
			sortModels(l.Models, sortBy)
			problemLines(cmd.ErrOrStderr(), l.Problems)
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), l)
			}
			return writeListing(cmd.OutOrStdout(), l)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (exact byte counts)")
	cmd.Flags().StringVar(&sortBy, "sort", "name", "order models by name, size (largest first) or last-used (most recent first)")
	return usageErrors(cmd, cobra.NoArgs)
}

func sortModels(ms []maintain.ModelSummary, by string) {
	sort.SliceStable(ms, func(i, j int) bool {
		a, b := ms[i], ms[j]
		switch by {
		case "size":
			return a.SizeBytes > b.SizeBytes
		case "last-used":
			if (a.LastUsed == nil) != (b.LastUsed == nil) {
				return a.LastUsed != nil
			}
			return a.LastUsed != nil && a.LastUsed.After(*b.LastUsed)
		}
		return false // List already orders by name
	})
}

func writeListing(w io.Writer, l *maintain.Listing) error {
	if len(l.Models) == 0 {
		_, err := fmt.Fprintf(w, "no models cached in %s\n", l.Home)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tPACKAGE\tSTATE\tBACKEND\tSIZE\tSHARED\tLAST USED")
	for _, m := range l.Models {
		id := m.ModelID
		if id == "" {
			id = "(" + m.Slug + ")"
		}
		fmt.Fprintf(tw, "%s\t\t\t\t%s\t%s\t%s\n", id, humanBytes(m.SizeBytes), humanBytes(m.SharedBytes), when(m.LastUsed))
		for _, p := range m.Packages {
			backend := "-"
			if p.Backend != nil {
				backend = *p.Backend
				if p.Quantization != nil {
					backend += "/" + *p.Quantization
				}
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s\t%s\t%s\t%s\n", p.PackageID, p.State, backend,
				humanBytes(p.SizeBytes), humanBytes(p.SharedBytes), when(p.LastUsed))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d model(s), %s on disk (shared blobs counted once)\n", len(l.Models), humanBytes(l.TotalBytes))
	return err
}

// problemLines prints findings as "kind: path: detail" lines.
func problemLines(w io.Writer, ps []maintain.Problem) {
	for _, p := range ps {
		fmt.Fprintf(w, "problem %s: %s: %s\n", p.Kind, p.Path, strings.TrimSpace(p.Detail))
	}
}
