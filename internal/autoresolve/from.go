package autoresolve

import (
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// SetNegotiation copies the negotiation arguments of a load into the key
// document: package id, backends, batch size, quantization, device, ONNX
// execution providers, untrusted packages, TRT host code, NMS fusion. The
// batch size keeps the form the caller gave (a number, or a [lo, hi] list or
// tuple); an invalid one is negotiation's *InvalidRequestedBatchSizeError.
func (r *Request) SetNegotiation(n negotiation.Request) error {
	r.ModelPackageID = n.ModelPackageID
	r.Backends = n.Backends
	r.Quantization = n.Quantization
	r.Device = n.Device
	r.ONNXExecutionProviders = n.ONNXExecutionProviders
	r.AllowUntrustedPackages = n.AllowUntrustedPackages
	r.TRTEngineHostCodeAllowed = !n.DisallowTRTEngineHostCode
	r.NMSFusionPreferences = n.NMSFusionPreferences
	r.BatchSize = nil
	if n.BatchSize == nil {
		return nil
	}
	lo, hi, err := n.BatchSize.Parse()
	if err != nil {
		return err
	}
	switch n.BatchSize.Value().(type) {
	case []any, pyjson.Tuple:
		r.BatchSize = BatchSizeRange(lo, hi)
	default:
		r.BatchSize = FixedBatchSize(lo)
	}
	return nil
}

// ResolutionFor is what a successful load of package p of model md records:
// requested id, cache attribution (cacheOwner owns the package directory),
// the resolved files, the model's and package's descriptive fields, the
// effective API key (stored hashed).
func ResolutionFor(modelID string, md *metadata.ModelMetadata, p *metadata.ModelPackage, cacheOwner string,
	resolvedFiles []string, trusted *bool, apiKey *string) Resolution {
	canonical, arch, backend := md.ModelID, md.ModelArchitecture, string(p.Backend)
	var deps []metadata.ModelDependency // null when there are none
	if len(md.ModelDependencies) > 0 {
		deps = md.ModelDependencies
	}
	return Resolution{
		ModelID: modelID, CacheModelID: &cacheOwner, CanonicalModelID: &canonical,
		ModelPackageID: p.PackageID, ResolvedFiles: resolvedFiles,
		ModelArchitecture: &arch, TaskType: md.TaskType, BackendType: &backend,
		ModelDependencies: deps, ModelFeatures: p.ModelFeatures,
		RecommendedParameters: p.EffectiveRecommendedParameters(md), TrustedSource: trusted, APIKey: apiKey,
	}
}
