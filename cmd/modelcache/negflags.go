package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
)

// negotiationFlags are the negotiation arguments pull and resolve share:
// one flag set, one validation.
type negotiationFlags struct {
	backends       []string
	batch          string
	quantizations  []string
	device         string
	onnxProviders  string
	packageID      string
	allowUntrusted bool
	runtimeFile    string
	requestFile    string
}

func (f *negotiationFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.backends, "backend", nil, "allowed backend (repeatable or comma-separated): trt, onnx, torch, hugging-face, torch-script, ultralytics, custom")
	fs.StringVar(&f.batch, "batch-size", "", "requested batch size N or range MIN-MAX")
	fs.StringArrayVar(&f.quantizations, "quantization", nil, "allowed quantization (repeatable or comma-separated): fp32, fp16, bf16, int8, unknown (default: by device)")
	fs.StringVar(&f.device, "device", "", "torch device: cpu, cuda, cuda:N, mps (default: DEFAULT_DEVICE, else cuda with a GPU, else cpu)")
	fs.StringVar(&f.onnxProviders, "onnx-providers", "", "ONNX execution providers to use, comma-separated, primary first (default: auto)")
	fs.StringVar(&f.packageID, "package-id", "", "select this package id (skips every filter but trust)")
	fs.BoolVar(&f.allowUntrusted, "allow-untrusted", false, "accept packages not marked as trusted")
	fs.StringVar(&f.runtimeFile, "runtime", "", "runtime JSON file replacing this host's x-ray (modelcache xray --json writes one)")
	fs.StringVar(&f.requestFile, "request", "", "request JSON file (compat/NEGOTIATION.md schema); flags override it")
}

// request builds the negotiation request: the --request file, then every
// flag the user set on top. deviceSet tells whether a device was chosen.
// Unreadable files are usage errors (exit 2) naming the flag; values
// negotiation rejects (a range with MIN > MAX, a word as a batch size) are
// reported by negotiation in the reference's words.
func (f *negotiationFlags) request(fs *pflag.FlagSet, cfg *config.Config) (negotiation.Request, bool, error) {
	var req negotiation.Request
	deviceSet := false
	if f.requestFile != "" {
		b, err := os.ReadFile(f.requestFile)
		if err != nil {
			return req, false, withCode(exitUsage, fmt.Errorf("--request: %w", err))
		}
		if req, err = negotiation.DecodeRequest(b); err != nil {
			return req, false, withCode(exitUsage, fmt.Errorf("--request %s: %w", f.requestFile, err))
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(b, &keys) == nil {
			_, deviceSet = keys["device"]
		}
	}
	if fs.Changed("backend") {
		req.Backends = splitList(f.backends)
	}
	if fs.Changed("quantization") {
		req.Quantization = splitList(f.quantizations)
	}
	if fs.Changed("batch-size") {
		req.BatchSize = parseBatchFlag(f.batch)
	}
	if fs.Changed("device") {
		req.Device, deviceSet = f.device, f.device != ""
	}
	if fs.Changed("onnx-providers") {
		req.ONNXExecutionProviders = nil
		for _, name := range splitList([]string{f.onnxProviders}) {
			req.ONNXExecutionProviders = append(req.ONNXExecutionProviders, negotiation.ExecutionProvider{Name: name})
		}
	}
	if fs.Changed("package-id") {
		id := f.packageID
		req.ModelPackageID = &id
	}
	if fs.Changed("allow-untrusted") {
		req.AllowUntrustedPackages = f.allowUntrusted
	}
	req.EnvONNXExecutionProviders = negotiation.ParseEnvONNXExecutionProviders(cfg.ONNXExecutionProviders)
	return req, deviceSet, nil
}

// clientOptions returns --runtime as a client option, and where the runtime
// comes from.
func (f *negotiationFlags) clientOptions() ([]modelcache.Option, string, error) {
	if f.runtimeFile == "" {
		return nil, "x-ray of this host", nil
	}
	rt, err := readRuntimeFile(f.runtimeFile)
	if err != nil {
		return nil, "", withCode(exitUsage, err)
	}
	return []modelcache.Option{modelcache.WithRuntime(rt)}, f.runtimeFile, nil
}

// splitList flattens repeated and comma-separated values; an empty value
// yields an empty (non-nil) list, which requests the empty set.
func splitList(values []string) []string {
	out := []string{}
	for _, v := range values {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
	}
	return out
}

// parseBatchFlag reads N or MIN-MAX; anything else is passed on as the
// string it is, so that negotiation reports it in the reference's words
// (InvalidRequestedBatchSizeError), as for a Python caller passing a str.
func parseBatchFlag(s string) *negotiation.BatchSize {
	s = strings.TrimSpace(s)
	if lo, hi, ok := strings.Cut(s, "-"); ok && lo != "" {
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 == nil && err2 == nil {
			return negotiation.BatchSizeRange(a, b)
		}
	}
	if n, err := strconv.Atoi(s); err == nil {
		return negotiation.ExactBatchSize(n)
	}
	return negotiation.RawBatchSize(s)
}
