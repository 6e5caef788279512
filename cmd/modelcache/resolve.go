package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/provider"
)

// resolveFlags are resolve's flags: the shared negotiation arguments plus
// the output form.
type resolveFlags struct {
	negotiationFlags
	explain bool
	asJSON  bool
}

// errNothingSelected makes resolve exit non-zero after printing its result.
type errNothingSelected struct{ err error }

func (e *errNothingSelected) Error() string {
	return "resolve: nothing selected: " + errorClass(e.err) + " (details above)"
}
func (e *errNothingSelected) Unwrap() error { return e.err }

// newResolveCmd returns `modelcache resolve MODEL_ID ...`: fetch the model's
// packages from the configured weights provider and negotiate them against
// this host (or a runtime file), as inference-models' auto-loader does.
func newResolveCmd(cfg *config.Config) *cobra.Command {
	var fl resolveFlags
	cmd := &cobra.Command{
		Use:   "resolve MODEL_ID [flags]",
		Short: "Choose the model packages that can run here, as inference-models' auto-loader would",
		Long: "Fetch MODEL_ID's package list from the weights API (ROBOFLOW_API_HOST, key from\n" +
			"ROBOFLOW_API_KEY) and negotiate it against this host's runtime x-ray (or --runtime FILE):\n" +
			"every filter of inference-models 0.36.0 in order, then its ranking. --request FILE takes\n" +
			"a request object (compat/NEGOTIATION.md schema); flags override it. The device defaults\n" +
			"to DEFAULT_DEVICE, else cuda when a GPU is visible, else cpu. Exit status 1 when\n" +
			"nothing can be selected.",
		Example: "  modelcache resolve acme-ws/parcel-detector/7 --explain\n" +
			"  modelcache resolve parcel-det --runtime gpu-host.json --quantization fp16 --json",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runResolve(cmd, cfg, args[0], &fl)
		},
	}
	f := cmd.Flags()
	fl.register(f)
	f.BoolVar(&fl.explain, "explain", false, "print every package with its verdict, reason and rank")
	f.BoolVar(&fl.asJSON, "json", false, "print the result as JSON")
	return cmd
}

// resolveResult is the --json document.
type resolveResult struct {
	ModelID          string             `json:"model_id"`
	CanonicalModelID *string            `json:"canonical_model_id"`
	Device           *string            `json:"device"`
	Selected         []string           `json:"selected"`
	Candidates       []resolveCandidate `json:"candidates"`
	ResolutionKey    *string            `json:"resolution_key"`
	Notes            []string           `json:"notes"`
	Error            *resolveError      `json:"error"`
}

type resolveCandidate struct {
	PackageID    string               `json:"package_id"`
	Backend      string               `json:"backend"`
	Quantization *string              `json:"quantization"`
	Batch        string               `json:"batch"`
	Accepted     bool                 `json:"accepted"`
	Rank         *int                 `json:"rank"`
	Stage        *string              `json:"stage"`
	Code         *string              `json:"code"`
	Reason       *string              `json:"reason"`
	RankKey      *negotiation.RankKey `json:"rank_key,omitempty"`
}

type resolveError struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func runResolve(cmd *cobra.Command, cfg *config.Config, modelID string, fl *resolveFlags) error {
	ctx := cmd.Context()
	logger := loggerFrom(ctx)
	req, deviceSet, err := fl.request(cmd.Flags(), cfg)
	if err != nil {
		return err
	}
	copts, runtimeSrc, err := fl.clientOptions()
	if err != nil {
		return err
	}
	client, err := modelcache.New(*cfg, append(copts, modelcache.WithLogger(logger))...)
	if err != nil {
		return err
	}
	r, nerr := client.Resolve(ctx, modelID, modelcache.WithNegotiationRequest(req, deviceSet))
	if r == nil {
		return nerr
	}

	res := resolveResult{ModelID: modelID, Selected: []string{}, Candidates: []resolveCandidate{}, Notes: []string{}}
	if r.Device != "" {
		d := r.Device
		res.Device = &d
	}
	if r.Metadata != nil {
		id := r.Metadata.ModelID
		res.CanonicalModelID = &id
	}
	rep := r.Report
	if rep != nil {
		res.Selected = append(res.Selected, rep.Selected...)
		res.Notes = append(res.Notes, rep.Notes...)
		for _, v := range rep.Packages {
			res.Candidates = append(res.Candidates, candidate(v, fl.explain))
		}
	}
	if r.Key != "" {
		res.ResolutionKey = &r.Key
	}
	if nerr != nil {
		res.Error = &resolveError{Type: errorClass(nerr), Message: errorMessage(nerr)}
	}

	out := cmd.OutOrStdout()
	switch {
	case fl.asJSON:
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(res); err != nil {
			return err
		}
	case fl.explain:
		if err := writeExplain(out, res, rep, runtimeSrc); err != nil {
			return err
		}
	default:
		if err := writeResolveSummary(out, res); err != nil {
			return err
		}
	}
	if nerr != nil {
		return &errNothingSelected{err: nerr}
	}
	return nil
}

func candidate(v negotiation.Verdict, withKey bool) resolveCandidate {
	c := resolveCandidate{PackageID: v.PackageID, Backend: string(v.Backend), Batch: v.Batch, Accepted: v.Accepted}
	if v.Quantization != "" {
		q := string(v.Quantization)
		c.Quantization = &q
	}
	if v.Rank > 0 {
		r := v.Rank
		c.Rank = &r
	}
	if v.Code != "" {
		s, code, reason := string(v.Stage), string(v.Code), v.Reason
		c.Stage, c.Code, c.Reason = &s, &code, &reason
	}
	if withKey {
		c.RankKey = v.Key
	}
	return c
}

func readRuntimeFile(path string) (negotiation.Runtime, error) {
	var rt negotiation.Runtime
	b, err := os.ReadFile(path)
	if err != nil {
		return rt, fmt.Errorf("--runtime: %w", err)
	}
	if err := json.Unmarshal(b, &rt); err != nil {
		return rt, fmt.Errorf("--runtime %s: %w", path, err)
	}
	return rt, nil
}

// errorClass names the reference exception class of err.
func errorClass(err error) string {
	if c := negotiation.ClassName(err); c != "" {
		return c
	}
	var re *provider.RetrievalError
	if errors.As(err, &re) {
		return re.Kind.ClassName()
	}
	var rte *provider.RetryError
	if errors.As(err, &rte) {
		return "RetryError"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "TimeoutError"
	}
	return "Error"
}

func errorMessage(err error) string {
	var re *provider.RetrievalError
	if negotiation.ClassName(err) == "" && errors.As(err, &re) {
		return re.Message
	}
	return negotiation.Message(err)
}

func writeResolveSummary(w io.Writer, res resolveResult) error {
	canon := "?"
	if res.CanonicalModelID != nil {
		canon = *res.CanonicalModelID
	}
	fmt.Fprintf(w, "model: %s (canonical: %s)\n", res.ModelID, canon)
	if res.Error != nil {
		fmt.Fprintf(w, "error: %s: %s\n", res.Error.Type, strings.TrimRight(res.Error.Message, "\n"))
	} else {
		fmt.Fprintf(w, "selected: %s\n", strings.Join(res.Selected, ", "))
	}
	if res.ResolutionKey != nil {
		fmt.Fprintf(w, "resolution key: %s\n", *res.ResolutionKey)
	}
	_, err := fmt.Fprintln(w, "(use --explain for the reasons behind each package)")
	return err
}

func writeExplain(w io.Writer, res resolveResult, rep *negotiation.Report, runtimeSrc string) error {
	canon := "?"
	if res.CanonicalModelID != nil {
		canon = *res.CanonicalModelID
	}
	device := "None"
	if res.Device != nil {
		device = *res.Device
	}
	fmt.Fprintf(w, "model %s (canonical %s), device %s, runtime: %s\n", res.ModelID, canon, device, runtimeSrc)
	if rep != nil && rep.Quantizations != nil {
		qs := make([]string, len(rep.Quantizations))
		for i, q := range rep.Quantizations {
			qs[i] = string(q)
		}
		by := "requested"
		if rep.QuantizationByDefault {
			by = "default for the device"
		}
		fmt.Fprintf(w, "quantizations: %s (%s)\n", strings.Join(qs, ", "), by)
	}
	if rep != nil && rep.ONNXExecutionProviders != nil {
		fmt.Fprintf(w, "onnx execution providers: [%s]\n", strings.Join(rep.ONNXExecutionProviders, ", "))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tPACKAGE\tBACKEND\tQUANT\tBATCH\tVERDICT\tREASON")
	// Selected packages first, by rank; then the others in announced order.
	rows := append([]resolveCandidate(nil), res.Candidates...)
	sort.SliceStable(rows, func(i, j int) bool {
		ri, rj := rows[i].Rank, rows[j].Rank
		switch {
		case ri != nil && rj != nil:
			return *ri < *rj
		case ri != nil:
			return true
		}
		return false
	})
	for _, c := range rows {
		rank, verdict, reason := "-", "rejected", ""
		if c.Rank != nil {
			rank, verdict = strconv.Itoa(*c.Rank), "selected"
		}
		if c.Stage != nil {
			verdict = "rejected: " + *c.Stage
			reason = *c.Reason
		}
		if !c.Accepted && c.Stage == nil {
			verdict = "not evaluated"
		}
		q := "null"
		if c.Quantization != nil {
			q = *c.Quantization
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", rank, c.PackageID, c.Backend, q, c.Batch, verdict, reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if res.Error != nil {
		fmt.Fprintf(w, "result: %s: %s\n", res.Error.Type, strings.TrimRight(res.Error.Message, "\n"))
	} else {
		fmt.Fprintf(w, "result: %s\n", strings.Join(res.Selected, " > "))
	}
	if res.ResolutionKey != nil {
		fmt.Fprintf(w, "resolution key: %s\n", *res.ResolutionKey)
	}
	return nil
}
