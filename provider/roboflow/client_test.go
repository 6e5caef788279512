package roboflow

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// Spec pages (registry-protocol §7), verbatim.
const specPage1 = `{
  "modelMetadata": {
    "type": "external-model-metadata-v1",
    "modelId": "acme-ws/parcel-detector/7",
    "modelArchitecture": "rfdetr",
    "modelVariant": "rfdetr-nano",
    "taskType": "object-detection",
    "modelDependencies": null,
    "recommendedParameters": {"confidence": 0.42, "perClassConfidence": {"parcel": 0.45, "label": 0.38}},
    "modelPackages": [
      {
        "type": "external-model-package-v1",
        "packageId": "9f2c1d0onnxfp32dyn",
        "packageManifest": {
          "type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32",
          "dynamicBatchSize": true, "opset": 19, "incompatibleProviders": ["TensorrtExecutionProvider"]
        },
        "packageFiles": [
          {"fileHandle": "weights.onnx", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/weights.onnx?X-Goog-Signature=ab12", "md5Hash": "5d41402abc4b2a76b9719d911017c592"},
          {"fileHandle": "inference_config.json", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/inference_config.json", "md5Hash": "7d793037a0760186574b0282f2f435e7"},
          {"fileHandle": "class_names.txt", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/class_names.txt", "md5Hash": "d41d8cd98f00b204e9800998ecf8427e"}
        ],
        "modelFeatures": null,
        "trustedSource": true
      },
      {
        "type": "external-model-package-v1",
        "packageId": "9f2c1d0trtl4fp16",
        "packageManifest": {
          "type": "trt-model-package-v1", "backendType": "trt",
          "dynamicBatchSize": true, "minBatchSize": 1, "optBatchSize": 8, "maxBatchSize": 16,
          "quantization": "fp16", "cudaDeviceType": "nvidia-l4", "cudaDeviceCC": "8.9",
          "cudaVersion": "12.6", "trtVersion": "10.4.0.26",
          "sameCCCompatible": false, "trtForwardCompatible": false, "trtLeanRuntimeExcluded": false,
          "machineType": "gpu-server",
          "machineSpecs": {"type": "gpu-server-specs-v1", "driverVersion": "550.54.15", "osVersion": "ubuntu-22.04"}
        },
        "packageFiles": [
          {"fileHandle": "engine.plan", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/l4/engine.plan", "md5Hash": "0cc175b9c0f1b6a831c399e269772661"},
          {"fileHandle": "trt_config.json", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/l4/trt_config.json", "md5Hash": "92eb5ffee6ae2fec3ad71c777531578f"},
          {"fileHandle": "inference_config.json", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/inference_config.json", "md5Hash": "7d793037a0760186574b0282f2f435e7"},
          {"fileHandle": "class_names.txt", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/class_names.txt", "md5Hash": "d41d8cd98f00b204e9800998ecf8427e"}
        ],
        "trustedSource": true
      },
      {
        "type": "external-model-package-v1",
        "packageId": "9f2c1d0trtorinfp16",
        "packageManifest": {
          "type": "trt-model-package-v1", "backendType": "trt",
          "dynamicBatchSize": false, "staticBatchSize": 1, "quantization": "fp16",
          "cudaDeviceType": "orin", "cudaDeviceCC": "8.7", "cudaVersion": "12.6", "trtVersion": "10.3.0.30",
          "sameCCCompatible": true, "trtForwardCompatible": false, "trtLeanRuntimeExcluded": false,
          "machineType": "jetson",
          "machineSpecs": {"type": "jetson-machine-specs-v1", "l4tVersion": "36.4.3", "deviceName": "jetson-orin-nx", "driverVersion": "540.4.0"}
        },
        "packageFiles": [
          {"fileHandle": "engine.plan", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/orin/engine.plan", "md5Hash": "4a8a08f09d37b73795649038408b5f33"}
        ],
        "trustedSource": true
      },
      {
        "type": "external-model-package-v1",
        "packageId": "9f2c1d0torchfp32",
        "packageManifest": {"type": "torch-model-package-v1", "backendType": "torch", "dynamicBatchSize": true, "quantization": "fp32"},
        "packageFiles": [
          {"fileHandle": "weights.pt", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/weights.pt", "md5Hash": "8277e0910d750195b448797616e091ad"}
        ],
        "trustedSource": true,
        "recommendedParameters": {"confidence": 0.4}
      },
      {
        "type": "external-model-package-v1",
        "packageId": "9f2c1d0tfjs",
        "packageManifest": {"type": "tfjs-model-package-v1"},
        "packageFiles": [],
        "trustedSource": true
      },
      {"type": "external-model-package-v3", "packageId": "9f2c1d0future"}
    ],
    "nextPage": "9f2c1d0torchfp32"
  }
}`

const specPage2 = `{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": "acme-ws/parcel-detector/7",
  "modelArchitecture": "rfdetr", "modelVariant": "rfdetr-nano", "taskType": "object-detection",
  "modelDependencies": null, "recommendedParameters": {"confidence": 0.42, "perClassConfidence": {"parcel": 0.45, "label": 0.38}},
  "modelPackages": [{"type": "external-model-package-v1", "packageId": "9f2c1d0onnxfp16dyn",
    "packageManifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp16", "dynamicBatchSize": true, "opset": 19},
    "packageFiles": [{"fileHandle": "weights.onnx", "downloadUrl": "https://storage.googleapis.com/rf-models/acme/7/fp16/weights.onnx", "md5Hash": "e4da3b7fbbce2345d7772b0674a318d5"}],
    "trustedSource": true}],
  "nextPage": null}}`

// pages serves the given bodies by startAfter cursor ("" = first page) and records raw queries.
type pages struct {
	mu      sync.Mutex
	bodies  map[string]string
	queries []string
}

func (p *pages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.queries = append(p.queries, r.URL.RawQuery)
	p.mu.Unlock()
	b, ok := p.bodies[r.URL.Query().Get("startAfter")]
	if !ok {
		http.Error(w, "no page", 500)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(b))
}

func newTestClient(t *testing.T, h http.Handler, logs *bytes.Buffer, mod func(*Options)) *Client {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	var out = logs
	if out == nil {
		out = &bytes.Buffer{}
	}
	o := Options{APIHost: ts.URL, Logger: slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Sleep: func(ctx context.Context, d time.Duration) error { return nil }}
	if mod != nil {
		mod(&o)
	}
	return New(o)
}

func TestSpecExampleTwoPages(t *testing.T) {
	var logs bytes.Buffer
	srv := &pages{bodies: map[string]string{"": specPage1, "9f2c1d0torchfp32": specPage2}}
	md, err := newTestClient(t, srv, &logs, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "acme-ws/parcel-detector/7"})
	if err != nil {
		t.Fatal(err)
	}
	if srv.queries[0] != "modelId=acme-ws%2Fparcel-detector%2F7" || srv.queries[1] != "modelId=acme-ws%2Fparcel-detector%2F7&startAfter=9f2c1d0torchfp32" {
		t.Fatalf("queries %q", srv.queries)
	}
	var ids []string
	for _, p := range md.Packages {
		ids = append(ids, p.PackageID)
	}
	if strings.Join(ids, ",") != "9f2c1d0onnxfp32dyn,9f2c1d0trtl4fp16,9f2c1d0trtorinfp16,9f2c1d0torchfp32,9f2c1d0onnxfp16dyn" {
		t.Fatalf("packages %v", ids)
	}
	if md.ModelID != "acme-ws/parcel-detector/7" || md.ModelArchitecture != "rfdetr" || *md.ModelVariant != "rfdetr-nano" || *md.TaskType != "object-detection" || md.ModelDependencies != nil || md.NextPage != nil {
		t.Fatalf("model fields %+v", md)
	}
	onnx := md.Packages[0]
	if onnx.Backend != metadata.BackendONNX || onnx.Quantization != metadata.QuantizationFP32 || !*onnx.DynamicBatchSizeSupported || onnx.StaticBatchSize != nil ||
		onnx.ONNXPackageDetails.Opset != 19 || onnx.ONNXPackageDetails.IncompatibleProviders[0] != "TensorrtExecutionProvider" ||
		!onnx.TrustedSource || onnx.PackageSource != metadata.SourcePlatform || onnx.ModelFeatures != nil || onnx.RecommendedParameters != nil ||
		len(onnx.Artifacts) != 3 || *onnx.Artifacts[0].MD5Hash != "5d41402abc4b2a76b9719d911017c592" ||
		onnx.Artifacts[0].DownloadURL != "https://storage.googleapis.com/rf-models/acme/7/weights.onnx?X-Goog-Signature=ab12" {
		t.Fatalf("onnx package %+v", onnx)
	}
	l4 := md.Packages[1]
	env := l4.EnvironmentRequirements
	if l4.Backend != metadata.BackendTRT || env.Kind != metadata.MachineGPUServer || env.CUDADeviceCC != "8.9" || env.CUDADeviceName != "nvidia-l4" ||
		*env.DriverVersion != "550.54.15" || *env.CUDAVersion != "12.6" || *env.TRTVersion != "10.4.0.26" || *env.OSVersion != "ubuntu-22.04" {
		t.Fatalf("l4 env %+v", env)
	}
	if lo, hi, ok := l4.DynamicBatchBoundaries(); !ok || lo != 1 || hi != 16 || *l4.TRTPackageDetails.OptDynamicBatchSize != 8 {
		t.Fatalf("l4 batch %d %d %v", lo, hi, ok)
	}
	orin := md.Packages[2]
	if e := orin.EnvironmentRequirements; e.Kind != metadata.MachineJetson || e.L4TVersion != "36.4.3" || *e.JetsonProductName != "jetson-orin-nx" ||
		*e.DriverVersion != "540.4.0" || e.CUDADeviceName != "orin" || e.OSVersion != nil || !orin.TRTPackageDetails.SameCCCompatible || *orin.StaticBatchSize != 1 {
		t.Fatalf("orin %+v %+v", e, orin.TRTPackageDetails)
	}
	torch := md.Packages[3]
	if torch.Backend != metadata.BackendTorch || *torch.RecommendedParameters.Confidence != 0.4 || torch.RecommendedParameters.PerClassConfidence != nil {
		t.Fatalf("torch %+v", torch)
	}
	if got := torch.EffectiveRecommendedParameters(md); *got.Confidence != 0.4 {
		t.Fatal("package-level parameters must override")
	}
	if c, _ := md.RecommendedParameters.PerClassConfidence.Get("parcel"); c != 0.45 {
		t.Fatal("per-class confidence")
	}
	// v3 entity: warning; tfjs: no warning.
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "9f2c1d0future") || !strings.Contains(out, "outdated") {
		t.Fatalf("no warning for the v3 entity:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "9f2c1d0tfjs") && strings.Contains(line, "level=WARN") {
			t.Fatalf("tfjs package must be skipped silently: %s", line)
		}
	}
}

func TestTopLevelFieldsComeFromLastPage(t *testing.T) {
	p1 := strings.Replace(specPage1, `"modelArchitecture": "rfdetr"`, `"modelArchitecture": "old-arch"`, 1)
	p2 := strings.Replace(specPage2, `"taskType": "object-detection"`, `"taskType": "keypoint-detection"`, 1)
	md, err := newTestClient(t, &pages{bodies: map[string]string{"": p1, "9f2c1d0torchfp32": p2}}, nil, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if md.ModelArchitecture != "rfdetr" || *md.TaskType != "keypoint-detection" {
		t.Fatalf("top-level fields not from the last page: %s %s", md.ModelArchitecture, *md.TaskType)
	}
}

func mkPage(packages string, extra string) string {
	return `{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": "ws/m/1", "modelArchitecture": "yolov8"` + extra +
		`, "modelPackages": [` + packages + `]}}`
}

const goodPkg = `{"type": "external-model-package-v1", "packageId": "good", "packageManifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1, "opset": 17}, "packageFiles": [{"fileHandle": "w.onnx", "downloadUrl": "http://h/w", "md5Hash": null}]}`

func pkg(id, manifest string, extra string) string {
	return `{"type": "external-model-package-v1", "packageId": "` + id + `", "packageManifest": ` + manifest +
		`, "packageFiles": [{"fileHandle": "w", "downloadUrl": "http://h/w"}]` + extra + `}`
}

const trtBase = `"type": "trt-model-package-v1", "backendType": "trt", "quantization": "fp16", "cudaDeviceType": "nvidia-l4", "cudaDeviceCC": "8.9", "cudaVersion": "12.6", "trtVersion": "10.4.0.26"`

func TestInvalidPackagesAreSkippedWithWarning(t *testing.T) {
	bad := map[string]string{
		"noopset":       pkg("noopset", `{"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1}`, ""),
		"dynandstatic":  pkg("dynandstatic", `{"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "dynamicBatchSize": true, "staticBatchSize": 2, "opset": 17}`, ""),
		"staticzero":    pkg("staticzero", `{"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "staticBatchSize": 0}`, ""),
		"badquant":      pkg("badquant", `{"type": "torch-model-package-v1", "backendType": "torch", "quantization": "FP32", "dynamicBatchSize": true}`, ""),
		"wrongbackend":  pkg("wrongbackend", `{"type": "torch-model-package-v1", "backendType": "onnx", "quantization": "fp32", "dynamicBatchSize": true}`, ""),
		"trtnomax":      pkg("trtnomax", `{`+trtBase+`, "dynamicBatchSize": true, "minBatchSize": 1, "optBatchSize": 4, "machineType": "gpu-server", "machineSpecs": {"type": "gpu-server-specs-v1", "driverVersion": "550.1", "osVersion": "u"}}`, ""),
		"trtmismatch":   pkg("trtmismatch", `{`+trtBase+`, "staticBatchSize": 1, "machineType": "gpu-server", "machineSpecs": {"type": "jetson-machine-specs-v1", "l4tVersion": "36.4", "deviceName": "x", "driverVersion": "540.1"}}`, ""),
		"trtmachine":    pkg("trtmachine", `{`+trtBase+`, "staticBatchSize": 1, "machineType": "tpu", "machineSpecs": {"type": "gpu-server-specs-v1", "driverVersion": "550.1", "osVersion": "u"}}`, ""),
		"trtbadversion": pkg("trtbadversion", `{`+strings.Replace(trtBase, `"12.6"`, `"twelve"`, 1)+`, "staticBatchSize": 1, "machineType": "gpu-server", "machineSpecs": {"type": "gpu-server-specs-v1", "driverVersion": "550.1", "osVersion": "u"}}`, ""),
		"tsnodevices":   pkg("tsnodevices", `{"type": "torch-script-model-package-v1", "backendType": "torch-script", "quantization": "fp32", "dynamicBatchSize": true, "torchVersion": "2.4"}`, ""),
		"badpkgrec":     pkg("badpkgrec", `{"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true}`, `, "recommendedParameters": {"confidence": "high"}`),
		"badtrusted":    pkg("badtrusted", `{"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true}`, `, "trustedSource": "maybe"`),
		"badfeatures":   pkg("badfeatures", `{"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true}`, `, "modelFeatures": [1]`),
		"nofiles":       `{"type": "external-model-package-v1", "packageId": "nofiles", "packageManifest": {"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true}}`,
		"filenourl":     `{"type": "external-model-package-v1", "packageId": "filenourl", "packageManifest": {"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true}, "packageFiles": [{"fileHandle": "w"}]}`,
		"unknownmanif":  pkg("unknownmanif", `{"type": "onnx-model-package-v7"}`, ""),
		"rawobject":     `{"packageId": "rawobject", "whatever": 1}`,
	}
	var all []string
	for _, b := range bad {
		all = append(all, b)
	}
	all = append(all, goodPkg)
	var logs bytes.Buffer
	md, err := newTestClient(t, &pages{bodies: map[string]string{"": mkPage(strings.Join(all, ", "), "")}}, &logs, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Packages) != 1 || md.Packages[0].PackageID != "good" || md.Packages[0].Artifacts[0].MD5Hash != nil {
		t.Fatalf("want only the good package, got %+v", md.Packages)
	}
	out := logs.String()
	for id := range bad {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "package_id="+id) && strings.Contains(line, "level=WARN") && strings.Contains(line, "Silently skipping this package") {
				found = true
			}
		}
		if !found {
			t.Errorf("no skip warning for %s", id)
		}
	}
}

func TestLaxValuesAndOtherBackends(t *testing.T) {
	pk := []string{
		pkg("laxints", `{"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp16", "dynamicBatchSize": "false", "staticBatchSize": 2.0, "opset": "17"}`, `, "trustedSource": true, "recommendedParameters": {"confidence": 1, "unknownKey": 3}`),
		// Entity-level fields are strict (NEGOTIATION.md quirk:strict-entity): skipped.
		pkg("laxtrust", `{"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32"}`, `, "trustedSource": 1`),
		pkg("hf", `{"type": "hf-model-package-v1", "backendType": "hf", "quantization": "bf16"}`, `, "modelFeatures": {"nms_fused": {"max_detections": 300, "iou_threshold": 0.7}}`),
		pkg("ultra", `{"type": "ultralytics-model-package-v1", "anything": [1, 2]}`, ""),
		pkg("ts", `{"type": "torch-script-model-package-v1", "backendType": "torch-script", "quantization": "fp32", "dynamicBatchSize": true, "supportedDeviceTypes": ["cuda", "cpu"], "torchVersion": "2.4.0", "torchVisionVersion": "0.19.0"}`, ""),
	}
	md, err := newTestClient(t, &pages{bodies: map[string]string{"": mkPage(strings.Join(pk, ", "), "")}}, nil, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Packages) != 4 {
		t.Fatalf("got %d packages", len(md.Packages))
	}
	lax := md.Packages[0]
	if *lax.DynamicBatchSizeSupported || *lax.StaticBatchSize != 2 || lax.ONNXPackageDetails.Opset != 17 || !lax.TrustedSource || *lax.RecommendedParameters.Confidence != 1.0 {
		t.Fatalf("lax coercion: %+v", lax)
	}
	hf := md.Packages[1]
	if hf.Backend != metadata.BackendHuggingFace || hf.Quantization != metadata.QuantizationBF16 || hf.DynamicBatchSizeSupported != nil || hf.StaticBatchSize != nil || hf.TrustedSource {
		t.Fatalf("hf: %+v", hf)
	}
	if hf.ModelFeatures == nil {
		t.Fatal("model features lost")
	}
	ultra := md.Packages[2]
	if ultra.Backend != metadata.BackendUltralytics || ultra.Quantization != metadata.QuantizationUnknown || ultra.DynamicBatchSizeSupported != nil {
		t.Fatalf("ultralytics: %+v", ultra)
	}
	ts := md.Packages[3].TorchScriptPackageDetails
	if md.Packages[3].Backend != metadata.BackendTorchScript || strings.Join(ts.SupportedDeviceTypes, ",") != "cuda,cpu" || ts.TorchVersion != "2.4.0" || *ts.TorchVisionVersion != "0.19.0" {
		t.Fatalf("torch-script: %+v", ts)
	}
}

func TestPageLevelDecodeFailures(t *testing.T) {
	cases := map[string]string{
		"bad dependency type":   mkPage(goodPkg, `, "modelDependencies": [{"type": "model-dependency-v2", "name": "d", "modelId": "x/1"}]`),
		"dependency missing id": mkPage(goodPkg, `, "modelDependencies": [{"type": "model-dependency-v1", "name": "d"}]`),
		"not json":              `<html>oops</html>`,
		"no modelMetadata":      `{"metadata": {}}`,
		"wrong metadata type":   strings.Replace(mkPage(goodPkg, ""), "external-model-metadata-v1", "external-model-metadata-v2", 1),
		"missing architecture":  `{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": "ws/m/1", "modelPackages": []}}`,
		"packages not a list":   `{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": "ws/m/1", "modelArchitecture": "a", "modelPackages": {}}}`,
		"package not an object": mkPage(`"nope"`, ""),
		"bad model rec params":  mkPage(goodPkg, `, "recommendedParameters": {"confidence": [1]}`),
		"modelId not a string":  `{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": 7, "modelArchitecture": "a", "modelPackages": []}}`,
		"nextPage not a string": mkPage(goodPkg, `, "nextPage": 3`),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := newTestClient(t, &pages{bodies: map[string]string{"": body}}, nil, nil).
				ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
			var re *provider.RetrievalError
			if !errors.As(err, &re) || re.Kind != provider.KindRetrieval || !strings.HasPrefix(err.Error(), "Could not decode Roboflow API response when trying to retrieve model ws/m/1.") {
				t.Fatalf("got %v", err)
			}
		})
	}
	// A valid dependency list is kept.
	md, err := newTestClient(t, &pages{bodies: map[string]string{"": mkPage(goodPkg, `, "modelDependencies": [{"type": "model-dependency-v1", "name": "text_encoder", "modelId": "clip/ViT-B-32", "modelPackageId": null}]`)}}, nil, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if err != nil || len(md.ModelDependencies) != 1 || md.ModelDependencies[0].ModelID != "clip/ViT-B-32" || md.ModelDependencies[0].ModelPackageID != nil {
		t.Fatalf("dependencies: %v %+v", err, md)
	}
}

func TestEmptyAndAllSkippedPackageLists(t *testing.T) {
	_, err := newTestClient(t, &pages{bodies: map[string]string{"": mkPage("", "")}}, nil, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if err == nil || !strings.HasPrefix(err.Error(), "Backend provided empty list of model packages") {
		t.Fatalf("empty list: %v", err)
	}
	md, err := newTestClient(t, &pages{bodies: map[string]string{"": mkPage(pkg("t", `{"type": "tfjs-model-package-v1"}`, ""), "")}}, nil, nil).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if err != nil || len(md.Packages) != 0 {
		t.Fatalf("all skipped should give zero packages without error: %v %+v", err, md)
	}
}

func TestResponseBodyCap(t *testing.T) {
	big := mkPage(strings.Repeat(goodPkg+", ", 200)+goodPkg, "")
	_, err := newTestClient(t, &pages{bodies: map[string]string{"": big}}, nil, func(o *Options) { o.MaxBodyBytes = 4096 }).
		ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	var re *provider.RetrievalError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "exceeds 4096 bytes") {
		t.Fatalf("got %v", err)
	}
}

func TestOfflineAndInvalidModelIDMakeNoRequest(t *testing.T) {
	srv := &pages{bodies: map[string]string{"": mkPage(goodPkg, "")}}
	c := newTestClient(t, srv, nil, func(o *Options) { o.Offline = true })
	_, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
	if !errors.Is(err, errdefs.ErrOffline) || !errors.Is(err, provider.ErrModelRetrieval) || !strings.Contains(err.Error(), "OFFLINE_MODE") {
		t.Fatalf("offline: %v", err)
	}
	c = newTestClient(t, srv, nil, nil)
	for _, id := range []string{"", "  \t", "a\x00b"} {
		if _, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: id}); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Fatalf("id %q: %v", id, err)
		}
	}
	if len(srv.queries) != 0 {
		t.Fatalf("requests were made: %v", srv.queries)
	}
}

func TestContextCancellationStopsRetries(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		cancel()
		w.WriteHeader(503)
	})
	c := newTestClient(t, h, nil, func(o *Options) { o.Sleep = nil })
	_, err := c.ModelMetadata(ctx, provider.Request{ModelID: "ws/m/1"})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}

func TestLocalPackagesMerge(t *testing.T) {
	var logs bytes.Buffer
	var asked []string
	body := strings.Replace(mkPage(goodPkg, ""), `"modelId": "ws/m/1"`, `"modelId": "ws/canonical/1"`, 1)
	c := newTestClient(t, &pages{bodies: map[string]string{"": body}}, &logs, func(o *Options) {
		o.LocalPackages = func(ctx context.Context, id string) ([]metadata.ModelPackage, error) {
			asked = append(asked, id)
			switch id {
			case "ws/canonical/1":
				return []metadata.ModelPackage{{PackageID: "good"}, {PackageID: "localtrtaaaaaaaaaaaa", PackageSource: metadata.SourceLocalCache, CacheModelID: id}}, nil
			default:
				return nil, errors.New("scan failed")
			}
		}
	})
	md, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: "alias-1"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(asked, ",") != "ws/canonical/1,alias-1" {
		t.Fatalf("asked %v", asked)
	}
	if len(md.Packages) != 2 || md.Packages[0].Backend != metadata.BackendONNX || md.Packages[1].PackageID != "localtrtaaaaaaaaaaaa" || md.Packages[1].CacheModelID != "ws/canonical/1" {
		t.Fatalf("merge result %+v", md.Packages)
	}
	if !strings.Contains(logs.String(), "scan failed") {
		t.Fatal("local discovery error not logged")
	}
}
