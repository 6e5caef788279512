package negotiation

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Acceptance vectors of negotiation.md §10, re-created.

func sp(s string) *string { return &s }

func cpuRuntime() Runtime {
	return Runtime{OSVersion: sp("ubuntu-22.04"), TorchAvailable: true, TorchVersion: sp("2.6.0"),
		TorchvisionVersion: sp("0.21.0"), ONNXRuntimeVersion: sp("1.20.0"),
		AvailableONNXExecutionProviders: []string{"CPUExecutionProvider"}, HFTransformersAvailable: true}
}

func gpuRuntime() Runtime {
	return Runtime{GPUAvailable: true, GPUDevices: []string{"tesla-t4", "nvidia-l4"}, GPUDevicesCC: []string{"7.5", "8.7"},
		DriverVersion: sp("510.0.4"), CUDAVersion: sp("12.6"), TRTVersion: sp("10.5.0.11"), OSVersion: sp("ubuntu-20.04"),
		TorchAvailable: true, TorchVersion: sp("2.7.0"), TorchvisionVersion: sp("0.22.0"), ONNXRuntimeVersion: sp("1.22.0"),
		AvailableONNXExecutionProviders: []string{"CUDAExecutionProvider", "CPUExecutionProvider", "TensorrtExecutionProvider"},
		HFTransformersAvailable:         true, TRTPythonPackageAvailable: true}
}

func jetsonRuntime() Runtime {
	return Runtime{GPUAvailable: true, GPUDevices: []string{"orin"}, GPUDevicesCC: []string{"8.9"}, DriverVersion: sp("510.0.4"),
		CUDAVersion: sp("12.6"), TRTVersion: sp("10.3.0.11"), L4TVersion: sp("36.4.3"), JetsonType: sp("jetson-orin-nx"),
		TorchAvailable: true, TorchVersion: sp("2.7.0"), TorchvisionVersion: sp("0.22.0"), ONNXRuntimeVersion: sp("1.22.0"),
		AvailableONNXExecutionProviders: []string{"CUDAExecutionProvider", "CPUExecutionProvider"},
		HFTransformersAvailable:         true, TRTPythonPackageAvailable: true}
}

type opt func(*metadata.ModelPackage)

func pkg(id string, b metadata.BackendType, q metadata.Quantization, opts ...opt) metadata.ModelPackage {
	p := metadata.ModelPackage{PackageID: id, Backend: b, Quantization: q, TrustedSource: true,
		DynamicBatchSizeSupported: metadata.Bool(true), PackageSource: metadata.SourcePlatform}
	switch b {
	case metadata.BackendONNX:
		p.ONNXPackageDetails = &metadata.ONNXPackageDetails{Opset: 17}
	case metadata.BackendTRT:
		p.TRTPackageDetails = &metadata.TRTPackageDetails{}
		p.DynamicBatchSizeSupported = metadata.Bool(false)
		p.StaticBatchSize = metadata.Int(1)
		p.EnvironmentRequirements = &metadata.EnvironmentRequirements{Kind: metadata.MachineGPUServer,
			CUDADeviceName: "nvidia-l4", CUDADeviceCC: "8.7", CUDAVersion: sp("12.6"), TRTVersion: sp("10.5.0.11"),
			DriverVersion: sp("510.0.4"), OSVersion: sp("ubuntu-20.04")}
	case metadata.BackendHuggingFace, metadata.BackendUltralytics:
		p.DynamicBatchSizeSupported = nil
	}
	for _, o := range opts {
		o(&p)
	}
	return p
}

func untrusted(p *metadata.ModelPackage) { p.TrustedSource = false }
func opset(n int) opt                    { return func(p *metadata.ModelPackage) { p.ONNXPackageDetails.Opset = n } }
func static(n int) opt {
	return func(p *metadata.ModelPackage) {
		p.DynamicBatchSizeSupported, p.StaticBatchSize = metadata.Bool(false), metadata.Int(n)
	}
}
func dynTRT(lo, opt, hi int) opt {
	return func(p *metadata.ModelPackage) {
		p.DynamicBatchSizeSupported, p.StaticBatchSize = metadata.Bool(true), nil
		p.TRTPackageDetails.MinDynamicBatchSize = metadata.Int(lo)
		p.TRTPackageDetails.OptDynamicBatchSize = metadata.Int(opt)
		p.TRTPackageDetails.MaxDynamicBatchSize = metadata.Int(hi)
	}
}
func device(name, cc string) opt {
	return func(p *metadata.ModelPackage) {
		p.EnvironmentRequirements.CUDADeviceName, p.EnvironmentRequirements.CUDADeviceCC = name, cc
	}
}
func trtVersion(v string) opt {
	return func(p *metadata.ModelPackage) { p.EnvironmentRequirements.TRTVersion = sp(v) }
}
func cudaVersion(v string) opt {
	return func(p *metadata.ModelPackage) { p.EnvironmentRequirements.CUDAVersion = sp(v) }
}
func sameCC(p *metadata.ModelPackage)  { p.TRTPackageDetails.SameCCCompatible = true }
func forward(p *metadata.ModelPackage) { p.TRTPackageDetails.TRTForwardCompatible = true }
func lean(p *metadata.ModelPackage)    { p.TRTPackageDetails.TRTLeanRuntimeExcluded = true }
func jetson(name, cc, l4t, trt string) opt {
	return func(p *metadata.ModelPackage) {
		p.EnvironmentRequirements = &metadata.EnvironmentRequirements{Kind: metadata.MachineJetson, CUDADeviceName: name,
			CUDADeviceCC: cc, L4TVersion: l4t, TRTVersion: sp(trt), CUDAVersion: sp("12.6"), JetsonProductName: sp("jetson-orin-nx"),
			DriverVersion: sp("540.4.0")}
	}
}

func model(arch, task string, pkgs ...metadata.ModelPackage) *metadata.ModelMetadata {
	return &metadata.ModelMetadata{ModelID: "ws/m/1", ModelArchitecture: arch, TaskType: &task, Packages: pkgs}
}

func mustSelect(t *testing.T, md *metadata.ModelMetadata, req Request, rt Runtime, want ...string) *Report {
	t.Helper()
	rep, err := Negotiate(md, req, rt)
	if err != nil {
		t.Fatalf("Negotiate: %s: %v", ClassName(err), err)
	}
	if !slices.Equal(rep.Selected, want) {
		t.Fatalf("selected %v, want %v", rep.Selected, want)
	}
	return rep
}

func TestParseRequestValues(t *testing.T) {
	md := model("rfdetr", "object-detection", pkg("a", metadata.BackendONNX, metadata.QuantizationFP16))
	rt := gpuRuntime()
	// 1. quantization and backend parsing.
	mustSelect(t, md, Request{Device: "cuda", Quantization: []string{"fp16"}}, rt, "a")
	_, err := Negotiate(md, Request{Device: "cuda", Quantization: []string{"FP16"}}, rt)
	var uq *UnknownQuantizationError
	if !errors.As(err, &uq) || uq.Value != "FP16" || !strings.Contains(Message(err), "Supported values: ['FP32', 'FP16', 'BF16', 'INT8', 'UNKNOWN'].") ||
		!strings.Contains(Message(err), "request `fp16`") {
		t.Fatalf("FP16: %v", err)
	}
	set, err := parseQuantizations([]string{"bf16", "bf16", "fp16"})
	if err != nil || !slices.Equal(set, []metadata.Quantization{"bf16", "fp16"}) {
		t.Fatalf("set %v %v", set, err)
	}
	mustSelect(t, md, Request{Device: "cuda", Backends: []string{"TRT", "Onnx"}}, rt, "a")
	for _, bad := range []string{"hf", "unknown"} {
		_, err := Negotiate(md, Request{Device: "cuda", Backends: []string{bad}}, rt)
		var ub *UnknownBackendTypeError
		if !errors.As(err, &ub) || ub.Value != bad || !errors.Is(err, ErrNegotiation) {
			t.Fatalf("%s: %v", bad, err)
		}
		if !strings.Contains(Message(err), "Supported backends: ['torch', 'torch-script', 'onnx', 'trt', 'hugging-face', 'ultralytics', 'custom'].") ||
			(bad == "hf") != strings.Contains(Message(err), "request `hugging-face`") {
			t.Fatalf("%s: message %q", bad, Message(err))
		}
	}
}

func TestBatchSizeParsing(t *testing.T) {
	for _, c := range []struct {
		b      *BatchSize
		lo, hi int64
	}{{ExactBatchSize(8), 8, 8}, {BatchSizeRange(8, 16), 8, 16}, {RawBatchSize(true), 1, 1},
		{RawBatchSize(pyjson.Tuple{pyjson.NewInt(2), pyjson.NewInt(4)}), 2, 4}} {
		lo, hi, err := c.b.Parse()
		if err != nil || lo != c.lo || hi != c.hi {
			t.Errorf("%v: (%d, %d) %v", c.b.Value(), lo, hi, err)
		}
	}
	for _, c := range []struct {
		b      *BatchSize
		detail string
	}{
		{ExactBatchSize(0), "`requested_batch_size` is <= 0"},
		{RawBatchSize("some"), "detected single value which is not integer but has type str"},
		{RawBatchSize(8.0), "has type float"},
		{RawBatchSize([]any{pyjson.NewInt(8), "16"}), "has type str"},
		{BatchSizeRange(0, 16), "<= 0"},
		{BatchSizeRange(16, 8), "`max_batch_size` is lower than `min_batch_size`"},
		{RawBatchSize([]any{pyjson.NewInt(1), pyjson.NewInt(2), pyjson.NewInt(3)}), "detected tuple of invalid size (3)"},
	} {
		_, _, err := c.b.Parse()
		var e *InvalidRequestedBatchSizeError
		if !errors.As(err, &e) || !strings.Contains(e.Message, c.detail) ||
			!strings.HasPrefix(e.Message, "Could not parse batch size requested from model package negotiation procedure.") {
			t.Errorf("%v: %v", c.b.Value(), err)
		}
	}
}

func TestDefaultQuantization(t *testing.T) {
	var pkgs []metadata.ModelPackage
	for _, q := range metadata.AllQuantizations() {
		pkgs = append(pkgs, pkg("q"+string(q), metadata.BackendONNX, q))
	}
	md := model("rfdetr", "object-detection", pkgs...)
	noGPUs := gpuRuntime()
	noGPUs.GPUDevices, noGPUs.GPUDevicesCC = []string{}, []string{}
	for _, c := range []struct {
		dev  string
		rt   Runtime
		want []metadata.Quantization
	}{
		{"cpu", gpuRuntime(), []metadata.Quantization{"unknown", "fp32", "bf16"}},
		{"cuda", gpuRuntime(), []metadata.Quantization{"unknown", "fp32", "fp16"}},
		{"mps", cpuRuntime(), []metadata.Quantization{"unknown", "fp32", "fp16"}},
		{"", gpuRuntime(), []metadata.Quantization{"unknown", "fp32", "fp16"}},
		{"", noGPUs, []metadata.Quantization{"unknown", "fp32", "fp16", "bf16"}},
	} {
		rep, err := Negotiate(md, Request{Device: c.dev}, c.rt)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.QuantizationByDefault || !slices.Equal(rep.Quantizations, c.want) {
			t.Errorf("device %q: %v (default %v), want %v", c.dev, rep.Quantizations, rep.QuantizationByDefault, c.want)
		}
		if slices.Contains(rep.Selected, "qint8") {
			t.Errorf("device %q: int8 selected by default", c.dev)
		}
	}
}

func TestTRTDeviceCheck(t *testing.T) {
	rt := gpuRuntime()
	rt.GPUDevicesCC = []string{"7.5", "8.7"}
	for _, c := range []struct {
		dev      string
		same     bool
		name, cc string
		ok       bool
	}{
		{"", false, "nvidia-l4", "8.7", true}, {"", false, "nvidia-l40", "8.9", false},
		{"", true, "nvidia-l40", "8.8", false}, {"", true, "nvidia-l40", "8.7", true},
		{"cpu", true, "nvidia-l4", "8.7", false}, {"cuda:1", false, "nvidia-l4", "8.7", true},
		{"cuda:1", false, "nvidia-l40", "8.7", false}, {"cuda:1", true, "nvidia-l40", "8.7", true},
		{"cuda:0", true, "nvidia-l4", "8.7", false}, {"cuda:1", false, "NVIDIA-L4", "8.7", false},
	} {
		opts := []opt{device(c.name, c.cc)}
		if c.same {
			opts = append(opts, sameCC)
		}
		md := model("rfdetr", "object-detection", pkg("t", metadata.BackendTRT, metadata.QuantizationFP16, opts...))
		rep, err := Negotiate(md, Request{Device: c.dev, Quantization: []string{}}, rt)
		got := err == nil && len(rep.Selected) == 1
		if got != c.ok {
			t.Errorf("%+v: accepted %v (%v)", c, got, err)
		}
		if !c.ok && rep != nil && len(rep.Rejections) == 1 && rep.Rejections[0].Code != CodeTRTHardwareIncompatible {
			t.Errorf("%+v: code %s", c, rep.Rejections[0].Code)
		}
	}
	md := model("rfdetr", "object-detection", pkg("t", metadata.BackendTRT, metadata.QuantizationFP16))
	_, err := Negotiate(md, Request{Device: "cuda:2"}, rt)
	var base *ModelPackageNegotiationError
	if !errors.As(err, &base) || ClassName(err) != ClassModelPackageNegotiation ||
		!strings.Contains(base.Message, "selected device: cuda:2 which does not match runtime introspection results") {
		t.Fatalf("cuda:2: %v", err)
	}
	// Without TRT packages a bad index goes unnoticed.
	md = model("rfdetr", "object-detection", pkg("o", metadata.BackendONNX, metadata.QuantizationFP16))
	mustSelect(t, md, Request{Device: "cuda:2"}, rt, "o")
}

func TestONNXOpsetAndProviders(t *testing.T) {
	for _, c := range []struct {
		ort   string
		opset int
		ok    bool
	}{{"1.10.0", 19, true}, {"1.10.0", 20, false}, {"1.22.0", 23, true}, {"1.22.0", 24, false}, {"1.23", 20, false},
		{"1.17.3", 20, true}, {"1.18", 21, true}, {"2.0", 20, false}} {
		rt := cpuRuntime()
		rt.ONNXRuntimeVersion = sp(c.ort)
		md := model("rfdetr", "object-detection", pkg("o", metadata.BackendONNX, metadata.QuantizationFP32, opset(c.opset)))
		rep, err := Negotiate(md, Request{Device: "cpu"}, rt)
		if got := err == nil; got != c.ok {
			t.Errorf("ORT %s opset %d: accepted %v", c.ort, c.opset, got)
		}
		if !c.ok && rep.Packages[0].Code != CodeONNXOpsetTooHigh {
			t.Errorf("ORT %s opset %d: %s", c.ort, c.opset, rep.Packages[0].Code)
		}
	}
	rt := gpuRuntime()
	rt.AvailableONNXExecutionProviders = []string{"CPUExecutionProvider", "TensorrtExecutionProvider", "CUDAExecutionProvider"}
	incompat := func(p *metadata.ModelPackage) {
		p.ONNXPackageDetails.IncompatibleProviders = []string{"CUDAExecutionProvider"}
	}
	md := model("rfdetr", "object-detection", pkg("o", metadata.BackendONNX, metadata.QuantizationFP32, incompat))
	eps := func(names ...string) []ExecutionProvider {
		var out []ExecutionProvider
		for _, n := range names {
			out = append(out, ExecutionProvider{Name: n})
		}
		return out
	}
	rep, err := Negotiate(md, Request{Device: "cuda", ONNXExecutionProviders: eps("CUDAExecutionProvider", "TensorrtExecutionProvider")}, rt)
	if err == nil || rep.Packages[0].Reason != "Model package cannot be run with default ONNX Execution Provider: CUDAExecutionProvider" {
		t.Fatalf("explicit CUDA first: %v", err)
	}
	mustSelect(t, md, Request{Device: "cuda", ONNXExecutionProviders: eps("TensorrtExecutionProvider", "CUDAExecutionProvider")}, rt, "o")
	// Auto selection: the env list order wins, the device is ignored (Q15).
	rep, _ = Negotiate(md, Request{Device: "cpu"}, rt)
	if rep.Packages[0].Code != CodeONNXPrimaryProviderIncompatible || len(rep.Notes) == 0 {
		t.Fatalf("auto on cpu: %+v %v", rep.Packages[0], rep.Notes)
	}
	// Options-carrying entries never match (Q3).
	withOpts := []ExecutionProvider{{Name: "TensorrtExecutionProvider", Options: pyjson.ObjectOf("device_id", pyjson.NewInt(0))}}
	rep, _ = Negotiate(md, Request{Device: "cuda", ONNXExecutionProviders: withOpts}, rt)
	if rep.Packages[0].Code != CodeONNXNoSelectedProviderAvailable {
		t.Fatalf("tuple providers: %+v", rep.Packages[0])
	}
	// The configured list restricts auto-selection.
	mustSelect(t, md, Request{Device: "cuda", EnvONNXExecutionProviders: ParseEnvONNXExecutionProviders("[TensorrtExecutionProvider, CPUExecutionProvider]")}, rt, "o")
}

func TestTRTServerVersions(t *testing.T) {
	rt := gpuRuntime()
	rt.GPUDevices, rt.GPUDevicesCC = []string{"tesla-t4"}, []string{"7.5"}
	t4 := device("tesla-t4", "7.5")
	for _, c := range []struct {
		name    string
		rt      string
		opts    []opt
		noHost  bool
		wantErr Code
	}{
		{"exact", "10.5.0.11", []opt{t4, trtVersion("10.5.0.11")}, false, ""},
		{"trailing zero", "10.5.0.11.0", []opt{t4, trtVersion("10.5.0.11")}, false, ""},
		{"not forward newer pkg", "10.5.0.11", []opt{t4, trtVersion("10.5.1.11")}, false, CodeTRTVersionIncompatible},
		{"not forward older pkg", "10.5.1.11", []opt{t4, trtVersion("10.5.0.0")}, false, CodeTRTVersionIncompatible},
		{"post release differs", "10.5.0.11", []opt{t4, trtVersion("10.5.0.11-1")}, false, CodeTRTVersionIncompatible},
		{"forward newer pkg", "10.5.0.11", []opt{t4, forward, trtVersion("10.5.1.11")}, false, CodeTRTVersionIncompatible},
		{"forward older pkg", "10.5.1.11", []opt{t4, forward, trtVersion("10.5.0.0")}, false, ""},
		{"forward lean excluded", "10.5.1.11", []opt{t4, forward, lean, trtVersion("10.5.0.0")}, false, CodeTRTLeanRuntimeExcluded},
		{"forward host code off", "10.5.1.11", []opt{t4, forward, trtVersion("10.5.0.0")}, true, CodeTRTHostCodeNotAllowed},
		{"lean but exact", "10.5.0.11", []opt{t4, lean, trtVersion("10.5.0.11")}, false, ""},
	} {
		r := rt
		r.TRTVersion = sp(c.rt)
		md := model("rfdetr", "object-detection", pkg("t", metadata.BackendTRT, metadata.QuantizationFP16, c.opts...))
		rep, err := Negotiate(md, Request{Device: "cuda", DisallowTRTEngineHostCode: c.noHost}, r)
		if c.wantErr == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || rep.Packages[0].Code != c.wantErr {
			t.Errorf("%s: got %v, want %s", c.name, rep.Packages[0].Code, c.wantErr)
		}
	}
}

func TestTRTJetson(t *testing.T) {
	rt := jetsonRuntime()
	rt.L4TVersion, rt.TRTVersion = sp("36.4.0"), sp("10.3.0.11-1")
	for _, c := range []struct {
		name   string
		rtTRT  string
		rtL4T  string
		opts   []opt
		reject Code
	}{
		{"exact", "", "", []opt{jetson("orin", "8.9", "36.4.3", "10.3.0.11-1")}, ""},
		{"other name", "", "", []opt{jetson("orin-super", "8.9", "36.4.3", "10.3.0.11-1")}, CodeTRTHardwareIncompatible},
		{"other name same cc", "", "", []opt{jetson("orin-super", "8.9", "36.4.3", "10.3.0.11-1"), sameCC}, ""},
		{"same cc other trt", "", "", []opt{jetson("orin-super", "8.9", "36.4.3", "10.3.0.11"), sameCC}, CodeTRTVersionIncompatible},
		{"older runtime trt", "10.2.0.11", "", []opt{jetson("orin", "8.9", "36.4.3", "10.3.0.11-1")}, CodeTRTVersionIncompatible},
		{"other L4T", "", "36.0.0", []opt{jetson("orin", "8.9", "36.4.3", "10.3.0.11-1")}, CodeTRTL4TIncompatible},
		{"forward", "10.5.0.11", "", []opt{jetson("orin", "8.9", "36.4.3", "10.3.0.11-1"), forward}, ""},
	} {
		r := rt
		if c.rtTRT != "" {
			r.TRTVersion = sp(c.rtTRT)
		}
		if c.rtL4T != "" {
			r.L4TVersion = sp(c.rtL4T)
		}
		md := model("rfdetr", "object-detection", pkg("t", metadata.BackendTRT, metadata.QuantizationFP16, c.opts...))
		rep, err := Negotiate(md, Request{Device: "cuda:0"}, r)
		if c.reject == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if err == nil || rep.Packages[0].Code != c.reject {
			t.Errorf("%s: got %v, want %s", c.name, rep.Packages[0].Code, c.reject)
		}
	}
	// A GPU named exactly "orin" without L4T is inconsistent.
	r := rt
	r.L4TVersion = nil
	md := model("rfdetr", "object-detection", pkg("o", metadata.BackendONNX, metadata.QuantizationFP32))
	_, err := Negotiate(md, Request{Device: "cuda"}, r)
	var ri *RuntimeIntrospectionError
	if !errors.As(err, &ri) || !strings.Contains(ri.Message, "L4T version cannot be established") {
		t.Fatalf("orin without L4T: %v", err)
	}
}

// TestRanking: each pair is also run with ids swapped, so that the intended
// key decides and not the id tie-break.
func TestRanking(t *testing.T) {
	gpu := gpuRuntime()
	type tc struct {
		name string
		pkgs []metadata.ModelPackage
		want []string
		rt   Runtime
		req  Request
	}
	onnx := func(id string, o ...opt) metadata.ModelPackage {
		return pkg(id, metadata.BackendONNX, metadata.QuantizationFP32, o...)
	}
	trt := func(id string, o ...opt) metadata.ModelPackage {
		return pkg(id, metadata.BackendTRT, metadata.QuantizationFP32, o...)
	}
	cases := []tc{
		{"trust", []metadata.ModelPackage{trt("1", untrusted), trt("2")}, []string{"2", "1"}, gpu, Request{Device: "cuda:1", AllowUntrustedPackages: true}},
		{"quantization", []metadata.ModelPackage{trt("1"), onnx("2"), pkg("3", metadata.BackendONNX, "int8"), pkg("4", metadata.BackendONNX, "fp16"),
			pkg("5", metadata.BackendONNX, "unknown")}, []string{"1", "3", "4", "2", "5"}, gpu, Request{Device: "cuda:1", Quantization: []string{}}},
		{"dynamic before static", []metadata.ModelPackage{onnx("s", static(1)), onnx("d")}, []string{"d", "s"}, gpu, Request{Device: "cuda:1"}},
		{"smaller static first", []metadata.ModelPackage{onnx("s5", static(5)), onnx("s3", static(3))}, []string{"s3", "s5"}, gpu, Request{Device: "cuda:1"}},
		{"opset", []metadata.ModelPackage{onnx("o17", opset(17)), trt("t"), onnx("o19", opset(19))}, []string{"t", "o19", "o17"}, gpu, Request{Device: "cuda:1"}},
		{"older cuda first", []metadata.ModelPackage{trt("c128", cudaVersion("12.8")), trt("c124", cudaVersion("12.4"))}, []string{"c124", "c128"}, gpu, Request{Device: "cuda:1"}},
		{"older trt first", []metadata.ModelPackage{trt("t104", forward, trtVersion("10.4")), trt("t102", forward, trtVersion("10.2"))}, []string{"t102", "t104"}, gpu, Request{Device: "cuda:1"}},
		{"exact before forward", []metadata.ModelPackage{trt("f", forward), trt("e")}, []string{"e", "f"}, gpu, Request{Device: "cuda:1"}},
		{"name before same cc", []metadata.ModelPackage{trt("c", sameCC), trt("n")}, []string{"n", "c"}, gpu, Request{Device: "cuda:1"}},
		{"wider span", []metadata.ModelPackage{trt("w8", dynTRT(1, 4, 8)), trt("w16", dynTRT(1, 8, 16))}, []string{"w16", "w8"}, gpu, Request{Device: "cuda:1"}},
		{"id tie-break", []metadata.ModelPackage{onnx("id-1"), onnx("id-2")}, []string{"id-2", "id-1"}, gpu, Request{Device: "cuda:1"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mustSelect(t, model("resnet", "classification", c.pkgs...), c.req, c.rt, c.want...)
			if c.name == "id tie-break" || len(c.pkgs) != 2 {
				return
			}
			// Swap the ids: the order of the packages (by content) must not change.
			sw := slices.Clone(c.pkgs)
			sw[0].PackageID, sw[1].PackageID = sw[1].PackageID, sw[0].PackageID
			want := slices.Clone(c.want)
			for i, id := range want {
				if id == c.pkgs[0].PackageID {
					want[i] = c.pkgs[1].PackageID
				} else {
					want[i] = c.pkgs[0].PackageID
				}
			}
			mustSelect(t, model("resnet", "classification", sw...), c.req, c.rt, want...)
		})
	}
}

// TestBackendRanking is the spec's [1:trt, 4:onnx, 3:ultralytics,
// 2:hugging-face] -> [1, 4, 2, 3]; ultralytics never survives the filters
// (no implementation, no matcher), so the ranking step is called directly.
func TestBackendRanking(t *testing.T) {
	md := model("vit", "classification", pkg("1", metadata.BackendTRT, "fp32"), pkg("4", metadata.BackendONNX, "fp32"),
		pkg("3", metadata.BackendUltralytics, "unknown"), pkg("2", metadata.BackendHuggingFace, "fp32"))
	n := &negotiation{md: md, rt: gpuRuntime(), reg: newRegistry(), rep: &Report{}}
	ranked, _, err := n.rank([]int{0, 1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, i := range ranked {
		ids = append(ids, md.Packages[i].PackageID)
	}
	if !slices.Equal(ids, []string{"1", "4", "2", "3"}) {
		t.Fatalf("ranked %v", ids)
	}
	// And through the filters: torch before hugging-face before torch-script.
	md = model("vit", "classification", pkg("h", metadata.BackendHuggingFace, "fp32"), pkg("o", metadata.BackendONNX, "fp32"),
		pkg("t", metadata.BackendTRT, "fp32"))
	mustSelect(t, md, Request{Device: "cuda:1"}, gpuRuntime(), "t", "o", "h")
}

func TestVersionRanks(t *testing.T) {
	mk := func(v string) metadata.ModelPackage {
		p := pkg("x", metadata.BackendTRT, "fp32")
		if v == "" {
			p.EnvironmentRequirements = nil
		} else {
			p.EnvironmentRequirements.CUDAVersion = sp(v)
			p.EnvironmentRequirements.TRTVersion = sp(v)
		}
		return p
	}
	pkgs := []metadata.ModelPackage{mk("12.6"), mk("12.5"), mk("12.7"), mk("")}
	r := versionRanks([]int{0, 1, 2, 3}, pkgs, func(e *metadata.EnvironmentRequirements) *string { return e.CUDAVersion })
	if got := []int{r[0], r[1], r[2], r[3]}; !slices.Equal(got, []int{-1, 0, -2, -3}) {
		t.Fatalf("CUDA ranks %v", got)
	}
	pkgs = []metadata.ModelPackage{mk("10.3.0.4"), mk("10.3.0.3"), mk("10.3.0.2"), mk(""), mk("10.3.0.3.0")}
	r = versionRanks([]int{0, 1, 2, 3, 4}, pkgs, func(e *metadata.EnvironmentRequirements) *string { return e.TRTVersion })
	if got := []int{r[0], r[1], r[2], r[3], r[4]}; !slices.Equal(got, []int{-2, -1, 0, -4, -1}) {
		t.Fatalf("TRT ranks %v", got)
	}
	// Q5: a null version in requirements is ranked like no requirements, no crash.
	nullV := mk("12.6")
	nullV.EnvironmentRequirements.CUDAVersion = nil
	r = versionRanks([]int{0, 1}, []metadata.ModelPackage{nullV, mk("12.6")}, func(e *metadata.EnvironmentRequirements) *string { return e.CUDAVersion })
	if r[0] != -1 || r[1] != 0 {
		t.Fatalf("null version ranks %v", r)
	}
}

func TestNMSScoreVectors(t *testing.T) {
	for _, c := range []struct {
		lo, hi, v, want float64
	}{{0, 1200, 300, 0.75}, {100, 600, 300, 0.9}, {300, 500, 300, 0.5}, {0, 1, 0.4, 0.9}, {0.7, 1.0, 0.7, 0.5},
		{0.5, 0.5, 0.5, 1}, {0.5, 0.5, 0.6, 0}, {300, 500, 299, 0}} {
		if got := closeness(c.lo, c.hi, c.v); got < c.want-1e-5 || got > c.want+1e-5 {
			t.Errorf("closeness(%v, %v, %v) = %v, want %v", c.lo, c.hi, c.v, got, c.want)
		}
	}
	feat := pyjson.ObjectOf("nms_fused", pyjson.ObjectOf("max_detections", pyjson.NewInt(300),
		"confidence_threshold", 0.4, "iou_threshold", 0.7, "class_agnostic", true))
	p := pkg("n", metadata.BackendONNX, "fp32", func(p *metadata.ModelPackage) { p.ModelFeatures = feat })
	prefs, err := parseNMSPrefs(pyjson.ObjectOf(
		"max_detections", []any{pyjson.NewInt(500), pyjson.NewInt(300)},
		"confidence_threshold", []any{0.0, 1.0},
		"iou_threshold", []any{0.7, 1.0}))
	if err != nil {
		t.Fatal(err)
	}
	if got := nmsScore(&p, prefs); got < 1.9-1e-5 || got > 1.9+1e-5 {
		t.Fatalf("score %v, want 1.9", got)
	}
	prefs.prefs = append(prefs.prefs, nmsPref{key: nmsClassAgnostic, flag: true})
	if got := nmsScore(&p, prefs); got < 2.9-1e-5 || got > 2.9+1e-5 {
		t.Fatalf("score %v, want 2.9", got)
	}
	all, _ := parseNMSPrefs(true)
	if nmsScore(&p, all) != 1 {
		t.Fatal("prefs true must score 1")
	}
	if _, err := parseNMSPrefs(pyjson.ObjectOf("iou_threshold", "high")); !errors.Is(err, ErrNegotiation) {
		t.Fatalf("bad prefs: %v", err)
	}
}

// TestEndToEnd is §10 vector 9.
func TestEndToEnd(t *testing.T) {
	l4 := device("nvidia-l4", "8.7")
	pkgs := []metadata.ModelPackage{
		pkg("A", metadata.BackendTRT, "fp16", l4, dynTRT(1, 8, 16)),
		pkg("B", metadata.BackendONNX, "fp32", opset(17)),
		pkg("C", metadata.BackendTorch, "fp32"),
		pkg("D", metadata.BackendONNX, "fp16", opset(19)),
		pkg("E", metadata.BackendTRT, "fp32", l4, dynTRT(1, 8, 16)),
		pkg("F", metadata.BackendTRT, "fp16", device("nvidia-a10g", "8.6")),
		pkg("G", metadata.BackendTRT, "int8", l4),
	}
	md := model("rfdetr", "object-detection", pkgs...)
	mustSelect(t, md, Request{Device: "cpu"}, cpuRuntime(), "B", "C")
	gpu := gpuRuntime()
	mustSelect(t, md, Request{Device: "cuda:1"}, gpu, "A", "E", "D", "B", "C")
	mustSelect(t, md, Request{Device: "cuda:1", Quantization: []string{"fp32"}}, gpu, "E", "B", "C")
	mustSelect(t, md, Request{Device: "cuda:1", Backends: []string{"onnx"}}, gpu, "D", "B")
	mustSelect(t, md, Request{Device: "cuda:1", BatchSize: ExactBatchSize(32)}, gpu, "D", "B", "C")
	untrustedMD := md.Clone()
	for i := range untrustedMD.Packages {
		untrustedMD.Packages[i].TrustedSource = false
	}
	rep, err := Negotiate(untrustedMD, Request{Device: "cuda:1"}, gpu)
	var none *NoModelPackagesAvailableError
	if !errors.As(err, &none) || len(none.Rejections) != 7 || rep == nil || len(rep.Selected) != 0 {
		t.Fatalf("all untrusted: %v", err)
	}
	line := "\t* 7 packages with the following note: Package is marked as `untrusted` and auto-loader was used with `allow_untrusted_packages=False`"
	if !strings.Contains(none.Message, "rejected:\n"+line+"\n") {
		t.Fatalf("summary:\n%s", none.Message)
	}
}

func TestByIDAndErrors(t *testing.T) {
	md := model("rfdetr", "object-detection",
		pkg("a", metadata.BackendTRT, "fp16", device("tesla-t4", "7.5")), pkg("u", metadata.BackendONNX, "fp32", untrusted),
		pkg("dup", metadata.BackendONNX, "fp32"), pkg("dup", metadata.BackendTorch, "fp32"))
	// By id: no environment check, no parsing of the other request values (Q13, Q16).
	rep := mustSelect(t, md, Request{ModelPackageID: sp("a"), Device: "cpu", Backends: []string{"nope"}, Quantization: []string{"FP16"}}, cpuRuntime(), "a")
	if !rep.ByID || len(rep.Rejections) != 0 {
		t.Fatalf("by id report %+v", rep)
	}
	for _, c := range []struct {
		id, class, phrase string
		allow             bool
	}{
		{"missing", ClassNoModelPackagesAvailable, "Requested model package ID: missing cannot be resolved", false},
		{"", ClassNoModelPackagesAvailable, "Requested model package ID:  cannot be resolved", false},
		{"u", ClassNoModelPackagesAvailable, "Model package `u` comes from an untrusted source", false},
		{"dup", ClassAmbiguousModelPackageResolution, "resolved to 2 different packages", false},
	} {
		_, err := Negotiate(md, Request{ModelPackageID: sp(c.id)}, cpuRuntime())
		if ClassName(err) != c.class || !strings.Contains(Message(err), c.phrase) || !errors.Is(err, ErrNegotiation) {
			t.Errorf("id %q: %v", c.id, err)
		}
	}
	mustSelect(t, md, Request{ModelPackageID: sp("u"), AllowUntrustedPackages: true}, cpuRuntime(), "u")
	// Empty announcement.
	_, err := Negotiate(model("rfdetr", "object-detection"), Request{}, cpuRuntime())
	if ClassName(err) != ClassNoModelPackagesAvailable || !strings.Contains(Message(err), "Could not find any model package announced by weights provider") {
		t.Fatalf("empty: %v", err)
	}
	// Q2: an HF package meeting a batch request is a typed error, never a panic.
	hf := model("vit", "classification", pkg("h", metadata.BackendHuggingFace, "fp32"))
	_, err = Negotiate(hf, Request{Device: "cpu", BatchSize: ExactBatchSize(1)}, cpuRuntime())
	var te *PackageMetadataTypeError
	if !errors.As(err, &te) || ClassName(err) != ClassTypeError || errors.Is(err, ErrNegotiation) {
		t.Fatalf("hf batch: %v", err)
	}
	// Q7: a backend without a matcher is discarded, not an abort.
	cw := model("cosmos-3-edge-world", "world-model", pkg("c", metadata.BackendCustom, "fp32"))
	rep, err = Negotiate(cw, Request{Device: "cpu", Quantization: []string{"fp32"}}, cpuRuntime())
	if ClassName(err) != ClassNoModelPackagesAvailable || rep.Packages[0].Code != CodeBackendNotNegotiable ||
		rep.Packages[0].Reason != "Model package negotiation protocol not implemented for model backend custom" {
		t.Fatalf("custom backend: %v %+v", err, rep.Packages)
	}
	// A bad device string is refused before anything else.
	if _, err := Negotiate(md, Request{Device: "cuda:x"}, cpuRuntime()); !errors.Is(err, ErrNegotiation) {
		t.Fatalf("bad device: %v", err)
	}
}

func TestRuntimeCheck(t *testing.T) {
	rt := cpuRuntime()
	rt.TRTVersion = sp("not a version")
	if err := rt.Check(); ClassName(err) != ClassRuntimeIntrospection {
		t.Fatalf("invalid version: %v", err)
	}
	rt = cpuRuntime()
	rt.TorchVersion = sp("garbage") // unparsable torch = unknown
	if err := rt.Check(); err != nil {
		t.Fatal(err)
	}
	v := pep440.MustParse("1.22.4")
	if OpsetLimit(v) != 23 || OpsetLimit(pep440.MustParse("1.14")) != 19 {
		t.Fatal("opset table")
	}
}
