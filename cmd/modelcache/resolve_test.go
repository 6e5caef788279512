package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/registry"
)

// repoRoot is the directory holding go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}

// serveExampleRegistry serves examples/registry on a loopback port and
// returns its base URL.
func serveExampleRegistry(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.Load(ctx, filepath.Join(repoRoot(t), "examples", "registry"), registry.LoadOptions{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := registry.New(reg, registry.Options{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// runCmd executes a command built by a constructor (the root may not list it).
func runCmd(t *testing.T, cmd *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func resolveConfig(t *testing.T, apiHost string) config.Config {
	c := config.Default()
	c.Home = t.TempDir()
	c.APIHost = apiHost
	return c
}

func TestResolveExplainGPURuntime(t *testing.T) {
	cfg := resolveConfig(t, serveExampleRegistry(t))
	rt := filepath.Join(repoRoot(t), "internal", "negotiation", "testdata", "runtime-gpu-l4.json")
	out, err := runCmd(t, newResolveCmd(&cfg), "acme-ws/parcel-detector/7", "--runtime", rt, "--explain")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"device cuda, runtime: " + rt,
		"quantizations: unknown, fp32, fp16 (default for the device)",
		"onnx execution providers: [CUDAExecutionProvider, CPUExecutionProvider]",
		"result: dettrtl4fp16 > detonnxfp16dyn > detonnxfp32dyn > dettorchfp32\n",
		"TRT model package is incompatible with your hardware",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^1 +dettrtl4fp16 +trt +fp16 +dynamic 1-16 +selected`).MatchString(out) {
		t.Errorf("first row is not the L4 engine:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^- +detonnxfp32nms +onnx +fp32 +static 1 +rejected: implementation`).MatchString(out) {
		t.Errorf("NMS package row:\n%s", out)
	}
	if !regexp.MustCompile(`resolution key: [0-9a-f]{64}\n`).MatchString(out) {
		t.Errorf("no resolution key:\n%s", out)
	}
}

func TestResolveJSON(t *testing.T) {
	cfg := resolveConfig(t, serveExampleRegistry(t))
	rt := filepath.Join(repoRoot(t), "internal", "negotiation", "testdata", "runtime-cpu.json")
	out, err := runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var res struct {
		ModelID          string   `json:"model_id"`
		CanonicalModelID string   `json:"canonical_model_id"`
		Selected         []string `json:"selected"`
		Candidates       []struct {
			PackageID    string  `json:"package_id"`
			Backend      string  `json:"backend"`
			Quantization *string `json:"quantization"`
			Accepted     bool    `json:"accepted"`
			Rank         *int    `json:"rank"`
			Reason       *string `json:"reason"`
		} `json:"candidates"`
		ResolutionKey *string         `json:"resolution_key"`
		Error         json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.ModelID != "parcel-det" || res.CanonicalModelID != "acme-ws/parcel-detector/7" ||
		!slices.Equal(res.Selected, []string{"detonnxfp32dyn", "dettorchfp32"}) || string(res.Error) != "null" ||
		res.ResolutionKey == nil || len(*res.ResolutionKey) != 64 || len(res.Candidates) != 8 {
		t.Fatalf("unexpected result:\n%s", out)
	}
	for _, c := range res.Candidates {
		if c.Accepted != (c.Rank != nil) || c.Accepted == (c.Reason != nil) {
			t.Errorf("inconsistent candidate %+v", c)
		}
	}
	// Same request, other flags: the key changes with the request.
	out2, err := runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--json", "--quantization", "fp32")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out2, *res.ResolutionKey) {
		t.Error("resolution key ignores the quantization request")
	}
}

func TestResolveErrors(t *testing.T) {
	cfg := resolveConfig(t, serveExampleRegistry(t))
	rt := filepath.Join(repoRoot(t), "internal", "negotiation", "testdata", "runtime-gpu-l4.json")
	for _, c := range []struct {
		args  []string
		class string
		text  string
	}{
		{[]string{"--backend", "hf"}, "UnknownBackendTypeError", "Requested backend of type 'hf'"},
		{[]string{"--quantization", "FP16"}, "UnknownQuantizationError", "'FP16'"},
		{[]string{"--batch-size", "8-4"}, "InvalidRequestedBatchSizeError", "`max_batch_size` is lower than `min_batch_size`"},
		{[]string{"--batch-size", "eight"}, "InvalidRequestedBatchSizeError", "has type str"},
		{[]string{"--package-id", "nope"}, "NoModelPackagesAvailableError", "Requested model package ID: nope cannot be resolved"},
		{[]string{"--device", "cuda:3"}, "ModelPackageNegotiationError", "selected device: cuda:3"},
		{[]string{"--backend", "trt", "--quantization", "int8"}, "NoModelPackagesAvailableError",
			"\t* 4 packages with the following note: Package does not match requested quantization ['int8'] (which was selected by caller)."},
	} {
		args := append([]string{"acme-ws/parcel-detector/7", "--runtime", rt, "--json"}, c.args...)
		out, err := runCmd(t, newResolveCmd(&cfg), args...)
		var ns *errNothingSelected
		if !errors.As(err, &ns) {
			t.Errorf("%v: err %v, want a non-zero exit", c.args, err)
			continue
		}
		var res struct {
			Error *struct{ Type, Message string } `json:"error"`
		}
		if json.Unmarshal([]byte(out), &res) != nil || res.Error == nil {
			t.Errorf("%v: output\n%s", c.args, out)
			continue
		}
		if res.Error.Type != c.class || !strings.Contains(res.Error.Message, c.text) {
			t.Errorf("%v: error %+v, want %s containing %q", c.args, res.Error, c.class, c.text)
		}
	}
	// Unknown model: the provider's error class.
	out, err := runCmd(t, newResolveCmd(&cfg), "acme-ws/unknown/1", "--runtime", rt, "--json")
	if err == nil || !strings.Contains(out, `"type": "ModelNotFoundError"`) {
		t.Errorf("unknown model: %v\n%s", err, out)
	}
}

func TestResolveRequestFile(t *testing.T) {
	cfg := resolveConfig(t, serveExampleRegistry(t))
	dir := t.TempDir()
	rt := filepath.Join(repoRoot(t), "internal", "negotiation", "testdata", "runtime-gpu-l4.json")
	reqFile := filepath.Join(dir, "request.json")
	// device null is device=None: the x-ray decides the default quantization
	// and TorchScript would be refused; the flags override the file.
	if err := os.WriteFile(reqFile, []byte(`{"device": null, "backend": ["onnx", "torch"], "quantization": ["fp32"]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--request", reqFile, "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `"selected": [
    "detonnxfp32dyn",
    "dettorchfp32"
  ]`) || !strings.Contains(out, `"device": null`) || !strings.Contains(out, `"resolution_key": null`) {
		t.Errorf("request file:\n%s", out)
	}
	out, err = runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--request", reqFile, "--json", "--backend", "torch", "--device", "cpu")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `"selected": [
    "dettorchfp32"
  ]`) || !strings.Contains(out, `"device": "cpu"`) {
		t.Errorf("flags over request file:\n%s", out)
	}
	if err := os.WriteFile(reqFile, []byte(`{"devise": "cpu"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--request", reqFile); err == nil || !strings.Contains(err.Error(), "devise") {
		t.Errorf("misspelt key accepted: %v", err)
	}
}

func TestResolveDefaultDeviceAndProviders(t *testing.T) {
	cfg := resolveConfig(t, serveExampleRegistry(t))
	rt := filepath.Join(repoRoot(t), "internal", "negotiation", "testdata", "runtime-gpu-l4.json")
	cfg.DefaultDevice = "cpu"
	out, err := runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--explain")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// On cpu, auto-selection still makes CUDA the primary provider (Q15).
	if !strings.Contains(out, "device cpu") || !strings.Contains(out, "note: The primary ONNX execution provider is CUDAExecutionProvider although the device is cpu") {
		t.Errorf("DEFAULT_DEVICE=cpu:\n%s", out)
	}
	cfg.DefaultDevice = ""
	out, err = runCmd(t, newResolveCmd(&cfg), "parcel-det", "--runtime", rt, "--onnx-providers", "TensorrtExecutionProvider,CUDAExecutionProvider", "--json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// TensorRT EP primary: the fp32 package excludes it.
	if !strings.Contains(out, "Model package cannot be run with default ONNX Execution Provider: TensorrtExecutionProvider") {
		t.Errorf("explicit providers:\n%s", out)
	}
}

func TestXrayCmd(t *testing.T) {
	cfg := config.Default()
	out, err := runCmd(t, newXrayCmd(&cfg), "--json")
	if err != nil {
		t.Fatalf("xray --json: %v\n%s", err, out)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	for _, k := range []string{"gpu_available", "gpu_devices", "os_version", "available_onnx_execution_providers", "sources", "warnings"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("xray --json lacks %q", k)
		}
	}
	var rt negotiation.Runtime
	if err := json.Unmarshal([]byte(out), &rt); err != nil {
		t.Fatal(err)
	}
	_, smiErr := exec.LookPath("nvidia-smi")
	_, procErr := os.Stat("/proc/driver/nvidia/version")
	if smiErr != nil && procErr != nil && (rt.GPUAvailable || len(rt.GPUDevices) != 0) {
		t.Errorf("a host without NVIDIA driver reports GPUs: %s", out)
	}
	text, err := runCmd(t, newXrayCmd(&cfg))
	if err != nil || !strings.HasPrefix(text, "FACT ") || !strings.Contains(text, "\nos_version ") {
		t.Errorf("xray table: %v\n%s", err, text)
	}
	// A Jetson setting the reference refuses is an error.
	bad := config.Default()
	bad.RunningOnJetson = "maybe"
	if _, err := runCmd(t, newXrayCmd(&bad), "--json"); err == nil || !strings.Contains(err.Error(), "RUNNING_ON_JETSON") {
		t.Errorf("RUNNING_ON_JETSON=maybe: %v", err)
	}
}
