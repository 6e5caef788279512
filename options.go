package modelcache

import (
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/negotiation"
)

// LoadOption sets one from_pretrained parameter.
type LoadOption func(*loadOptions)

type loadOptions struct {
	// neg holds every negotiation argument; the resolution key is derived
	// from it too, so the two can never disagree.
	neg negotiation.Request
	// deviceGiven: neg.Device was chosen by the caller ("" then means None).
	deviceGiven bool

	providerName    string
	apiKey          *string
	noResolution    bool
	noVerifyHash    bool
	withoutHash     bool
	lockTimeout     time.Duration
	maxAttempts     int
	extraQuery      [][2]string
	extraHeaders    map[string]string
	allowDependency bool
}

func newLoadOptions(opts []LoadOption) loadOptions {
	o := loadOptions{providerName: "roboflow", allowDependency: true}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// forDependency is the options a dependency model loads with: the same
// environment, its pinned package (if any), no further dependencies, no
// backend/quantization/batch restriction.
func (o *loadOptions) forDependency(packageID *string) loadOptions {
	d := *o
	d.neg.ModelPackageID = packageID
	d.allowDependency = false
	d.neg.Backends, d.neg.Quantization, d.neg.BatchSize = nil, nil, nil
	return d
}

// NegotiationRequest is every negotiation argument of a load (backends,
// batch size, quantization, device, ONNX execution providers, package id,
// trust, NMS fusion), the request document of compat/NEGOTIATION.md.
type NegotiationRequest = negotiation.Request

// WithNegotiationRequest sets every negotiation argument at once (a request
// document in the NEGOTIATION.md schema); later options override its fields.
// deviceGiven tells whether req.Device was chosen ("" then means device=None).
func WithNegotiationRequest(req NegotiationRequest, deviceGiven bool) LoadOption {
	return func(o *loadOptions) { o.neg, o.deviceGiven = req, deviceGiven }
}

// WithPackageID loads exactly this package (no negotiation).
func WithPackageID(id string) LoadOption { return func(o *loadOptions) { o.neg.ModelPackageID = &id } }

// WithBackends restricts negotiation to these backends (onnx, trt, torch, …).
func WithBackends(b ...string) LoadOption {
	return func(o *loadOptions) { o.neg.Backends = append([]string{}, b...) }
}

// WithBatchSize requests a fixed batch size.
func WithBatchSize(n int) LoadOption {
	return func(o *loadOptions) { o.neg.BatchSize = negotiation.ExactBatchSize(n) }
}

// WithBatchSizeRange requests a batch size range [lo, hi].
func WithBatchSizeRange(lo, hi int) LoadOption {
	return func(o *loadOptions) { o.neg.BatchSize = negotiation.BatchSizeRange(lo, hi) }
}

// WithQuantization restricts negotiation to these quantizations (fp32, fp16, …).
func WithQuantization(q ...string) LoadOption {
	return func(o *loadOptions) { o.neg.Quantization = append([]string{}, q...) }
}

// WithDevice sets the torch-style device ("cpu", "cuda", "cuda:0", …).
func WithDevice(d string) LoadOption {
	return func(o *loadOptions) { o.neg.Device, o.deviceGiven = d, true }
}

// WithONNXExecutionProviders sets the ONNX Runtime execution providers, in order.
func WithONNXExecutionProviders(names ...string) LoadOption {
	return func(o *loadOptions) {
		o.neg.ONNXExecutionProviders = nil
		for _, n := range names {
			o.neg.ONNXExecutionProviders = append(o.neg.ONNXExecutionProviders, negotiation.ExecutionProvider{Name: n})
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
func AllowUntrustedPackages() LoadOption {
	return func(o *loadOptions) { o.neg.AllowUntrustedPackages = true }
}

// WithoutHashVerification sets verify_hash_while_download=False. Blobs are
// still published only under their verified MD5; the flag only enters the
// resolution key, as in the reference.
func WithoutHashVerification() LoadOption { return func(o *loadOptions) { o.noVerifyHash = true } }

// AllowFilesWithoutHash downloads artefacts the provider gives no MD5 for
// (download_files_without_hash=True).
func AllowFilesWithoutHash() LoadOption { return func(o *loadOptions) { o.withoutHash = true } }

// WithLockTimeout overrides INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT for
// this load's wait on the package's materialization lock (the one a
// concurrent download of the same package holds).
func WithLockTimeout(d time.Duration) LoadOption { return func(o *loadOptions) { o.lockTimeout = d } }

// WithMaxPackageAttempts caps how many ranked packages are tried.
func WithMaxPackageAttempts(n int) LoadOption { return func(o *loadOptions) { o.maxAttempts = n } }

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
func WithNMSFusionPreferences(v any) LoadOption {
	return func(o *loadOptions) { o.neg.NMSFusionPreferences = v }
}

// DisallowTRTEngineHostCode sets trt_engine_host_code_allowed=False.
func DisallowTRTEngineHostCode() LoadOption {
	return func(o *loadOptions) { o.neg.DisallowTRTEngineHostCode = true }
}

// resolutionRequest is the key document of this load (on-disk contract
// §8.1) without its negotiation arguments (autoresolve.Request.SetNegotiation
// adds those).
func (o *loadOptions) resolutionRequest(modelID string, rt Runtime, cfg config.Config) autoresolve.Request {
	r := autoresolve.NewRequest(modelID, o.neg.Device)
	r.Provider = o.providerName
	r.AllowLoadingDependencyModels = o.allowDependency
	r.VerifyHashWhileDownload = !o.noVerifyHash
	r.DownloadFilesWithoutHash = o.withoutHash
	if o.maxAttempts > 0 {
		m := int64(o.maxAttempts)
		r.MaxPackageLoadingAttempts = &m
	}
	for _, kv := range o.extraQuery {
		r.WeightsProviderExtraQueryParams = append(r.WeightsProviderExtraQueryParams, autoresolve.QueryParam{Name: kv[0], Value: kv[1]})
	}
	r.WeightsProviderExtraHeaders = o.extraHeaders
	r.Runtime = rt
	r.APIKey = o.apiKey
	if k := cfg.APIKey.Reveal(); k != "" {
		r.EnvAPIKey = &k
	}
	r.Offline = cfg.Offline
	return r
}
