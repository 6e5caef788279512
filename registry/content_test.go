package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func validModel() map[string]string {
	return map[string]string{
		"models/m/model.json":                     `{"model_id": "ws/m/1", "model_architecture": "yolov8"}`,
		"models/m/packages/p1/package.json":       onnxPackage("fp32"),
		"models/m/packages/p1/files/weights.onnx": "w",
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == "<delete>" {
			delete(out, kv[i])
		} else {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}

// TestBadContentReportedAtStartup: every problem is reported by Load (all
// at once), so nothing bad is ever served.
func TestBadContentReportedAtStartup(t *testing.T) {
	cases := map[string]struct {
		files map[string]string
		want  string
	}{
		"bad package id":     {with(validModel(), "models/m/packages/pkg-1/package.json", onnxPackage("fp32"), "models/m/packages/pkg-1/files/w.onnx", "w"), `pkg-1`},
		"device package id":  {with(validModel(), "models/m/packages/COM1/package.json", onnxPackage("fp32"), "models/m/packages/COM1/files/w.onnx", "w"), `COM1`},
		"case duplicate ids": {with(validModel(), "models/m/packages/P1/package.json", onnxPackage("fp32"), "models/m/packages/P1/files/w.onnx", "w"), "differ only in case"},
		"missing file source": {with(validModel(), "models/m/packages/p1/package.json",
			`{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1, "opset": 17}, "files": [{"handle": "weights.onnx"}, {"handle": "labels.txt", "source": "blobs/none.txt"}]}`), "blobs/none.txt"},
		"source escaping root": {with(validModel(), "models/m/packages/p1/package.json",
			`{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1, "opset": 17}, "files": [{"handle": "x.txt", "source": "../../etc/passwd"}]}`), "outside the registry"},
		"bad handle":           {with(validModel(), "models/m/packages/p1/files/CON.txt", "x"), "CON.txt"},
		"reserved handle":      {with(validModel(), "models/m/packages/p1/files/model_config.json", "{}"), "model_config.json"},
		"no files":             {with(validModel(), "models/m/packages/p1/files/weights.onnx", "<delete>"), "no files"},
		"onnx without opset":   {with(validModel(), "models/m/packages/p1/package.json", `{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "staticBatchSize": 1}}`), "opset"},
		"static batch missing": {with(validModel(), "models/m/packages/p1/package.json", `{"manifest": {"type": "onnx-model-package-v1", "backendType": "onnx", "quantization": "fp32", "opset": 17}}`), "static batch size"},
		"bad trt version": {with(validModel(), "models/m/packages/p1/package.json", `{"manifest": {"type": "trt-model-package-v1", "backendType": "trt", "quantization": "fp16", "staticBatchSize": 1,
			"cudaDeviceType": "nvidia-l4", "cudaDeviceCC": "8.9", "cudaVersion": "12.6", "trtVersion": "ten", "machineType": "gpu-server",
			"machineSpecs": {"type": "gpu-server-specs-v1", "driverVersion": "550.1", "osVersion": "ubuntu-22.04"}}}`), "invalid version"},
		"missing model.json":    {with(validModel(), "models/m/model.json", "<delete>"), "model.json"},
		"bad json":              {with(validModel(), "models/m/model.json", `{"model_id": `), "model.json"},
		"typo key":              {with(validModel(), "models/m/model.json", `{"model_id": "ws/m/1", "model_architecture": "yolov8", "taks_type": "x"}`), `"taks_type"`},
		"duplicate alias":       {with(validModel(), "models/n/model.json", `{"model_id": "ws/n/1", "aliases": ["ws/m/1"], "model_architecture": "yolov8"}`, "models/n/packages/q1/package.json", onnxPackage("fp32"), "models/n/packages/q1/files/w.onnx", "w"), `"ws/m/1" is already used`},
		"dependency bad pin":    {with(validModel(), "models/m/model.json", `{"model_id": "ws/m/1", "model_architecture": "yolov8", "model_dependencies": [{"name": "self", "model_id": "ws/m/1", "model_package_id": "nope"}]}`), `pins package "nope"`},
		"dependency bad name":   {with(validModel(), "models/m/model.json", `{"model_id": "ws/m/1", "model_architecture": "yolov8", "model_dependencies": [{"name": "a/b", "model_id": "x/1"}]}`), "dependency name"},
		"bad access file":       {with(validModel(), "access.json", `{"keys": [{"key": "local", "models": ["*"]}]}`), "access.json"},
		"wrong registry format": {with(validModel(), "registry.json", `{"format": "other", "format_version": 1}`), "registry.json"},
		"unknown package order": {with(validModel(), "models/m/model.json", `{"model_id": "ws/m/1", "model_architecture": "yolov8", "package_order": ["zz"]}`), `unknown package "zz"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(context.Background(), tmpRegistry(t, tc.files), LoadOptions{})
			var ce *ContentError
			if !errors.As(err, &ce) {
				t.Fatalf("want ContentError, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not mention %q:\n%v", tc.want, err)
			}
		})
	}
	// Several problems are reported together.
	_, err := Load(context.Background(), tmpRegistry(t, with(validModel(),
		"models/m/packages/bad-id/package.json", onnxPackage("fp32"),
		"models/m/packages/p1/files/NUL.bin", "x")), LoadOptions{})
	var ce *ContentError
	if !errors.As(err, &ce) || len(ce.Problems) < 2 {
		t.Fatalf("want >= 2 problems, got %v", err)
	}
	// The valid base loads.
	if _, err := Load(context.Background(), tmpRegistry(t, validModel()), LoadOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Unknown manifest types are served (with a warning): new types may be
// added freely, old clients skip them.
func TestUnknownManifestTypeServedWithWarning(t *testing.T) {
	reg, err := Load(context.Background(), tmpRegistry(t, with(validModel(),
		"models/m/packages/p2/package.json", `{"manifest": {"type": "onnx-model-package-v9", "backendType": "onnx"}}`,
		"models/m/packages/p2/files/w.bin", "w")), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Warnings) != 1 || !strings.Contains(reg.Warnings[0], "p2") {
		t.Fatalf("warnings %v", reg.Warnings)
	}
	m, _ := reg.Lookup("ws/m/1")
	if len(m.Packages) != 2 || m.Packages[1].Parsed != nil {
		t.Fatalf("unknown-type package not kept raw: %+v", m.Packages)
	}
	l := reg.Listing()
	if l.Models[0].Packages[1].Backend != nil || *l.Models[0].Packages[0].Backend != "onnx" {
		t.Fatalf("listing: %+v", l.Models[0].Packages)
	}
}

func TestListingJSONShape(t *testing.T) {
	reg := loadExamples(t)
	b, err := json.Marshal(reg.Listing())
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Models []struct {
			ModelID  string   `json:"model_id"`
			Aliases  []string `json:"aliases"`
			Packages []struct {
				PackageID    string  `json:"package_id"`
				Backend      *string `json:"backend"`
				Quantization *string `json:"quantization"`
				Files        []struct {
					FileHandle string `json:"file_handle"`
					Size       int64  `json:"size"`
					MD5        string `json:"md5"`
				} `json:"files"`
			} `json:"packages"`
		} `json:"models"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	if len(v.Models) != len(reg.Models) || v.Models[1].ModelID != "acme-ws/parcel-detector/7" || v.Models[1].Aliases[0] != "parcel-det" {
		t.Fatalf("listing models: %+v", v.Models)
	}
	p := v.Models[1].Packages[0]
	if p.PackageID != "detonnxfp32dyn" || *p.Backend != "onnx" || *p.Quantization != "fp32" || len(p.Files) != 3 || len(p.Files[0].MD5) != 32 || p.Files[0].Size != 6144 {
		t.Fatalf("listing package: %+v", p)
	}
	var buf bytes.Buffer
	if err := reg.Listing().WriteTable(&buf); err != nil || !strings.Contains(buf.String(), "dettrtorinfp16") {
		t.Fatalf("table: %v\n%s", err, buf.String())
	}
}

// TestSharedFilesHashedOnce: files referenced by several packages are read
// once and share one blob.
func TestSharedFilesHashedOnce(t *testing.T) {
	reg := loadExamples(t)
	m, _ := reg.Lookup("parcel-det")
	var paths []string
	for _, p := range m.Packages {
		for _, f := range p.Files {
			if f.Handle == "class_names.txt" {
				paths = append(paths, f.Path)
			}
		}
	}
	if len(paths) < 2 {
		t.Fatal("examples should share class_names.txt")
	}
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("shared source resolved to different files: %v", paths)
		}
	}
	want, _ := os.ReadFile(filepath.Join(examplesDir(t), "blobs", "parcel-detector", "class_names.txt"))
	f, ok := reg.Blob(md5hex(want))
	if !ok || f.Size != int64(len(want)) {
		t.Fatal("shared blob not indexed by its MD5")
	}
}
