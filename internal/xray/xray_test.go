package xray

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/metadata"
)

// hostFixture is one recorded host: files, tool outputs, settings and the
// expected x-ray (testdata/hosts/<name>/host.json).
type hostFixture struct {
	Description string            `json:"description"`
	Machine     string            `json:"machine"`
	Env         map[string]string `json:"env"`
	Settings    struct {
		RunningOnJetson, JetsonModule, L4TVersion string
	} `json:"settings"`
	Files            map[string]string          `json:"files"`
	Commands         map[string]json.RawMessage `json:"commands"`
	Expected         json.RawMessage            `json:"expected"`
	ExpectedSources  map[string]string          `json:"expected_sources"`
	ExpectedWarnings []string                   `json:"expected_warnings"`
}

// content resolves "@file" references relative to the fixture directory.
func content(t *testing.T, dir, v string) string {
	t.Helper()
	if ref, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(filepath.Join(dir, ref))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return v
}

// fakeRunner replays recorded command outputs; a command without a record is
// "not installed". A record may be {"stdout": ..., "error": ...}.
func fakeRunner(t *testing.T, dir string, cmds map[string]json.RawMessage, calls *[]string) Runner {
	return func(_ context.Context, name string, args ...string) ([]byte, error) {
		key := strings.Join(append([]string{name}, args...), " ")
		*calls = append(*calls, key)
		raw, ok := cmds[key]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, exec.ErrNotFound)
		}
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return []byte(content(t, dir, s)), nil
		}
		var r struct{ Stdout, Error string }
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("command %q: %v", key, err)
		}
		var err error
		if r.Error != "" {
			err = errors.New(r.Error)
		}
		return []byte(content(t, dir, r.Stdout)), err
	}
}

func loadHost(t *testing.T, name string) (hostFixture, Options, *[]string) {
	t.Helper()
	dir := filepath.Join("testdata", "hosts", name)
	b, err := os.ReadFile(filepath.Join(dir, "host.json"))
	if err != nil {
		t.Fatal(err)
	}
	var h hostFixture
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	mfs := fstest.MapFS{}
	for p, v := range h.Files {
		mfs[strings.TrimPrefix(p, "/")] = &fstest.MapFile{Data: []byte(content(t, dir, v)), Mode: 0o644}
	}
	calls := &[]string{}
	o := Options{
		RunningOnJetson: h.Settings.RunningOnJetson, JetsonModule: h.Settings.JetsonModule, L4TVersion: h.Settings.L4TVersion,
		Getenv: func(k string) (string, bool) { v, ok := h.Env[k]; return v, ok },
		Run:    fakeRunner(t, dir, h.Commands, calls),
		FS:     mfs, Machine: h.Machine,
	}
	return h, o, calls
}

func TestRecordedHosts(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "hosts"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	for _, want := range []string{"t4", "l4", "a100", "h100", "jetson-orin-nx", "cpu-only"} {
		if !slices.Contains(names, want) {
			t.Errorf("fixture %s missing", want)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			h, o, _ := loadHost(t, name)
			rt, err := Probe(context.Background(), o)
			if err != nil {
				t.Fatalf("Probe: %v", err)
			}
			var want negotiation.Runtime
			if err := json.Unmarshal(h.Expected, &want); err != nil {
				t.Fatal(err)
			}
			gotJSON, _ := json.Marshal(rt.Facts)
			wantJSON, _ := json.Marshal(want)
			if string(gotJSON) != string(wantJSON) {
				t.Errorf("facts\n got: %s\nwant: %s", gotJSON, wantJSON)
			}
			for _, f := range Fields {
				if rt.Sources[f] == "" {
					t.Errorf("no source for %s", f)
				}
			}
			for f, sub := range h.ExpectedSources {
				if !strings.Contains(rt.Sources[f], sub) {
					t.Errorf("source of %s = %q, want it to contain %q", f, rt.Sources[f], sub)
				}
			}
			if !slices.Equal(rt.Warnings, h.ExpectedWarnings) && !(len(rt.Warnings) == 0 && len(h.ExpectedWarnings) == 0) {
				t.Errorf("warnings %q, want %q", rt.Warnings, h.ExpectedWarnings)
			}
			// The JSON output reads back as the runtime schema.
			b, err := json.Marshal(rt)
			if err != nil {
				t.Fatal(err)
			}
			var back negotiation.Runtime
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if backJSON, _ := json.Marshal(back); string(backJSON) != string(gotJSON) {
				t.Errorf("round trip\n got: %s\nwant: %s", backJSON, gotJSON)
			}
			var doc map[string]json.RawMessage
			_ = json.Unmarshal(b, &doc)
			for _, k := range append(slices.Clone(Fields), "sources", "warnings") {
				if _, ok := doc[k]; !ok {
					t.Errorf("JSON lacks %q", k)
				}
			}
		})
	}
}

// TestRecordedHostsNegotiate feeds the recorded x-rays to negotiation with
// the default device: a TensorRT engine is chosen only where it can run.
func TestRecordedHostsNegotiate(t *testing.T) {
	str := func(s string) *string { return &s }
	trt := func(id, gpu, cc, trtV string, jetson bool) metadata.ModelPackage {
		env := &metadata.EnvironmentRequirements{Kind: metadata.MachineGPUServer, CUDADeviceName: gpu, CUDADeviceCC: cc,
			CUDAVersion: str("12.6"), TRTVersion: str(trtV), DriverVersion: str("550.54.15"), OSVersion: str("ubuntu-22.04")}
		if jetson {
			env = &metadata.EnvironmentRequirements{Kind: metadata.MachineJetson, CUDADeviceName: gpu, CUDADeviceCC: cc,
				L4TVersion: "36.4.3", CUDAVersion: str("12.6"), TRTVersion: str(trtV), JetsonProductName: str("jetson-orin-nx")}
		}
		return metadata.ModelPackage{PackageID: id, Backend: metadata.BackendTRT, Quantization: metadata.QuantizationFP16,
			TrustedSource: true, DynamicBatchSizeSupported: metadata.Bool(false), StaticBatchSize: metadata.Int(1),
			TRTPackageDetails: &metadata.TRTPackageDetails{}, EnvironmentRequirements: env}
	}
	task := "object-detection"
	md := &metadata.ModelMetadata{ModelID: "ws/m/1", ModelArchitecture: "rfdetr", TaskType: &task, Packages: []metadata.ModelPackage{
		trt("trtt4", "tesla-t4", "7.5", "10.5.0.18-1", false),
		trt("trth100", "nvidia-h100-80gb-hbm3", "9.0", "10.11.0.33", false),
		trt("trtorin", "orin", "8.7", "10.3.0.30-1", true),
		{PackageID: "onnx16", Backend: metadata.BackendONNX, Quantization: metadata.QuantizationFP16, TrustedSource: true,
			DynamicBatchSizeSupported: metadata.Bool(true), ONNXPackageDetails: &metadata.ONNXPackageDetails{Opset: 17}},
		{PackageID: "onnx32", Backend: metadata.BackendONNX, Quantization: metadata.QuantizationFP32, TrustedSource: true,
			DynamicBatchSizeSupported: metadata.Bool(true), ONNXPackageDetails: &metadata.ONNXPackageDetails{Opset: 17}},
		{PackageID: "torch32", Backend: metadata.BackendTorch, Quantization: metadata.QuantizationFP32, TrustedSource: true,
			DynamicBatchSizeSupported: metadata.Bool(true)},
	}}
	for _, c := range []struct {
		host, device string
		want         []string
		trtCode      negotiation.Code // why trtt4 was rejected
	}{
		// No TensorRT Python bindings on the T4 host: reported as missing details (Q10).
		{"t4", "cuda", []string{"onnx16", "onnx32", "torch32"}, negotiation.CodeTRTDetailsMissing},
		{"h100", "cuda", []string{"trth100", "onnx16", "onnx32", "torch32"}, negotiation.CodeTRTHardwareIncompatible},
		{"jetson-orin-nx", "cuda", []string{"trtorin", "onnx16", "onnx32", "torch32"}, negotiation.CodeTRTHardwareIncompatible},
		{"cpu-only", "cpu", []string{"onnx32", "torch32"}, negotiation.CodeQuantizationMismatch},
		{"a100", "cuda", []string{}, negotiation.CodeTRTDetailsMissing},
		{"l4", "cuda", []string{"onnx16", "onnx32", "torch32"}, negotiation.CodeTRTHardwareIncompatible},
	} {
		_, o, _ := loadHost(t, c.host)
		rt, err := Probe(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := negotiation.Negotiate(md, negotiation.Request{Device: c.device}, rt.Facts)
		if len(c.want) == 0 {
			if negotiation.ClassName(err) != negotiation.ClassNoModelPackagesAvailable {
				t.Errorf("%s: %v", c.host, err)
			}
		} else if err != nil || !slices.Equal(rep.Selected, c.want) {
			t.Errorf("%s: selected %v (%v), want %v", c.host, rep.Selected, err, c.want)
		}
		if rep.Packages[0].Code != c.trtCode {
			t.Errorf("%s: trtt4 rejected with %q, want %q", c.host, rep.Packages[0].Code, c.trtCode)
		}
	}
}

func TestJetsonFromEnvironment(t *testing.T) {
	mfs := fstest.MapFS{}
	o := Options{RunningOnJetson: "True", JetsonModule: "NVIDIA Jetson AGX Orin 64GB", L4TVersion: "36.4.0",
		Getenv: func(string) (string, bool) { return "", false },
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			if name == "nvidia-smi" && len(args) > 0 {
				return []byte("[N/A], [N/A], [N/A], Orin (nvgpu), [N/A]\n"), nil
			}
			return nil, exec.ErrNotFound
		},
		FS: mfs, Machine: "aarch64"}
	rt, err := Probe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	f := rt.Facts
	if *f.JetsonType != "nvidia-jetson-agx-orin" || *f.L4TVersion != "36.4.0" || f.OSVersion != nil ||
		!slices.Equal(f.GPUDevices, []string{"orin"}) || !slices.Equal(f.GPUDevicesCC, []string{"8.7"}) ||
		*f.DriverVersion != "36.4.0" {
		b, _ := json.Marshal(rt)
		t.Fatalf("jetson from env: %s", b)
	}
	if rt.Sources["l4t_version"] != "env L4T_VERSION" || !strings.Contains(rt.Sources["jetson_type"], "JETSON_MODULE") {
		t.Fatalf("sources %v", rt.Sources)
	}
}

func TestConfigurationErrors(t *testing.T) {
	base := Options{Getenv: func(string) (string, bool) { return "", false }, FS: fstest.MapFS{},
		Run: func(context.Context, string, ...string) ([]byte, error) { return nil, exec.ErrNotFound }, Machine: "x86_64"}
	o := base
	o.RunningOnJetson = "yes"
	_, err := Probe(context.Background(), o)
	var ie *InvalidEnvError
	if !errors.As(err, &ie) || ie.Variable != "RUNNING_ON_JETSON" {
		t.Fatalf("RUNNING_ON_JETSON=yes: %v", err)
	}
	o = base
	o.JetsonModule = "Raspberry Pi 5"
	_, err = Probe(context.Background(), o)
	var je *JetsonTypeResolutionError
	if !errors.As(err, &je) {
		t.Fatalf("JETSON_MODULE: %v", err)
	}
	o = base
	o.RunningOnJetson, o.L4TVersion = "true", "R36"
	_, err = Probe(context.Background(), o)
	if !errors.As(err, &ie) || ie.Variable != "L4T_VERSION" {
		t.Fatalf("L4T_VERSION: %v", err)
	}
	// A GPU named "orin" without L4T breaks the consistency rule.
	o = base
	o.RunningOnJetson = "false"
	o.Run = func(_ context.Context, name string, args ...string) ([]byte, error) {
		if name == "nvidia-smi" && len(args) > 0 {
			return []byte("0, 00000000:00:00.0, GPU-1, Orin, 8.7\n"), nil
		}
		return nil, exec.ErrNotFound
	}
	rt, err := Probe(context.Background(), o)
	if negotiation.ClassName(err) != negotiation.ClassRuntimeIntrospection || len(rt.Facts.GPUDevices) != 1 {
		t.Fatalf("orin without L4T: %v %+v", err, rt.Facts)
	}
}

func TestCUDAOrderAndVisibility(t *testing.T) {
	smi := "0, 00000000:01:00.0, GPU-aaaa1111, Tesla T4, 7.5\n1, 00000000:02:00.0, GPU-bbbb2222, NVIDIA L4, 8.9\n2, 00000000:03:00.0, GPU-aaaa3333, Tesla T4, 7.5\n"
	probe := func(env map[string]string) []string {
		o := Options{Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, FS: fstest.MapFS{}, Machine: "x86_64",
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				if name == "nvidia-smi" && len(args) > 0 {
					return []byte(smi), nil
				}
				return nil, exec.ErrNotFound
			}}
		rt, err := Probe(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		return rt.Facts.GPUDevices
	}
	for _, c := range []struct {
		env  map[string]string
		want []string
	}{
		{nil, []string{"nvidia-l4", "tesla-t4", "tesla-t4"}}, // FASTEST_FIRST approximation
		{map[string]string{"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}, []string{"tesla-t4", "nvidia-l4", "tesla-t4"}},
		{map[string]string{"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1"}, []string{"nvidia-l4"}},
		{map[string]string{"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "2,0"}, []string{"tesla-t4", "tesla-t4"}},
		{map[string]string{"CUDA_VISIBLE_DEVICES": ""}, []string{}},
		{map[string]string{"CUDA_VISIBLE_DEVICES": "-1"}, []string{}},
		{map[string]string{"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "0,7,1"}, []string{"tesla-t4"}},
		{map[string]string{"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "1,1"}, []string{"nvidia-l4"}},
		{map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-bbbb"}, []string{"nvidia-l4"}},
		{map[string]string{"CUDA_VISIBLE_DEVICES": "GPU-aaaa"}, []string{}}, // ambiguous prefix
	} {
		if got := probe(c.env); !slices.Equal(got, c.want) {
			t.Errorf("%v: %v, want %v", c.env, got, c.want)
		}
	}
}

func TestOldDriverWithoutComputeCap(t *testing.T) {
	var calls []string
	o := Options{Getenv: func(string) (string, bool) { return "", false }, FS: fstest.MapFS{}, Machine: "x86_64",
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			calls = append(calls, name+" "+strings.Join(args, " "))
			if name != "nvidia-smi" || len(args) == 0 {
				return nil, exec.ErrNotFound
			}
			if strings.Contains(args[0], "compute_cap") {
				return []byte("Field \"compute_cap\" is not a valid field to query.\n"), errors.New("exit status 2")
			}
			return []byte("0, 00000000:00:1E.0, GPU-c0ffee00, Tesla V100-SXM2-16GB\n1, 00000000:00:1F.0, GPU-c0ffee01, Quadro Mystery 9\n"), nil
		}}
	rt, err := Probe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rt.Facts.GPUDevicesCC, []string{"7.0", "0.0"}) || len(rt.Warnings) != 1 {
		t.Fatalf("cc %v warnings %v calls %v", rt.Facts.GPUDevicesCC, rt.Warnings, calls)
	}
}

func TestOSVersionFallbackAndDpkgStatus(t *testing.T) {
	mfs := fstest.MapFS{
		"etc/os-release":            {Data: []byte("ID=alpine\nPRETTY_NAME=\"Alpine Linux\"\n")},
		"proc/sys/kernel/osrelease": {Data: []byte("6.8.0-1019-gcp\n")},
		"var/lib/dpkg/status": {Data: []byte("Package: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.11\n\n" +
			"Package: libnvinfer-bin\nStatus: install ok installed\nArchitecture: amd64\nVersion: 10.3.0.26-1+cuda12.5\nDescription: TensorRT binaries\n\n" +
			"Package: cuda-cudart-12-5\nStatus: deinstall ok config-files\nVersion: 12.5.82-1\n\n" +
			"Package: cuda-cudart-12-4\nStatus: install ok installed\nVersion: 12.4.127-1\n")},
	}
	o := Options{Getenv: func(string) (string, bool) { return "", false }, FS: mfs, Machine: "x86_64",
		Run: func(context.Context, string, ...string) ([]byte, error) { return nil, exec.ErrNotFound }}
	rt, err := Probe(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	f := rt.Facts
	if *f.OSVersion != "linux-6.8.0-1019-gcp-x86_64" || *f.TRTVersion != "10.3.0.26.post1" || *f.CUDAVersion != "12.4.127.post1" {
		b, _ := json.Marshal(rt)
		t.Fatalf("%s", b)
	}
	if !strings.Contains(rt.Sources["trt_version"], "/var/lib/dpkg/status") {
		t.Fatalf("sources %v", rt.Sources)
	}
}

func TestNormalizeAndResolve(t *testing.T) {
	for in, want := range map[string]string{"Tesla T4": "tesla-t4", "NVIDIA L4": "nvidia-l4", "Orin": "orin", "Orin (nvgpu)": "orin",
		"NVIDIA A100-SXM4-80GB": "nvidia-a100-sxm4-80gb", "NVIDIA H100 80GB HBM3": "nvidia-h100-80gb-hbm3"} {
		if got := NormalizeGPUName(in); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"NVIDIA Jetson Orin NX Engineering": "nvidia-jetson-orin-nx",
		"NVIDIA Jetson AGX Xavier Industrial 32GB": "nvidia-jetson-agx-xavier-industrial", "NVIDIA Jetson AGX Xavier": "nvidia-jetson-agx-xavier",
		"NVIDIA Jetson Orin Nano Developer Kit": "nvidia-jetson-orin-nano"} {
		if got, ok := ResolveJetsonType(in); !ok || got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	if _, ok := ResolveJetsonType("Jetson Orin NX"); ok {
		t.Error("prefix without NVIDIA must not resolve")
	}
	if cc, ok := tableCC("NVIDIA L40S"); !ok || cc != "8.9" {
		t.Errorf("L40S %s", cc)
	}
	if cc, _ := tableCC("NVIDIA A10G"); cc != "8.6" {
		t.Errorf("A10G %s", cc)
	}
}

// TestProbeRealHost runs the real probe: it must finish without error on any
// machine; on this CPU-only build machine it must report no GPU.
func TestProbeRealHost(t *testing.T) {
	rt, err := Probe(context.Background(), Options{})
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if _, statErr := os.Stat("/proc/driver/nvidia/version"); errors.Is(statErr, fs.ErrNotExist) {
		if _, lookErr := exec.LookPath("nvidia-smi"); lookErr != nil && rt.Facts.GPUAvailable {
			t.Fatalf("GPU reported on a host without NVIDIA driver: %+v", rt.Facts)
		}
	}
	for _, f := range Fields {
		if rt.Sources[f] == "" {
			t.Errorf("no source for %s", f)
		}
	}
}
