package modelcache

import (
	"time"

	"github.com/modelcache/modelcache/autoresolve"
	"github.com/modelcache/modelcache/negotiation"
)

// LoadOption sets one from_pretrained parameter.
type LoadOption func(*loadOptions)

type loadOptions struct {
	packageID        *string
	backends         []string
	batch            *batchSize
	quantization     []string
	device           string
	onnxProviders    []autoresolve.ExecutionProvider
	providerName     string
	apiKey           *string
	noResolution     bool
	allowUntrusted   bool
	noVerifyHash     bool
	withoutHash      bool
	lockTimeout      time.Duration
	maxAttempts      int
	progress         ProgressSink
	extraQuery       [][2]string
	extraHeaders     map[string]string
	allowDependency  bool
	nmsPreferences   any
	trtHostCodeAllow bool
}

type batchSize struct {
	lo, hi int
	rng    bool
}

func defaultLoadOptions() loadOptions {
	return loadOptions{providerName: "roboflow", allowDependency: true, trtHostCodeAllow: true}
}

// WithPackageID loads exactly this package (no negotiation).
func WithPackageID(id string) LoadOption { return func(o *loadOptions) { o.packageID = &id } }

// WithBackends restricts negotiation to these backends (onnx, trt, torch, …).
func WithBackends(b ...string) LoadOption {
	return func(o *loadOptions) { o.backends = append([]string{}, b...) }
}

// WithBatchSize requests a fixed batch size.
func WithBatchSize(n int) LoadOption {
	return func(o *loadOptions) { o.batch = &batchSize{lo: n, hi: n} }
}

// WithBatchSizeRange requests a batch size range [lo, hi].
func WithBatchSizeRange(lo, hi int) LoadOption {
	return func(o *loadOptions) { o.batch = &batchSize{lo: lo, hi: hi, rng: true} }
}

// WithQuantization restricts negotiation to these quantizations (fp32, fp16, …).
func WithQuantization(q ...string) LoadOption {
	return func(o *loadOptions) { o.quantization = append([]string{}, q...) }
}

// WithDevice sets the torch-style device ("cpu", "cuda", "cuda:0", …).
func WithDevice(d string) LoadOption { return func(o *loadOptions) { o.device = d } }

// WithONNXExecutionProviders sets the ONNX Runtime execution providers, in order.
func WithONNXExecutionProviders(names ...string) LoadOption {
	return func(o *loadOptions) {
		o.onnxProviders = nil
		for _, n := range names {
			o.onnxProviders = append(o.onnxProviders, autoresolve.ExecutionProvider{Name: n})
		}
	}
}

// WithWeightsProvider selects a weights provider by name (default "roboflow").
func WithWeightsProvider(name string) LoadOption {
	return func(o *loadOptions) { o.providerName = name }
}

// WithAPIKey sets the API key (default: ROBOFLOW_API_KEY for the Roboflow providers).
func WithAPIKey(key string) LoadOption { return func(o *loadOptions) { o.apiKey = &key } }

// WithoutAutoResolutionCache neither reads nor writes the auto-resolution cache
// (use_auto_resolution_cache=False).
func WithoutAutoResolutionCache() LoadOption { return func(o *loadOptions) { o.noResolution = true } }

// AllowUntrustedPackages accepts packages whose trusted_source is false.
func AllowUntrustedPackages() LoadOption { return func(o *loadOptions) { o.allowUntrusted = true } }

// WithoutHashVerification sets verify_hash_while_download=False. Blobs are
// still published only under their verified MD5; the flag only enters the
// resolution key, as in the reference.
func WithoutHashVerification() LoadOption { return func(o *loadOptions) { o.noVerifyHash = true } }

// AllowFilesWithoutHash downloads artefacts the provider gives no MD5 for
// (download_files_without_hash=True).
func AllowFilesWithoutHash() LoadOption { return func(o *loadOptions) { o.withoutHash = true } }

// WithLockTimeout overrides INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT for this load.
func WithLockTimeout(d time.Duration) LoadOption { return func(o *loadOptions) { o.lockTimeout = d } }

// WithMaxPackageAttempts caps how many ranked packages are tried.
func WithMaxPackageAttempts(n int) LoadOption { return func(o *loadOptions) { o.maxAttempts = n } }

// WithProgress receives download progress events.
func WithProgress(p ProgressSink) LoadOption { return func(o *loadOptions) { o.progress = p } }

// WithExtraQueryParams adds query parameters to weights-provider requests.
func WithExtraQueryParams(kv ...[2]string) LoadOption {
	return func(o *loadOptions) { o.extraQuery = append(o.extraQuery, kv...) }
}

// WithExtraHeaders adds headers to weights-provider requests.
func WithExtraHeaders(h map[string]string) LoadOption {
	return func(o *loadOptions) { o.extraHeaders = h }
}

// WithoutDependencyModels sets allow_loading_dependency_models=False.
func WithoutDependencyModels() LoadOption { return func(o *loadOptions) { o.allowDependency = false } }

// WithNMSFusionPreferences sets nms_fusion_preferences (nil, bool or a *pyjson.Object).
func WithNMSFusionPreferences(v any) LoadOption { return func(o *loadOptions) { o.nmsPreferences = v } }

// DisallowTRTEngineHostCode sets trt_engine_host_code_allowed=False.
func DisallowTRTEngineHostCode() LoadOption {
	return func(o *loadOptions) { o.trtHostCodeAllow = false }
}

func (o *loadOptions) negotiationRequest(device string, envProviders []string) negotiation.Request {
	r := negotiation.Request{
		ModelPackageID:            o.packageID,
		Backends:                  o.backends,
		Quantization:              o.quantization,
		Device:                    device,
		ONNXExecutionProviders:    o.onnxProviders,
		AllowUntrustedPackages:    o.allowUntrusted,
		DisallowTRTEngineHostCode: !o.trtHostCodeAllow,
		NMSFusionPreferences:      o.nmsPreferences,
		EnvONNXExecutionProviders: envProviders,
	}
	if o.batch != nil {
		if o.batch.rng {
			r.BatchSize = negotiation.BatchSizeRange(o.batch.lo, o.batch.hi)
		} else {
			r.BatchSize = negotiation.ExactBatchSize(o.batch.lo)
		}
	}
	return r
}

func (o *loadOptions) resolutionRequest(modelID, device string, rc autoresolve.RuntimeCompatibility, envKey *string, offline bool) autoresolve.Request {
	r := autoresolve.NewRequest(modelID, device)
	r.Provider = o.providerName
	r.ModelPackageID = o.packageID
	r.Backends = o.backends
	r.Quantization = o.quantization
	r.ONNXExecutionProviders = o.onnxProviders
	r.AllowUntrustedPackages = o.allowUntrusted
	r.TRTEngineHostCodeAllowed = o.trtHostCodeAllow
	r.AllowLoadingDependencyModels = o.allowDependency
	r.NMSFusionPreferences = o.nmsPreferences
	r.VerifyHashWhileDownload = !o.noVerifyHash
	r.DownloadFilesWithoutHash = o.withoutHash
	if o.maxAttempts > 0 {
		n := int64(o.maxAttempts)
		r.MaxPackageLoadingAttempts = &n
	}
	for _, kv := range o.extraQuery {
		r.WeightsProviderExtraQueryParams = append(r.WeightsProviderExtraQueryParams, autoresolve.QueryParam{Name: kv[0], Value: kv[1]})
	}
	r.WeightsProviderExtraHeaders = o.extraHeaders
	if o.batch != nil {
		if o.batch.rng {
			r.BatchSize = autoresolve.BatchSizeRange(int64(o.batch.lo), int64(o.batch.hi))
		} else {
			r.BatchSize = autoresolve.FixedBatchSize(int64(o.batch.lo))
		}
	}
	r.RuntimeCompatibility = rc
	r.APIKey = o.apiKey
	r.EnvAPIKey = envKey
	r.Offline = offline
	return r
}
