package offlinereg

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

func TestListStatuses(t *testing.T) {
	root := t.TempDir()
	reg, logs := newTestRegistry(t, root)
	ctx := context.Background()
	writeRecordFile(t, reg, "v2-list-1-x.json", `{
 "format_version": 1, "canonical_model_id": "list/1", "requested_aliases": ["l1", 7],
 "source": "cli-install", "recorded_at": "not a time",
 "proven": {"ok1": {"last_proven_at": "2026-01-02T03:04:05.5+00:00"}, "inc1": "2025-01-01T00:00:00+00:00",
            "bad": {"last_proven_at": 5}, "naive": "2025-02-03 04:05:06"},
 "packages": [
  "not-an-object",
  {"package_id": 5, "artifacts": []},
  {"package_id": "ok1", "trusted_source": true, "artifacts": [{"file_handle": "w.onnx"}, {"file_handle": "sub/c.txt"}]},
  {"package_id": "inc1", "trusted_source": "yes", "artifacts": [{"file_handle": "w.onnx"}, {"file_handle": "gone.bin"}, {"file_handle": "../escape"}]},
  {"package_id": "nodir", "artifacts": [{"file_handle": "w.onnx"}]},
  {"package_id": "bad-id", "artifacts": []},
  {"package_id": "mal1", "artifacts": [{"file_handle": 3}]},
  {"package_id": "mal2", "artifacts": ["w.onnx"]},
  {"package_id": "other", "cache_model_id": "list/other", "artifacts": [{"file_handle": "w.onnx"}]},
  {"package_id": "linked", "artifacts": [{"file_handle": "w.onnx"}]}
 ]}`)
	mk := func(model, pkg string, files ...string) string {
		dir, err := reg.home.PackageDir(model, pkg)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			p := filepath.Join(dir, filepath.FromSlash(f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	mk("list/1", "ok1", "w.onnx", "sub/c.txt")
	mk("list/1", "inc1", "w.onnx")
	mk("list/1", "mal1")
	mk("list/1", "mal2")
	mk("list/other", "other", "w.onnx")
	// A package dir that is a symlink to a real dir counts (followed).
	real := mk("elsewhere", "real", "w.onnx")
	linked, _ := reg.home.PackageDir("list/1", "linked")
	if err := os.Symlink(real, linked); err != nil {
		t.Fatal(err)
	}

	list, err := reg.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("%+v %v", list, err)
	}
	st := list[0]
	type row struct {
		id      string
		trusted string
		p       Presence
		missing string
	}
	var got []row
	for _, ps := range st.Packages {
		r := row{id: "<nil>", trusted: "<nil>", p: ps.Presence, missing: strings.Join(ps.MissingFiles, ",")}
		if ps.PackageID != nil {
			r.id = *ps.PackageID
		}
		if ps.TrustedSource != nil {
			r.trusted = map[bool]string{true: "true", false: "false"}[*ps.TrustedSource]
		}
		got = append(got, r)
	}
	want := []row{
		{"<nil>", "<nil>", PresenceMalformed, ""},
		{"<nil>", "<nil>", PresenceMalformed, ""},
		{"ok1", "true", PresenceOK, ""},
		{"inc1", "<nil>", PresenceIncomplete, "gone.bin,../escape"},
		{"nodir", "<nil>", PresenceMissing, ""},
		{"bad-id", "<nil>", PresenceMissing, ""},
		{"mal1", "<nil>", PresenceMalformed, ""},
		{"mal2", "<nil>", PresenceMalformed, ""},
		{"other", "<nil>", PresenceOK, ""},
		{"linked", "<nil>", PresenceOK, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses\n got %v\nwant %v", got, want)
	}
	if !reflect.DeepEqual(st.RequestedAliases, []string{"l1"}) || st.Source == nil || *st.Source != "cli-install" || st.RecordedAt != nil {
		t.Errorf("record fields %+v", st)
	}
	wantProven := map[string]time.Time{
		"ok1":   time.Date(2026, 1, 2, 3, 4, 5, 500000000, time.UTC),
		"inc1":  time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		"naive": time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC),
	}
	if len(st.Proven) != len(wantProven) {
		t.Errorf("proven %v", st.Proven)
	}
	for k, v := range wantProven {
		if !st.Proven[k].Equal(v) {
			t.Errorf("proven[%s] = %v, want %v", k, st.Proven[k], v)
		}
	}
	for _, w := range []string{"malformed trusted_source", "unparsable timestamp"} {
		if !logs.Contains(w) {
			t.Errorf("no warning %q", w)
		}
	}
}

func TestLookupOrder(t *testing.T) {
	reg, logs := newTestRegistry(t, t.TempDir())
	ctx := context.Background()
	canonPath, _ := reg.RecordPath("shared")
	// Two records claim alias "shared"; the first in file-name order wins.
	writeRecordFile(t, reg, "b.json", sprintf(minimalRecord, "model/b"))
	writeRecordFile(t, reg, "a.json", sprintf(minimalRecord, "model/a"))
	m, err := reg.LoadModelMetadata(ctx, "shared")
	if err != nil || m == nil || m.ModelID != "model/a" {
		t.Fatalf("got %+v %v", m, err)
	}
	if !logs.Contains("alias claimed by several records") {
		t.Error("shared alias not logged")
	}
	list, _ := reg.List(ctx)
	if len(list) != 2 || !reflect.DeepEqual(list[0].SharedAliases, []string{"shared"}) {
		t.Errorf("shared aliases not reported: %+v", list)
	}
	// A record stored under slug(id) wins over alias matches.
	writeRecordFile(t, reg, filepath.Base(canonPath), sprintf(minimalRecord, "shared"))
	if m, _ := reg.LoadModelMetadata(ctx, "shared"); m == nil || m.ModelID != "shared" {
		t.Fatalf("direct record not preferred: %+v", m)
	}
	// An unreadable direct record falls back to the aliases; an unusable but
	// readable one does not (as in the reference).
	writeRecordFile(t, reg, filepath.Base(canonPath), `{broken`)
	if m, _ := reg.LoadModelMetadata(ctx, "shared"); m == nil || m.ModelID != "model/a" {
		t.Fatalf("no fallback past an unreadable direct record: %+v", m)
	}
	writeRecordFile(t, reg, filepath.Base(canonPath), `{"format_version": 1, "canonical_model_id": "shared", "model": {}, "packages": []}`)
	if m, err := reg.LoadModelMetadata(ctx, "shared"); m != nil || err != nil {
		t.Fatalf("unusable direct record: %+v %v", m, err)
	}
	// Unknown ids and a missing registry give nothing, without error.
	if m, err := reg.LoadModelMetadata(ctx, "nope"); m != nil || err != nil {
		t.Fatalf("%v %v", m, err)
	}
	empty, _ := newTestRegistry(t, t.TempDir())
	if m, err := empty.LoadModelMetadata(ctx, "nope"); m != nil || err != nil {
		t.Fatalf("%v %v", m, err)
	}
	if l, err := empty.List(ctx); l != nil || err != nil {
		t.Fatalf("%v %v", l, err)
	}
}

func decodeObj(t *testing.T, s string) *pyjson.Object {
	t.Helper()
	o, err := pyjson.DecodeObject([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestDecodePackageRules(t *testing.T) {
	const art = `"artifacts": [{"file_handle": "w", "md5_hash": "m"}]`
	rejected := map[string]string{
		"no id":             `{"backend": "onnx", ` + art + `}`,
		"int id":            `{"package_id": 5, "backend": "onnx", ` + art + `}`,
		"no backend":        `{"package_id": "p", ` + art + `}`,
		"bad backend":       `{"package_id": "p", "backend": "hf", ` + art + `}`,
		"upper backend":     `{"package_id": "p", "backend": "ONNX", ` + art + `}`,
		"no md5":            `{"package_id": "p", "backend": "onnx", "artifacts": [{"file_handle": "w"}]}`,
		"null md5":          `{"package_id": "p", "backend": "onnx", "artifacts": [{"file_handle": "w", "md5_hash": null}]}`,
		"int handle":        `{"package_id": "p", "backend": "onnx", "artifacts": [{"file_handle": 1, "md5_hash": "m"}]}`,
		"artefact string":   `{"package_id": "p", "backend": "onnx", "artifacts": ["w"]}`,
		"artifacts object":  `{"package_id": "p", "backend": "onnx", "artifacts": {"a": 1}}`,
		"bad quantization":  `{"package_id": "p", "backend": "onnx", "quantization": "FP16", ` + art + `}`,
		"bad recommended":   `{"package_id": "p", "backend": "onnx", "recommended_parameters": {"confidence": "high"}, ` + art + `}`,
		"bad per-class map": `{"package_id": "p", "backend": "onnx", "recommended_parameters": {"per_class_confidence": [1]}, ` + art + `}`,
	}
	for name, s := range rejected {
		if _, err := DecodePackage(decodeObj(t, s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}

	p, err := DecodePackage(decodeObj(t, `{"package_id": "p", "backend": "trt", "artifacts": [],
	  "quantization": "fp16", "trusted_source": 1, "dynamic_batch_size_supported": "yes", "static_batch_size": 2.0,
	  "cache_model_id": "c/1", "model_features": [1], "recommended_parameters": {"confidence": 1, "extra": true},
	  "trt_package_details": {"min_dynamic_batch_size": 1, "max_dynamic_batch_size": "8", "same_cc_compatible": 1, "trt_forward_compatible": [], "trt_lean_runtime_excluded": "x"},
	  "onnx_package_details": {"opset": true},
	  "torch_script_package_details": {"torch_version": "2.6.00", "torch_vision_version": "nope", "supported_device_types": ["mps", "cpu", "cpu"]},
	  "environment_requirements": {"kind": "gpu-server", "cuda_device_cc": "8.09", "cuda_device_name": "L4", "driver_version": "535.104.05", "cuda_version": "twelve", "os_version": 22}}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.PackageSource != metadata.SourceLocalCache || p.TrustedSource || p.DynamicBatchSizeSupported != nil || p.StaticBatchSize != nil ||
		p.CacheModelID != "c/1" || p.ModelFeatures != nil || *p.RecommendedParameters.Confidence != 1.0 || p.Quantization != metadata.QuantizationFP16 {
		t.Errorf("scalar fields: %+v", p)
	}
	if d := p.TRTPackageDetails; d == nil || *d.MinDynamicBatchSize != 1 || d.MaxDynamicBatchSize != nil || !d.SameCCCompatible || d.TRTForwardCompatible || !d.TRTLeanRuntimeExcluded {
		t.Errorf("trt details: %+v", d)
	}
	if p.ONNXPackageDetails != nil {
		t.Errorf("bool opset accepted: %+v", p.ONNXPackageDetails)
	}
	if d := p.TorchScriptPackageDetails; d == nil || d.TorchVersion != "2.6.0" || d.TorchVisionVersion != nil || !reflect.DeepEqual(d.SupportedDeviceTypes, []string{"cpu", "mps"}) {
		t.Errorf("torch details: %+v", d)
	}
	if e := p.EnvironmentRequirements; e == nil || e.CUDADeviceCC != "8.9" || *e.DriverVersion != "535.104.5" || e.CUDAVersion != nil || e.OSVersion != nil || e.Kind != metadata.MachineGPUServer {
		t.Errorf("environment: %+v", e)
	}

	envCases := map[string]bool{ // environment_requirements -> kept?
		`{"cuda_device_cc": "x", "cuda_device_name": "L4"}`:                                                 false,
		`{"cuda_device_cc": "8.9", "cuda_device_name": 4}`:                                                  false,
		`{"cuda_device_cc": "8.9"}`:                                                                         false,
		`{"kind": "jetson", "cuda_device_cc": "8.7", "cuda_device_name": "Orin"}`:                           false,
		`{"kind": "jetson", "cuda_device_cc": "8.7", "cuda_device_name": "Orin", "l4t_version": "bad"}`:     false,
		`{"kind": "jetson", "cuda_device_cc": "8.7", "cuda_device_name": "Orin", "l4t_version": "36.04.3"}`: true,
		`{"kind": "other", "cuda_device_cc": "8.7", "cuda_device_name": "x"}`:                               true,
		`"8.9"`: false,
	}
	for env, kept := range envCases {
		p, err := DecodePackage(decodeObj(t, `{"package_id": "p", "backend": "trt", "environment_requirements": `+env+`}`))
		if err != nil {
			t.Fatal(err)
		}
		if (p.EnvironmentRequirements != nil) != kept {
			t.Errorf("env %s: kept=%v", env, p.EnvironmentRequirements != nil)
		}
	}
	p, _ = DecodePackage(decodeObj(t, `{"package_id": "p", "backend": "trt", "environment_requirements": {"kind": "jetson", "cuda_device_cc": "8.7", "cuda_device_name": "Orin", "l4t_version": "36.04.3", "jetson_product_name": "Nano"}}`))
	if e := p.EnvironmentRequirements; e.Kind != metadata.MachineJetson || e.L4TVersion != "36.4.3" || *e.JetsonProductName != "Nano" {
		t.Errorf("jetson: %+v", e)
	}
	if p, _ := DecodePackage(decodeObj(t, `{"package_id": "p", "backend": "onnx", "trusted_source": true}`)); !p.TrustedSource {
		t.Error("JSON true not trusted")
	}
}

func TestModelMetadataRules(t *testing.T) {
	const pkg = `"packages": [{"package_id": "p", "backend": "onnx", "artifacts": []}]`
	unusable := map[string]string{
		"no canonical":       `{"format_version": 1, "model": {"model_architecture": "a"}, ` + pkg + `}`,
		"model not object":   `{"format_version": 1, "canonical_model_id": "c", "model": [], ` + pkg + `}`,
		"no architecture":    `{"format_version": 1, "canonical_model_id": "c", "model": {}, ` + pkg + `}`,
		"no packages":        `{"format_version": 1, "canonical_model_id": "c", "model": {"model_architecture": "a"}}`,
		"no valid package":   `{"format_version": 1, "canonical_model_id": "c", "model": {"model_architecture": "a"}, "packages": [{"package_id": "p"}, 3]}`,
		"bad dependency":     `{"format_version": 1, "canonical_model_id": "c", "model": {"model_architecture": "a", "model_dependencies": [{"name": "x"}]}, ` + pkg + `}`,
		"dependency string":  `{"format_version": 1, "canonical_model_id": "c", "model": {"model_architecture": "a", "model_dependencies": "abc"}, ` + pkg + `}`,
		"bad recommendation": `{"format_version": 1, "canonical_model_id": "c", "model": {"model_architecture": "a", "recommended_parameters": {"confidence": []}}, ` + pkg + `}`,
	}
	for name, s := range unusable {
		rec, err := ParseRecord([]byte(s))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if m, err := rec.ModelMetadata(nil); err == nil {
			t.Errorf("%s: usable: %+v", name, m)
		}
	}
	rec, _ := ParseRecord([]byte(`{"format_version": 0, "canonical_model_id": "c", "model": {"model_architecture": "a",
	  "task_type": 5, "model_variant": "v", "model_dependencies": [], "recommended_parameters": "x"}, ` + pkg + `}`))
	m, err := rec.ModelMetadata(nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.TaskType != nil || *m.ModelVariant != "v" || m.ModelDependencies != nil || m.RecommendedParameters != nil || len(m.Packages) != 1 {
		t.Errorf("lenient fields: %+v", m)
	}
}

func TestWriterNormalizesAndNullsVersions(t *testing.T) {
	reg, _ := newTestRegistry(t, t.TempDir())
	md5 := "0123456789abcdef0123456789abcdef"
	meta := &metadata.ModelMetadata{
		ModelID: "v/1", ModelArchitecture: "a",
		ModelDependencies: []metadata.ModelDependency{},
		Packages: []metadata.ModelPackage{{
			PackageID: "p", Backend: metadata.BackendTRT, Artifacts: []metadata.Artifact{{FileHandle: "e", MD5Hash: &md5}},
			EnvironmentRequirements: &metadata.EnvironmentRequirements{Kind: metadata.MachineGPUServer, CUDADeviceCC: "8.09",
				CUDADeviceName: "L4", DriverVersion: metadata.Str("R535"), CUDAVersion: metadata.Str("12.6.68-1"), TRTVersion: metadata.Str("v10.3.0.30")},
			TorchScriptPackageDetails: &metadata.TorchScriptPackageDetails{TorchVersion: "latest", SupportedDeviceTypes: []string{"cuda", "cpu", "cuda"}},
		}},
	}
	if ok, err := reg.RecordSuccessfulLoad(context.Background(), meta, "v/1", "p", SourceCLIInstall, time.Date(2026, 5, 6, 7, 8, 9, 1500, time.FixedZone("x", 3600))); !ok || err != nil {
		t.Fatal(ok, err)
	}
	path, _ := reg.RecordPath("v/1")
	b, _ := os.ReadFile(path)
	for _, want := range []string{`"cuda_device_cc": "8.9"`, `"driver_version": null`, `"cuda_version": "12.6.68.post1"`,
		`"trt_version": "10.3.0.30"`, `"torch_version": null`, `"model_dependencies": null`,
		`"recorded_at": "2026-05-06T06:08:09.000001+00:00"`, "\"supported_device_types\": [\n          \"cpu\",\n          \"cuda\"\n        ]"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record lacks %s:\n%s", want, b)
		}
	}
	if b[len(b)-1] != '}' {
		t.Error("trailing newline")
	}
}

func TestTimestamps(t *testing.T) {
	cases := map[time.Time]string{
		time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC): "2026-01-02T03:04:05.123456+00:00",
		time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC):         "2026-01-02T03:04:05+00:00",
		time.Date(2026, 1, 2, 3, 4, 5, 999, time.UTC):       "2026-01-02T03:04:05+00:00",
		time.Date(2026, 1, 3, 0, 0, 0, 500000000, time.UTC): "2026-01-03T00:00:00.500000+00:00",
	}
	for in, want := range cases {
		if got := FormatTimestamp(in); got != want {
			t.Errorf("FormatTimestamp(%v) = %q, want %q", in, got, want)
		}
	}
	parse := map[string]time.Time{
		"2026-01-02T03:04:05.123456+00:00": time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC),
		"2026-01-02T03:04:05+02:00":        time.Date(2026, 1, 2, 1, 4, 5, 0, time.UTC),
		"2026-01-02T03:04:05Z":             time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02 03:04:05":              time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02T03:04":                 time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC),
		"2026-01-02":                       time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC),
	}
	for in, want := range parse {
		if got, ok := ParseTimestamp(in); !ok || !got.Equal(want) {
			t.Errorf("ParseTimestamp(%q) = %v %v, want %v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2026-13-01", "2026-01-02T25:00:00"} {
		if _, ok := ParseTimestamp(bad); ok {
			t.Errorf("ParseTimestamp(%q) accepted", bad)
		}
	}
}

func TestParseRecordFormatVersion(t *testing.T) {
	for doc, ok := range map[string]bool{
		`{"format_version": 1}`:                     true,
		`{"format_version": 0}`:                     true,
		`{"format_version": -5}`:                    true,
		`{"format_version": -18446744073709551617}`: true,
		`{"format_version": 2}`:                     false,
		`{"format_version": 18446744073709551616}`:  false,
		`{"format_version": 1.0}`:                   false,
		`{"format_version": true}`:                  false,
		`{"format_version": null}`:                  false,
		`{}`:                                        false,
		`[]`:                                        false,
		`{"format_version": 1} x`:                   false,
		`{"format_version": 1, "a": NaN}`:           true,
	} {
		if _, err := ParseRecord([]byte(doc)); (err == nil) != ok {
			t.Errorf("ParseRecord(%s) err = %v, want ok=%v", doc, err, ok)
		}
	}
}
