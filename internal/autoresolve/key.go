package autoresolve

import (
	"fmt"
	"math/big"
	"reflect"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// Provider names that get the Roboflow treatment (offline swap, env key).
const (
	ProviderRoboflow        = "roboflow"
	ProviderRoboflowOffline = "roboflow-offline-weights"
	// localAPIKey is the reference's placeholder key: for Roboflow providers
	// it means "no explicit key" and falls back to ROBOFLOW_API_KEY.
	localAPIKey = "local"
)

// DefaultForwardedKwargNames are the **kwargs names the reference forwards
// to dependency loads when the caller does not say otherwise.
func DefaultForwardedKwargNames() []string {
	return []string{"owlv2_enforce_model_compilation", "owlv2_class_embeddings_cache", "owlv2_images_embeddings_cache"}
}

// BatchSize is a requested batch size: one value, or an inclusive range.
type BatchSize struct {
	Min, Max int64
	// Range selects [Min, Max]; otherwise the request is the single value Min.
	Range bool
}

// FixedBatchSize requests exactly n.
func FixedBatchSize(n int64) *BatchSize { return &BatchSize{Min: n, Max: n} }

// BatchSizeRange requests [lo, hi].
func BatchSizeRange(lo, hi int64) *BatchSize { return &BatchSize{Min: lo, Max: hi, Range: true} }

func (b *BatchSize) value() any {
	if b == nil {
		return nil
	}
	if b.Range {
		return []any{pyjson.NewInt(b.Min), pyjson.NewInt(b.Max)}
	}
	return pyjson.NewInt(b.Min)
}

// QueryParam is one extra query parameter for the weights provider.
type QueryParam struct{ Name, Value string }

func strList(s []string) []any {
	out := make([]any, 0, len(s))
	for _, v := range s {
		out = append(out, v)
	}
	return out
}

func optStr(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

// runtimeObject is the key's runtime_compatibility (version 1) for rt:
// versions in PEP 440 normal form when they parse, as given otherwise
// (negotiation.md §5); the execution providers sorted.
func runtimeObject(r negotiation.Runtime) *pyjson.Object {
	rc := normalizedRuntime(r)
	var eps any
	if rc.AvailableONNXExecutionProviders != nil {
		s := append([]string(nil), rc.AvailableONNXExecutionProviders...)
		sort.Strings(s)
		eps = strList(s)
	}
	return pyjson.ObjectOf(
		"version", pyjson.NewInt(1),
		"gpu_available", rc.GPUAvailable,
		"gpu_devices", strList(rc.GPUDevices),
		"gpu_devices_cc", strList(rc.GPUDevicesCC),
		"driver_version", optStr(rc.DriverVersion),
		"cuda_version", optStr(rc.CUDAVersion),
		"trt_version", optStr(rc.TRTVersion),
		"jetson_type", optStr(rc.JetsonType),
		"l4t_version", optStr(rc.L4TVersion),
		"os_version", optStr(rc.OSVersion),
		"torch_available", rc.TorchAvailable,
		"torch_version", optStr(rc.TorchVersion),
		"torchvision_version", optStr(rc.TorchvisionVersion),
		"onnxruntime_version", optStr(rc.ONNXRuntimeVersion),
		"available_onnx_execution_providers", eps,
		"hf_transformers_available", rc.HFTransformersAvailable,
		"trt_python_package_available", rc.TRTPythonPackageAvailable,
	)
}

// Request is a model-load request as the key sees it (§8.1). Build it with
// NewRequest, which sets the reference's defaults (several are true).
type Request struct {
	// Provider is the weights provider as requested ("roboflow" by default);
	// the key uses EffectiveProvider.
	Provider string
	// ModelID is the requested id, as given.
	ModelID string
	// ModelPackageID pins a package (nil: negotiate).
	ModelPackageID *string
	// Backends: nil is null; values are lower-cased, de-duplicated and sorted.
	Backends []string
	// BatchSize: nil is null.
	BatchSize *BatchSize
	// Quantization: nil is null; de-duplicated and sorted, case kept.
	Quantization []string
	// Device as resolved by the caller: "cpu", "cuda", "cuda:0", "mps", ...
	Device string
	// ONNXExecutionProviders: nil is null; order kept.
	ONNXExecutionProviders []negotiation.ExecutionProvider

	DefaultONNXTRTOptions        bool
	AllowUntrustedPackages       bool
	TRTEngineHostCodeAllowed     bool
	AllowLocalCodePackages       bool
	AllowLoadingDependencyModels bool

	// NMSFusionPreferences: nil, bool or a mapping (pyjson values).
	NMSFusionPreferences any
	// DependencyModelsParams: nil ({}) or a mapping; values may hold
	// Python-only types (pyjson.Set, Tuple, Enum, Path), canonicalized here.
	DependencyModelsParams any
	// ForwardedDependencyKwargs: nil ({}) or a mapping, usually built with
	// SelectForwardedKwargs.
	ForwardedDependencyKwargs any

	// Runtime is the machine the request was negotiated for, as x-rayed.
	Runtime negotiation.Runtime

	VerifyHashWhileDownload   bool
	DownloadFilesWithoutHash  bool
	MaxPackageLoadingAttempts *int64
	// WeightsProviderExtraQueryParams: nil is null; order kept.
	WeightsProviderExtraQueryParams []QueryParam
	// WeightsProviderExtraHeaders: nil is null.
	WeightsProviderExtraHeaders map[string]string

	// APIKey is the explicit key (nil: none).
	APIKey *string
	// EnvAPIKey is ROBOFLOW_API_KEY (nil: unset).
	EnvAPIKey *string
	// Offline is the latched OFFLINE_MODE.
	Offline bool
}

// NewRequest returns a request with the reference's from_pretrained defaults.
func NewRequest(modelID, device string) Request {
	return Request{
		Provider:                     ProviderRoboflow,
		ModelID:                      modelID,
		Device:                       device,
		DefaultONNXTRTOptions:        true,
		TRTEngineHostCodeAllowed:     true,
		AllowLocalCodePackages:       true,
		AllowLoadingDependencyModels: true,
		VerifyHashWhileDownload:      true,
	}
}

func (r *Request) provider() string {
	if r.Provider == "" {
		return ProviderRoboflow
	}
	return r.Provider
}

// EffectiveProvider is the provider after the offline swap: "roboflow"
// becomes "roboflow-offline-weights" in offline mode.
func (r *Request) EffectiveProvider() string {
	p := r.provider()
	if r.Offline && p == ProviderRoboflow {
		return ProviderRoboflowOffline
	}
	return p
}

// EffectiveAPIKey is the key the load uses: the explicit key; for Roboflow
// providers a missing key or the placeholder "local" falls back to
// ROBOFLOW_API_KEY (possibly nil).
func (r *Request) EffectiveAPIKey() *string {
	p := r.EffectiveProvider()
	if p != ProviderRoboflow && p != ProviderRoboflowOffline {
		return r.APIKey
	}
	if r.APIKey == nil || *r.APIKey == localAPIKey {
		return r.EnvAPIKey
	}
	return r.APIKey
}

// SelectForwardedKwargs picks from kwargs the names forwarded to dependency
// loads (names nil means DefaultForwardedKwargNames); absent names are skipped.
func SelectForwardedKwargs(names []string, kwargs *pyjson.Object) *pyjson.Object {
	if names == nil {
		names = DefaultForwardedKwargNames()
	}
	out := pyjson.NewObject()
	for _, n := range names {
		if v, ok := kwargs.Get(n); ok {
			out.Set(n, v)
		}
	}
	return out
}

// KeyError reports a request that cannot be turned into a key.
type KeyError struct {
	Field  string
	Reason string
}

func (e *KeyError) Error() string {
	return fmt.Sprintf("auto-resolution key: %s: %s", e.Field, e.Reason)
}

func (e *KeyError) Unwrap() error { return errdefs.ErrInvalidParameter }

// Content returns the 23-key request document (§8.1) as pyjson values.
func (r *Request) Content() (*pyjson.Object, error) {
	if r.Device == "" {
		return nil, &KeyError{Field: "device", Reason: "must be resolved (e.g. \"cpu\") before building the key"}
	}
	var backends any
	if r.Backends != nil {
		lower := make([]string, len(r.Backends))
		for i, b := range r.Backends {
			lower[i] = strings.ToLower(b)
		}
		backends = strList(sortedUnique(lower))
	}
	var quant any
	if r.Quantization != nil {
		quant = strList(sortedUnique(r.Quantization))
	}
	var eps any
	if r.ONNXExecutionProviders != nil {
		list := make([]any, 0, len(r.ONNXExecutionProviders))
		for _, ep := range r.ONNXExecutionProviders {
			if ep.Options == nil {
				list = append(list, ep.Name)
				continue
			}
			opts, err := canonical(ep.Options)
			if err != nil {
				return nil, &KeyError{Field: "onnx_execution_providers", Reason: err.Error()}
			}
			list = append(list, []any{ep.Name, opts})
		}
		eps = list
	}
	nms, err := canonical(r.NMSFusionPreferences)
	if err != nil {
		return nil, &KeyError{Field: "nms_fusion_preferences", Reason: err.Error()}
	}
	depParams, err := canonicalMapping(r.DependencyModelsParams)
	if err != nil {
		return nil, &KeyError{Field: "dependency_models_params", Reason: err.Error()}
	}
	forwarded, err := canonicalMapping(r.ForwardedDependencyKwargs)
	if err != nil {
		return nil, &KeyError{Field: "forwarded_dependency_kwargs", Reason: err.Error()}
	}
	var maxAttempts any
	if r.MaxPackageLoadingAttempts != nil {
		maxAttempts = pyjson.NewInt(*r.MaxPackageLoadingAttempts)
	}
	var query any
	if r.WeightsProviderExtraQueryParams != nil {
		list := make([]any, 0, len(r.WeightsProviderExtraQueryParams))
		for _, q := range r.WeightsProviderExtraQueryParams {
			list = append(list, []any{q.Name, q.Value})
		}
		query = list
	}
	var headers any
	if r.WeightsProviderExtraHeaders != nil {
		o := pyjson.NewObject()
		for k, v := range r.WeightsProviderExtraHeaders {
			o.Set(k, v)
		}
		headers = o
	}
	return pyjson.ObjectOf(
		"provider", r.EffectiveProvider(),
		"model_id", r.ModelID,
		"requested_model_package_id", optStr(r.ModelPackageID),
		"requested_backends", backends,
		"requested_batch_size", r.BatchSize.value(),
		"requested_quantization", quant,
		"device", r.Device,
		"onnx_execution_providers", eps,
		"default_onnx_trt_options", r.DefaultONNXTRTOptions,
		"allow_untrusted_packages", r.AllowUntrustedPackages,
		"trt_engine_host_code_allowed", r.TRTEngineHostCodeAllowed,
		"allow_local_code_packages", r.AllowLocalCodePackages,
		"nms_fusion_preferences", nms,
		"dependency_models_params", depParams,
		"forwarded_dependency_kwargs", forwarded,
		"allow_loading_dependency_models", r.AllowLoadingDependencyModels,
		"runtime_compatibility", runtimeObject(r.Runtime),
		"verify_hash_while_download", r.VerifyHashWhileDownload,
		"download_files_without_hash", r.DownloadFilesWithoutHash,
		"max_package_loading_attempts", maxAttempts,
		"weights_provider_extra_query_params", query,
		"weights_provider_extra_headers", headers,
		"api_key", optStr(r.EffectiveAPIKey()),
	), nil
}

// Key returns the entry key (hash_dict of the request document) and the
// exact hashed text. The text holds the effective API key in clear: never
// log or store it.
func Key(r Request) (hash string, contentJSON []byte, err error) {
	content, err := r.Content()
	if err != nil {
		return "", nil, err
	}
	contentJSON, err = pyjson.MarshalSorted(content)
	if err != nil {
		return "", nil, &KeyError{Field: "request", Reason: err.Error()}
	}
	hash, err = pyjson.HashDict(content)
	if err != nil {
		return "", nil, &KeyError{Field: "request", Reason: err.Error()}
	}
	return hash, contentJSON, nil
}

// CredentialHash is hash_dict({"api_key": apiKey}) (nil is null): entries
// record it so that a scan never hands one credential's resolution to another.
// Invalid UTF-8 in the key (impossible for a Python str) is replaced by U+FFFD.
func CredentialHash(apiKey *string) string {
	var v any
	if apiKey != nil {
		v = strings.ToValidUTF8(*apiKey, "\uFFFD")
	}
	h, err := pyjson.HashDict(pyjson.ObjectOf("api_key", v))
	if err != nil {
		// Only invalid UTF-8 can fail, and it was replaced above.
		panic(fmt.Sprintf("autoresolve: hashing a string failed: %v", err))
	}
	return h
}

func sortedUnique(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	n := 0
	for i, v := range out {
		if i == 0 || v != out[n-1] {
			out[n] = v
			n++
		}
	}
	return out[:n]
}

// canonicalMapping canonicalizes a mapping; nil becomes {}.
func canonicalMapping(v any) (*pyjson.Object, error) {
	if v == nil {
		return pyjson.NewObject(), nil
	}
	c, err := canonical(v)
	if err != nil {
		return nil, err
	}
	o, ok := c.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("must be a mapping, got %T", v)
	}
	return o, nil
}

// canonical turns Python argument values into JSON values the way the
// reference does before hashing: enums become their value, paths strings,
// tuples lists, sets lists sorted by their sorted JSON, mapping keys strings.
// (Key order needs no work: the key document is serialized sorted.)
func canonical(v any) (any, error) {
	switch x := v.(type) {
	case nil, bool, string, pyjson.Int, *big.Int, float64, float32, int, int64, int32, uint32, uint64:
		return x, nil
	case pyjson.Enum:
		return x.Value, nil
	case pyjson.Path:
		return string(x), nil
	case []any:
		return canonicalList(x)
	case pyjson.Tuple:
		return canonicalList(x)
	case pyjson.Set:
		items, err := canonicalList(x)
		if err != nil {
			return nil, err
		}
		type keyed struct {
			k string
			v any
		}
		ks := make([]keyed, len(items))
		for i, it := range items {
			b, err := pyjson.MarshalSorted(it)
			if err != nil {
				return nil, err
			}
			ks[i] = keyed{string(b), it}
		}
		sort.SliceStable(ks, func(i, j int) bool { return ks[i].k < ks[j].k })
		out := make([]any, len(ks))
		for i := range ks {
			out[i] = ks[i].v
		}
		return out, nil
	case *pyjson.Object:
		if x == nil {
			return nil, nil
		}
		o := pyjson.NewObject()
		for _, k := range x.Keys() {
			vv, _ := x.Get(k)
			c, err := canonical(vv)
			if err != nil {
				return nil, err
			}
			o.Set(k, c)
		}
		return o, nil
	case map[string]any:
		o := pyjson.NewObject()
		for k, vv := range x {
			c, err := canonical(vv)
			if err != nil {
				return nil, err
			}
			o.Set(k, c)
		}
		return o, nil
	case map[any]any:
		o := pyjson.NewObject()
		for k, vv := range x {
			ks, err := pyStr(k)
			if err != nil {
				return nil, err
			}
			c, err := canonical(vv)
			if err != nil {
				return nil, err
			}
			o.Set(ks, c)
		}
		return o, nil
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
		return canonicalList(items)
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			m := make(map[string]any, rv.Len())
			for _, k := range rv.MapKeys() {
				m[k.String()] = rv.MapIndex(k).Interface()
			}
			return canonical(m)
		}
	case reflect.String:
		return rv.String(), nil
	}
	return nil, fmt.Errorf("unsupported value of type %T", v)
}

func canonicalList(items []any) ([]any, error) {
	out := make([]any, len(items))
	for i, it := range items {
		c, err := canonical(it)
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

// pyStr is Python's str() for the key types a mapping may have.
func pyStr(k any) (string, error) {
	switch x := k.(type) {
	case string:
		return x, nil
	case pyjson.Enum:
		return x.Value, nil
	case pyjson.Path:
		return string(x), nil
	case pyjson.Int:
		return x.String(), nil
	case int, int64, int32, uint32, uint64:
		return fmt.Sprint(x), nil
	case bool:
		if x {
			return "True", nil
		}
		return "False", nil
	case nil:
		return "None", nil
	case float64:
		switch f := pyjson.FormatFloat(x); f {
		case "Infinity":
			return "inf", nil
		case "-Infinity":
			return "-inf", nil
		case "NaN":
			return "nan", nil
		default:
			return f, nil
		}
	}
	return "", fmt.Errorf("unsupported mapping key of type %T", k)
}

// normalizedRuntime is r as the key records it (on-disk-contract §8.1):
// versions in PEP 440 normal form when they parse, as given otherwise.
func normalizedRuntime(r negotiation.Runtime) negotiation.Runtime {
	norm := func(s *string) *string {
		if s == nil {
			return nil
		}
		if n, err := pep440.Normalize(*s); err == nil {
			return &n
		}
		v := *s
		return &v
	}
	ccs := make([]string, len(r.GPUDevicesCC))
	for i, c := range r.GPUDevicesCC {
		ccs[i] = *norm(&c)
	}
	var eps []string
	if r.AvailableONNXExecutionProviders != nil {
		eps = append([]string{}, r.AvailableONNXExecutionProviders...)
	}
	return negotiation.Runtime{
		GPUAvailable:                    r.GPUAvailable,
		GPUDevices:                      append([]string{}, r.GPUDevices...),
		GPUDevicesCC:                    ccs,
		DriverVersion:                   norm(r.DriverVersion),
		CUDAVersion:                     norm(r.CUDAVersion),
		TRTVersion:                      norm(r.TRTVersion),
		JetsonType:                      copyStr(r.JetsonType),
		L4TVersion:                      norm(r.L4TVersion),
		OSVersion:                       copyStr(r.OSVersion),
		TorchAvailable:                  r.TorchAvailable,
		TorchVersion:                    norm(r.TorchVersion),
		TorchvisionVersion:              norm(r.TorchvisionVersion),
		ONNXRuntimeVersion:              norm(r.ONNXRuntimeVersion),
		AvailableONNXExecutionProviders: eps,
		HFTransformersAvailable:         r.HFTransformersAvailable,
		TRTPythonPackageAvailable:       r.TRTPythonPackageAvailable,
	}
}

func copyStr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}
