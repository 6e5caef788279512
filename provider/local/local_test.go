package local

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

func writeDir(t *testing.T, name string, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	for p, c := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestHandWrittenPackagedBackend(t *testing.T) {
	dir := writeDir(t, "mydetector", map[string]string{
		"model_config.json":               `{"model_architecture": "yolov8", "task_type": "object-detection", "backend_type": "onnx", "quantization": "fp16", "static_batch_size": 2, "model_features": {"nms_fused": {"max_detections": 100}}, "recommended_parameters": {"confidence": 1, "per_class_confidence": {"b": 0.5, "a": 0.25}}}`,
		"weights.onnx":                    "w",
		"class_names.txt":                 "a\nb\n",
		"nested/extra.json":               "{}",
		".weights.onnx.lock":              "",
		".hidden/x":                       "x",
		"model_dependencies/dep/file.txt": "d",
	})
	if !IsModelDir(dir) || IsModelDir(filepath.Dir(dir)) {
		t.Fatal("IsModelDir")
	}
	m, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	md, p := m.Metadata, m.Package()
	if md.ModelID != dir || md.ModelArchitecture != "yolov8" || *md.TaskType != "object-detection" || len(md.Packages) != 1 {
		t.Fatalf("model %+v", md)
	}
	if p.PackageID != "mydetector" || p.Backend != metadata.BackendONNX || p.Quantization != metadata.QuantizationFP16 ||
		p.PackageSource != metadata.SourceLocalCache || *p.StaticBatchSize != 2 || p.ModelFeatures == nil || p.TrustedSource {
		t.Fatalf("package %+v", p)
	}
	if *p.RecommendedParameters.Confidence != 1.0 || p.RecommendedParameters.PerClassConfidence[0].Class != "b" {
		t.Fatalf("recommended %+v", p.RecommendedParameters)
	}
	var handles []string
	for _, a := range p.Artifacts {
		handles = append(handles, a.FileHandle)
		if a.MD5Hash != nil || a.DownloadURL != "" {
			t.Fatalf("local listing has md5/url: %+v", a)
		}
	}
	if strings.Join(handles, ",") != "class_names.txt,nested/extra.json,weights.onnx" {
		t.Fatalf("handles %v", handles)
	}
	// Through the provider interface.
	md2, err := DirProvider{}.ModelMetadata(context.Background(), provider.Request{ModelID: dir})
	if err != nil || md2.Packages[0].PackageID != "mydetector" {
		t.Fatalf("DirProvider: %v", err)
	}
}

func TestHandWrittenCustomCode(t *testing.T) {
	dir := writeDir(t, "my-model.v2", map[string]string{
		"model_config.json": `{"model_module": "model.py", "model_class": "MyModel", "task_type": "classification"}`,
		"model.py":          "class MyModel: pass\n",
	})
	m, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if m.ModelModule != "model.py" || m.ModelClass != "MyModel" || m.Package().Backend != metadata.BackendCustom || m.Package().PackageID != DefaultPackageID {
		t.Fatalf("%+v %+v", m, m.Package())
	}
}

func TestInvalidDirectories(t *testing.T) {
	cases := map[string]map[string]string{
		"no manifest":       {"weights.onnx": "w"},
		"neither pair":      {"model_config.json": `{"model_architecture": "yolov8"}`},
		"bad backend":       {"model_config.json": `{"model_architecture": "yolov8", "backend_type": "tensorrt"}`},
		"bad json":          {"model_config.json": `{"model_architecture": `},
		"bad static batch":  {"model_config.json": `{"model_architecture": "yolov8", "backend_type": "onnx", "static_batch_size": 0}`},
		"bad quantization":  {"model_config.json": `{"model_architecture": "yolov8", "backend_type": "onnx", "quantization": "FP16"}`},
		"manifest is array": {"model_config.json": `[]`},
	}
	for name, files := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Load(context.Background(), writeDir(t, "d", files))
			var ie *InvalidDirError
			if !errors.As(err, &ie) || !errors.Is(err, errdefs.ErrCorruptPackage) {
				t.Fatalf("got %v", err)
			}
		})
	}
	if _, err := Load(context.Background(), filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("missing dir loaded")
	}
}

// TestCachePackageManifests loads every v4 manifest the reference wrote
// (python-cache/tree.json) as a local directory.
func TestCachePackageManifests(t *testing.T) {
	tr := compat.LoadTree(t)
	n := 0
	for _, e := range tr.Entries {
		if e.Kind != "file" || !strings.HasSuffix(e.Path, "/model_config.json") || e.Content == "" {
			continue
		}
		parts := strings.Split(e.Path, "/")
		pkgID := parts[len(parts)-2]
		content := e.Content
		if e.Templated {
			content = tr.Expand(content, t.TempDir())
		}
		dir := writeDir(t, pkgID, map[string]string{"model_config.json": content})
		m, err := Load(context.Background(), dir)
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		p := m.Package()
		if p.PackageID != pkgID || !m.Manifest.Complete() || len(p.Artifacts) != len(m.Manifest.PackageArtifacts) || m.Metadata.ModelID != *m.Manifest.CanonicalModelID {
			t.Fatalf("%s: %+v", e.Path, p)
		}
		hashed := 0
		for _, a := range p.Artifacts {
			if a.MD5Hash != nil {
				hashed++
			}
		}
		if hashed == 0 {
			t.Fatalf("%s: MD5s of package_artifacts lost", e.Path)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no manifests in the tree")
	}
}
