package ocibundle

import (
	"errors"
	"strings"
	"testing"
)

func TestEntryName(t *testing.T) {
	ok := map[string]string{"oci-layout": "oci-layout", "./index.json": "index.json", "blobs/": "blobs", "./": ".", "blobs/sha256/": "blobs/sha256"}
	for in, want := range ok {
		if got, err := entryName(in); err != nil || got != want {
			t.Errorf("entryName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"/etc/passwd", "../x", "blobs/../../x", "blobs//x", "a/./b", "a\\b", "a\x00b", "\xff"} {
		if _, err := entryName(bad); !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("entryName(%q): %v", bad, err)
		}
	}
}

func TestLayerMediaType(t *testing.T) {
	cases := map[string]string{
		"weights.onnx": MediaTypeModelWeightRaw, "model.safetensors": MediaTypeModelWeightRaw, "engine.plan": MediaTypeModelWeightRaw,
		"class_names.txt": MediaTypeModelWeightConfigRaw, "preprocessor/preprocessor_config.json": MediaTypeModelWeightConfigRaw,
		"README.md": MediaTypeModelDocRaw, "LICENSE": MediaTypeModelDocRaw, "model.py": MediaTypeModelCodeRaw,
	}
	for h, want := range cases {
		if got := layerMediaType(h); got != want || !isLayerMediaType(got) {
			t.Errorf("%s: %s, want %s", h, got, want)
		}
	}
}

func TestParseDocumentRejects(t *testing.T) {
	good := `{"format_version": 1, "canonical_model_id": "m/1", "cache_model_id": "m/1", "package_id": "p1", "aliases": [], "metadata_source": "offline-registry", ` +
		`"model": {"model_architecture": "yolov8", "task_type": null, "model_variant": null, "model_dependencies": null, "recommended_parameters": null}, ` +
		`"package": {"package_id": "p1", "backend": "onnx", "artifacts": [{"file_handle": "w.onnx", "md5_hash": "0123456789abcdef0123456789abcdef"}]}, ` +
		`"manifest": {"offline_manifest_version": 4, "model_architecture": "yolov8", "task_type": null, "backend_type": "onnx", "model_features": null, "trusted_source": true, "model_dependencies": [], "recommended_parameters": null, "quantization": "fp32", "dynamic_batch_size_supported": true, "static_batch_size": null, "canonical_model_id": "m/1", "package_artifacts": [{"file_handle": "w.onnx", "md5_hash": "0123456789abcdef0123456789abcdef", "unhashed": false, "sha256_hash": null, "source_hash": null, "storage": "shared_blob"}], "dependency_package_paths": [], "model_id": "m/1"}, ` +
		`"dependencies": []}`
	d, err := ParseDocument([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Files()) != 1 || d.Spec().BackendType != "onnx" {
		t.Fatalf("parsed %+v", d)
	}
	bad := map[string][2]string{
		"newer format":          {`"format_version": 1`, `"format_version": 2`},
		"bad package id":        {`"package_id": "p1", "aliases"`, `"package_id": "p/1", "aliases"`},
		"payload names another": {`"package": {"package_id": "p1"`, `"package": {"package_id": "p2"`},
		"md5s disagree":         {`"artifacts": [{"file_handle": "w.onnx", "md5_hash": "0123`, `"artifacts": [{"file_handle": "w.onnx", "md5_hash": "1123`},
		"owner differs":         {`"model_id": "m/1"}`, `"model_id": "m/2"}`},
		"unknown source":        {`"offline-registry"`, `"somewhere"`},
		"not v4":                {`"offline_manifest_version": 4`, `"offline_manifest_version": 3`},
		"unhashed file":         {`"md5_hash": "0123456789abcdef0123456789abcdef", "unhashed": false, "sha256_hash": null, "source_hash": null, "storage": "shared_blob"`, `"md5_hash": null, "unhashed": true, "sha256_hash": "` + strings.Repeat("a", 64) + `", "source_hash": "` + strings.Repeat("b", 64) + `", "storage": "package_file"`},
	}
	for name, r := range bad {
		s := strings.Replace(good, r[0], r[1], 1)
		if s == good {
			t.Fatalf("%s: replacement did not apply", name)
		}
		if _, err := ParseDocument([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
