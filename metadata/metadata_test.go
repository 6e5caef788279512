package metadata

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/pyjson"
)

func TestParseBackendType(t *testing.T) {
	for in, want := range map[string]BackendType{"TRT": BackendTRT, "Onnx": BackendONNX, "hugging-face": BackendHuggingFace, "torch-script": BackendTorchScript} {
		got, err := ParseBackendType(in)
		if err != nil || got != want {
			t.Errorf("ParseBackendType(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"hf", "tensorrt", "", "onnx "} {
		_, err := ParseBackendType(in)
		var ue *UnknownBackendError
		if !errors.As(err, &ue) || ue.Value != in {
			t.Errorf("ParseBackendType(%q) err = %v, want UnknownBackendError", in, err)
		}
	}
}

func TestParseQuantizationCaseSensitive(t *testing.T) {
	if q, err := ParseQuantization("fp16"); err != nil || q != QuantizationFP16 {
		t.Fatalf("fp16: %q %v", q, err)
	}
	_, err := ParseQuantization("FP16")
	var ue *UnknownQuantizationError
	if !errors.As(err, &ue) {
		t.Fatalf("FP16 accepted: %v", err)
	}
	if want := "Requested quantization of type 'FP16' which is not recognized. Supported quantizations: [FP32, FP16, BF16, INT8, UNKNOWN]"; err.Error() != want {
		t.Fatalf("message %q", err.Error())
	}
}

func TestDynamicBatchBoundaries(t *testing.T) {
	p := ModelPackage{DynamicBatchSizeSupported: Bool(true), TRTPackageDetails: &TRTPackageDetails{OptDynamicBatchSize: Int(8), MaxDynamicBatchSize: Int(16)}}
	if lo, hi, ok := p.DynamicBatchBoundaries(); !ok || lo != 8 || hi != 16 {
		t.Fatalf("got %d %d %v", lo, hi, ok)
	}
	p.TRTPackageDetails = &TRTPackageDetails{}
	if _, _, ok := p.DynamicBatchBoundaries(); ok {
		t.Fatal("no bounds set but ok")
	}
	p = ModelPackage{DynamicBatchSizeSupported: Bool(false), TRTPackageDetails: &TRTPackageDetails{MinDynamicBatchSize: Int(1)}}
	if _, _, ok := p.DynamicBatchBoundaries(); ok {
		t.Fatal("static package has bounds")
	}
}

func TestEffectiveRecommendedParameters(t *testing.T) {
	m := &ModelMetadata{RecommendedParameters: &RecommendedParameters{Confidence: Float(0.42)}}
	p := ModelPackage{}
	if got := p.EffectiveRecommendedParameters(m); got == nil || *got.Confidence != 0.42 {
		t.Fatalf("model level not used: %+v", got)
	}
	p.RecommendedParameters = &RecommendedParameters{Confidence: Float(0.4)}
	if got := p.EffectiveRecommendedParameters(m); *got.Confidence != 0.4 {
		t.Fatalf("package level did not override: %+v", got)
	}
}

func TestClassConfidencesJSONKeepsOrderAndNull(t *testing.T) {
	var r RecommendedParameters
	if err := json.Unmarshal([]byte(`{"confidence":1,"per_class_confidence":{"zeta":0.5,"alpha":0.25,"zeta":0.75}}`), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.PerClassConfidence) != 2 || r.PerClassConfidence[0].Class != "zeta" || r.PerClassConfidence[0].Confidence != 0.75 {
		t.Fatalf("order/duplicate handling wrong: %+v", r.PerClassConfidence)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"confidence":1,"per_class_confidence":{"zeta":0.75,"alpha":0.25}}` {
		t.Fatalf("marshal: %s", b)
	}
	r2 := RecommendedParameters{}
	b, _ = json.Marshal(r2)
	if string(b) != `{"confidence":null,"per_class_confidence":null}` {
		t.Fatalf("null marshal: %s", b)
	}
}

func TestCloneIsDeep(t *testing.T) {
	m := &ModelMetadata{ModelID: "a/1", TaskType: Str("object-detection"), Packages: []ModelPackage{{
		PackageID: "p1", Artifacts: []Artifact{{FileHandle: "w.onnx", MD5Hash: Str("00")}},
		StaticBatchSize: Int(1), ONNXPackageDetails: &ONNXPackageDetails{Opset: 17, IncompatibleProviders: []string{"X"}},
		RecommendedParameters: &RecommendedParameters{PerClassConfidence: ClassConfidences{{"a", 0.1}}},
	}}}
	c := m.Clone()
	*c.TaskType = "x"
	*c.Packages[0].Artifacts[0].MD5Hash = "ff"
	*c.Packages[0].StaticBatchSize = 9
	c.Packages[0].ONNXPackageDetails.IncompatibleProviders[0] = "Y"
	c.Packages[0].RecommendedParameters.PerClassConfidence[0].Confidence = 0.9
	if *m.TaskType != "object-detection" || *m.Packages[0].Artifacts[0].MD5Hash != "00" || *m.Packages[0].StaticBatchSize != 1 ||
		m.Packages[0].ONNXPackageDetails.IncompatibleProviders[0] != "X" || m.Packages[0].RecommendedParameters.PerClassConfidence[0].Confidence != 0.1 {
		t.Fatal("clone shares memory with original")
	}
	if p, ok := m.Package("p1"); !ok || p.PackageID != "p1" {
		t.Fatal("Package lookup")
	}
	if _, ok := m.Package("nope"); ok {
		t.Fatal("Package found unknown id")
	}
}

func TestModelPackageJSONWritesFeatures(t *testing.T) {
	p := ModelPackage{PackageID: "p1", Backend: BackendONNX, ModelFeatures: pyjson.ObjectOf("nms_fused", pyjson.ObjectOf("max_detections", 300, "iou_threshold", 0.7))}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	nms, ok := back["model_features"].(map[string]any)["nms_fused"].(map[string]any)
	if !ok || nms["max_detections"] != 300.0 || back["package_id"] != "p1" || back["backend"] != "onnx" {
		t.Fatalf("got %s", b)
	}
	if _, dup := back["ModelFeatures"]; dup {
		t.Fatalf("duplicate field: %s", b)
	}
	b, _ = json.Marshal(ModelPackage{PackageID: "p2"})
	if !strings.Contains(string(b), `"model_features":null`) {
		t.Fatalf("nil features: %s", b)
	}
}
