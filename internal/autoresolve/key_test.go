package autoresolve

import (
	"encoding/json"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pyjson"
)

type keyRecord struct {
	Name                 string                     `json:"name"`
	Inputs               map[string]json.RawMessage `json:"inputs"`
	EnvRoboflowAPIKey    *string                    `json:"env_roboflow_api_key"`
	OfflineMode          bool                       `json:"offline_mode"`
	RuntimeCompatibility json.RawMessage            `json:"runtime_compatibility"`
	EffectiveProvider    string                     `json:"effective_provider"`
	EffectiveAPIKey      *string                    `json:"effective_api_key"`
	ContentJSON          string                     `json:"content_json"`
	Hash                 string                     `json:"hash"`
}

func pyString(t *testing.T, v any) string {
	t.Helper()
	switch x := v.(type) {
	case string:
		return x
	case pyjson.Enum:
		return x.Value
	}
	t.Fatalf("not a string: %#v", v)
	return ""
}

func pyInt(t *testing.T, v any) int64 {
	t.Helper()
	i, ok := v.(pyjson.Int)
	if !ok {
		t.Fatalf("not an int: %#v", v)
	}
	n, ok := i.Int64()
	if !ok {
		t.Fatalf("int out of range: %v", i)
	}
	return n
}

// items returns the elements of a list or tuple, or the value itself as a
// one-element list (the reference accepts a single value or a list).
func items(v any) []any {
	switch x := v.(type) {
	case []any:
		return x
	case pyjson.Tuple:
		return x
	case pyjson.Set:
		return x
	}
	return []any{v}
}

// requestFromRecord builds a Request from from_pretrained-style inputs,
// applying the documented defaults for absent arguments.
func requestFromRecord(t *testing.T, rec keyRecord) Request {
	t.Helper()
	var modelID string
	if err := json.Unmarshal(rec.Inputs["model_id"], &modelID); err != nil {
		t.Fatal(err)
	}
	args := map[string]any{}
	for k, raw := range rec.Inputs {
		if k != "model_id" {
			args[k] = compat.MustValue(t, raw)
		}
	}
	device, ok := args["device"]
	if !ok {
		t.Fatal("device not given")
	}
	r := NewRequest(modelID, pyString(t, device))
	r.EnvAPIKey = rec.EnvRoboflowAPIKey
	r.Offline = rec.OfflineMode
	var rc struct {
		Version int `json:"version"`
		negotiation.Runtime
	}
	if err := json.Unmarshal(rec.RuntimeCompatibility, &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Version != 1 {
		t.Fatalf("runtime_compatibility version %d", rc.Version)
	}
	r.Runtime = rc.Runtime

	var forwardedNames []string
	kwargs := pyjson.NewObject()
	for k, v := range args {
		switch k {
		case "device":
		case "weights_provider":
			r.Provider = pyString(t, v)
		case "api_key":
			if v != nil {
				s := pyString(t, v)
				r.APIKey = &s
			}
		case "model_package_id":
			if v != nil {
				s := pyString(t, v)
				r.ModelPackageID = &s
			}
		case "backend":
			if v != nil {
				r.Backends = []string{}
				for _, it := range items(v) {
					r.Backends = append(r.Backends, pyString(t, it))
				}
			}
		case "quantization":
			if v != nil {
				r.Quantization = []string{}
				for _, it := range items(v) {
					r.Quantization = append(r.Quantization, pyString(t, it))
				}
			}
		case "batch_size":
			switch x := v.(type) {
			case nil:
			case pyjson.Int:
				r.BatchSize = FixedBatchSize(pyInt(t, x))
			default:
				lst := items(v)
				if len(lst) != 2 {
					t.Fatalf("batch_size %#v", v)
				}
				r.BatchSize = BatchSizeRange(pyInt(t, lst[0]), pyInt(t, lst[1]))
			}
		case "onnx_execution_providers":
			if v != nil {
				r.ONNXExecutionProviders = []negotiation.ExecutionProvider{}
				for _, it := range items(v) {
					if s, ok := it.(string); ok {
						r.ONNXExecutionProviders = append(r.ONNXExecutionProviders, negotiation.ExecutionProvider{Name: s})
						continue
					}
					pair := items(it)
					r.ONNXExecutionProviders = append(r.ONNXExecutionProviders, negotiation.ExecutionProvider{Name: pyString(t, pair[0]), Options: pair[1].(*pyjson.Object)})
				}
			}
		case "default_onnx_trt_options":
			r.DefaultONNXTRTOptions = v.(bool)
		case "allow_untrusted_packages":
			r.AllowUntrustedPackages = v.(bool)
		case "trt_engine_host_code_allowed":
			r.TRTEngineHostCodeAllowed = v.(bool)
		case "allow_local_code_packages":
			r.AllowLocalCodePackages = v.(bool)
		case "allow_loading_dependency_models":
			r.AllowLoadingDependencyModels = v.(bool)
		case "verify_hash_while_download":
			r.VerifyHashWhileDownload = v.(bool)
		case "download_files_without_hash":
			r.DownloadFilesWithoutHash = v.(bool)
		case "max_package_loading_attempts":
			if v != nil {
				n := pyInt(t, v)
				r.MaxPackageLoadingAttempts = &n
			}
		case "nms_fusion_preferences":
			r.NMSFusionPreferences = v
		case "dependency_models_params":
			r.DependencyModelsParams = v
		case "forwarded_kwargs":
			if v != nil {
				forwardedNames = []string{}
				for _, it := range items(v) {
					forwardedNames = append(forwardedNames, pyString(t, it))
				}
			}
		case "kwargs":
			kwargs = v.(*pyjson.Object)
		case "weights_provider_extra_query_params":
			if v != nil {
				r.WeightsProviderExtraQueryParams = []QueryParam{}
				for _, it := range items(v) {
					pair := items(it)
					r.WeightsProviderExtraQueryParams = append(r.WeightsProviderExtraQueryParams, QueryParam{pyString(t, pair[0]), pyString(t, pair[1])})
				}
			}
		case "weights_provider_extra_headers":
			if v != nil {
				o := v.(*pyjson.Object)
				r.WeightsProviderExtraHeaders = map[string]string{}
				for _, hk := range o.Keys() {
					hv, _ := o.Get(hk)
					r.WeightsProviderExtraHeaders[hk] = pyString(t, hv)
				}
			}
		default:
			t.Fatalf("unknown from_pretrained argument %q", k)
		}
	}
	r.ForwardedDependencyKwargs = SelectForwardedKwargs(forwardedNames, kwargs)
	return r
}

func TestKeyVectors(t *testing.T) {
	var recs []keyRecord
	if err := json.Unmarshal(compat.Section(t, "auto_resolution_key"), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no auto_resolution_key records")
	}
	for _, rec := range recs {
		t.Run(rec.Name, func(t *testing.T) {
			r := requestFromRecord(t, rec)
			if got := r.EffectiveProvider(); got != rec.EffectiveProvider {
				t.Errorf("effective provider %q, want %q", got, rec.EffectiveProvider)
			}
			if got := r.EffectiveAPIKey(); (got == nil) != (rec.EffectiveAPIKey == nil) || (got != nil && *got != *rec.EffectiveAPIKey) {
				t.Errorf("effective api key %v, want %v", got, rec.EffectiveAPIKey)
			}
			hash, content, err := Key(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(content) != rec.ContentJSON {
				t.Fatalf("content_json\n got %s\nwant %s", content, rec.ContentJSON)
			}
			if hash != rec.Hash {
				t.Fatalf("hash %s, want %s", hash, rec.Hash)
			}
		})
	}
	t.Logf("auto_resolution_key: checked %d records", len(recs))
}

func TestCredentialHashVectors(t *testing.T) {
	var recs []struct {
		APIKey         *string `json:"api_key"`
		Document       string  `json:"document"`
		CredentialHash string  `json:"credential_hash"`
	}
	if err := json.Unmarshal(compat.Section(t, "credential_hash"), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no credential_hash records")
	}
	for _, rec := range recs {
		var v any
		if rec.APIKey != nil {
			v = *rec.APIKey
		}
		doc, err := pyjson.MarshalSorted(pyjson.ObjectOf("api_key", v))
		if err != nil {
			t.Fatal(err)
		}
		if string(doc) != rec.Document {
			t.Errorf("document %s, want %s", doc, rec.Document)
		}
		if got := CredentialHash(rec.APIKey); got != rec.CredentialHash {
			t.Errorf("CredentialHash(%v) = %s, want %s", rec.APIKey, got, rec.CredentialHash)
		}
	}
	t.Logf("credential_hash: checked %d records", len(recs))
}

func TestKeyRequiresDevice(t *testing.T) {
	r := NewRequest("m", "")
	if _, _, err := Key(r); err == nil {
		t.Fatal("empty device accepted")
	}
}

// The key records versions in PEP 440 normal form, whatever form the x-ray
// gave them in, and never changes the caller's Runtime.
func TestRuntimeNormalizedForTheKey(t *testing.T) {
	cuda, ort, odd := "12.06.0", "v1.22", "not a version"
	rt := negotiation.Runtime{GPUDevicesCC: []string{"08.9"}, CUDAVersion: &cuda, ONNXRuntimeVersion: &ort, TRTVersion: &odd,
		AvailableONNXExecutionProviders: []string{"b", "a"}}
	n := normalizedRuntime(rt)
	if *n.CUDAVersion != "12.6.0" || *n.ONNXRuntimeVersion != "1.22" || *n.TRTVersion != odd || n.GPUDevicesCC[0] != "8.9" {
		t.Fatalf("normalized %+v", n)
	}
	if *rt.CUDAVersion != "12.06.0" || rt.GPUDevicesCC[0] != "08.9" {
		t.Fatal("the caller's runtime was changed")
	}
	obj := runtimeObject(rt)
	eps, _ := obj.Get("available_onnx_execution_providers")
	if l, ok := eps.([]any); !ok || len(l) != 2 || l[0] != "a" {
		t.Fatalf("execution providers in the key: %#v", eps)
	}
}
