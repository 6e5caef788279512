package offlinereg

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/big"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// ErrUnusableRecord is matched by ModelMetadata errors: the record parses
// but cannot describe a loadable model (no string model_architecture, no
// valid package, malformed dependencies or recommended parameters).
var ErrUnusableRecord = errors.New("offline-weights record is unusable")

// PackageError says why a stored package was left out by DecodePackage.
type PackageError struct {
	PackageID any // the stored package_id value (may be absent or not a string)
	Reason    string
}

func (e *PackageError) Error() string {
	return fmt.Sprintf("offline registry: package %s skipped: %s", describe(e.PackageID), e.Reason)
}

// ModelMetadata converts the record into provider metadata (offline.md
// §3.4): every package comes back as a local-cache package whose artefacts
// are {file_handle, md5_hash}. Packages that cannot be decoded are skipped
// with a warning on log (nil: slog.Default()); a record without a valid
// package is unusable.
func (rec *Record) ModelMetadata(log *slog.Logger) (*metadata.ModelMetadata, error) {
	if log == nil {
		log = slog.Default()
	}
	unusable := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrUnusableRecord, rec.Path, fmt.Sprintf(format, args...))
	}
	canonical, ok := rec.CanonicalModelID()
	if !ok {
		return nil, unusable("canonical_model_id is not a string")
	}
	mv, _ := rec.Doc.Get("model")
	model, ok := mv.(*pyjson.Object)
	if !ok {
		return nil, unusable("model is not an object")
	}
	arch, ok := getString(model, "model_architecture")
	if !ok {
		return nil, unusable("model.model_architecture is not a string")
	}
	payloads, ok := rec.packagePayloads()
	if !ok {
		return nil, unusable("packages is not a list")
	}
	var packages []metadata.ModelPackage
	for _, p := range payloads {
		o, ok := p.(*pyjson.Object)
		if !ok {
			log.Warn("offline registry: skipping package that is not an object", "path", rec.Path, "value", describe(p))
			continue
		}
		pkg, err := DecodePackage(o)
		if err != nil {
			log.Warn("offline registry: skipping undecodable package", "path", rec.Path, "error", err)
			continue
		}
		packages = append(packages, pkg)
	}
	if len(packages) == 0 {
		return nil, unusable("no valid package")
	}
	out := &metadata.ModelMetadata{
		ModelID:           canonical,
		ModelArchitecture: arch,
		Packages:          packages,
		TaskType:          optString(model, "task_type", rec.Path, log),
		ModelVariant:      optString(model, "model_variant", rec.Path, log),
	}
	// A non-empty dependency list must be valid throughout, or the record is unusable.
	if dv, _ := model.Get("model_dependencies"); truthy(dv) {
		list, ok := dv.([]any)
		if !ok {
			return nil, unusable("model.model_dependencies is not a list")
		}
		for _, d := range list {
			dep, err := decodeDependency(d)
			if err != nil {
				return nil, unusable("%v", err)
			}
			out.ModelDependencies = append(out.ModelDependencies, dep)
		}
	}
	if rv, _ := model.Get("recommended_parameters"); rv != nil {
		if o, ok := rv.(*pyjson.Object); ok {
			rp, err := decodeRecommended(o)
			if err != nil {
				return nil, unusable("model.recommended_parameters: %v", err)
			}
			out.RecommendedParameters = rp
		}
	}
	return out, nil
}

// DecodePackage converts one stored package (offline.md §3.4). It fails
// (*PackageError) when package_id is not a string, backend or quantization
// is unknown, an artefact lacks a string file_handle or md5_hash, or
// recommended_parameters is invalid. Softer problems keep the package: an
// invalid version becomes nil, environment requirements without a valid
// cuda_device_cc / cuda_device_name (Jetson: l4t_version) are dropped, ONNX
// details need an integer opset and TorchScript details a valid
// torch_version, trusted_source is true only for JSON true, and a field of
// the wrong type is treated as null.
func DecodePackage(o *pyjson.Object) (metadata.ModelPackage, error) {
	idv, _ := o.Get("package_id")
	fail := func(format string, args ...any) (metadata.ModelPackage, error) {
		return metadata.ModelPackage{}, &PackageError{PackageID: idv, Reason: fmt.Sprintf(format, args...)}
	}
	id, ok := idv.(string)
	if !ok {
		return fail("package_id is not a string")
	}
	bv, _ := o.Get("backend")
	bs, _ := bv.(string)
	backend := metadata.BackendType(bs)
	if !backend.Valid() { // enum value match, no lower-casing (BackendType(value))
		return fail("unknown backend %s", describe(bv))
	}
	p := metadata.ModelPackage{
		PackageID:     id,
		Backend:       backend,
		PackageSource: metadata.SourceLocalCache,
	}

	av, _ := o.Get("artifacts")
	if truthy(av) {
		list, ok := av.([]any)
		if !ok {
			return fail("artifacts is not a list")
		}
		for _, a := range list {
			ao, ok := a.(*pyjson.Object)
			if !ok {
				return fail("artifact %s is not an object", describe(a))
			}
			handle, ok1 := getString(ao, "file_handle")
			md5, ok2 := getString(ao, "md5_hash")
			if !ok1 || !ok2 {
				return fail("artifact %s lacks a string file_handle or md5_hash", describe(a))
			}
			p.Artifacts = append(p.Artifacts, metadata.Artifact{FileHandle: handle, MD5Hash: &md5})
		}
	}

	if qv, _ := o.Get("quantization"); qv != nil {
		qs, _ := qv.(string)
		q := metadata.Quantization(qs)
		if !q.Valid() {
			return fail("unknown quantization %s", describe(qv))
		}
		p.Quantization = q
	}
	if rv, _ := o.Get("recommended_parameters"); rv != nil {
		if ro, ok := rv.(*pyjson.Object); ok {
			rp, err := decodeRecommended(ro)
			if err != nil {
				return fail("recommended_parameters: %v", err)
			}
			p.RecommendedParameters = rp
		}
	}
	if v, _ := o.Get("dynamic_batch_size_supported"); v != nil {
		if b, ok := v.(bool); ok {
			p.DynamicBatchSizeSupported = &b
		}
	}
	p.StaticBatchSize = optInt(o, "static_batch_size")
	if v, _ := o.Get("trusted_source"); v == true {
		p.TrustedSource = true
	}
	if v, _ := o.Get("model_features"); v != nil {
		if _, ok := v.(*pyjson.Object); ok {
			p.ModelFeatures = v
		}
	}
	if s, ok := getString(o, "cache_model_id"); ok {
		p.CacheModelID = s
	}
	p.TRTPackageDetails = decodeTRT(o)
	p.ONNXPackageDetails = decodeONNX(o)
	p.TorchScriptPackageDetails = decodeTorchScript(o)
	p.EnvironmentRequirements = decodeEnvironment(o)
	return p, nil
}

func decodeTRT(o *pyjson.Object) *metadata.TRTPackageDetails {
	v, _ := o.Get("trt_package_details")
	d, ok := v.(*pyjson.Object)
	if !ok {
		return nil
	}
	flag := func(k string) bool {
		x, _ := d.Get(k)
		return truthy(x) // bool(payload.get(k, False))
	}
	return &metadata.TRTPackageDetails{
		MinDynamicBatchSize:    optInt(d, "min_dynamic_batch_size"),
		OptDynamicBatchSize:    optInt(d, "opt_dynamic_batch_size"),
		MaxDynamicBatchSize:    optInt(d, "max_dynamic_batch_size"),
		SameCCCompatible:       flag("same_cc_compatible"),
		TRTForwardCompatible:   flag("trt_forward_compatible"),
		TRTLeanRuntimeExcluded: flag("trt_lean_runtime_excluded"),
	}
}

func decodeONNX(o *pyjson.Object) *metadata.ONNXPackageDetails {
	v, _ := o.Get("onnx_package_details")
	d, ok := v.(*pyjson.Object)
	if !ok {
		return nil
	}
	opset := optInt(d, "opset")
	if opset == nil {
		return nil
	}
	out := &metadata.ONNXPackageDetails{Opset: *opset}
	if pv, _ := d.Get("incompatible_providers"); pv != nil {
		if list, ok := stringList(pv); ok {
			out.IncompatibleProviders = list
		}
	}
	return out
}

func decodeTorchScript(o *pyjson.Object) *metadata.TorchScriptPackageDetails {
	v, _ := o.Get("torch_script_package_details")
	d, ok := v.(*pyjson.Object)
	if !ok {
		return nil
	}
	tv, ok := versionField(d, "torch_version")
	if !ok {
		return nil
	}
	out := &metadata.TorchScriptPackageDetails{TorchVersion: tv, SupportedDeviceTypes: []string{}}
	if sv, _ := d.Get("supported_device_types"); sv != nil {
		if list, ok := stringList(sv); ok {
			out.SupportedDeviceTypes = sortedSet(list)
		}
	}
	if vv, ok := versionField(d, "torch_vision_version"); ok {
		out.TorchVisionVersion = &vv
	}
	return out
}

func decodeEnvironment(o *pyjson.Object) *metadata.EnvironmentRequirements {
	v, _ := o.Get("environment_requirements")
	d, ok := v.(*pyjson.Object)
	if !ok {
		return nil
	}
	cc, ok := versionField(d, "cuda_device_cc")
	if !ok {
		return nil
	}
	name, ok := getString(d, "cuda_device_name")
	if !ok {
		return nil
	}
	e := &metadata.EnvironmentRequirements{
		Kind:           metadata.MachineGPUServer,
		CUDADeviceCC:   cc,
		CUDADeviceName: name,
		DriverVersion:  optVersion(d, "driver_version"),
		CUDAVersion:    optVersion(d, "cuda_version"),
		TRTVersion:     optVersion(d, "trt_version"),
	}
	if kind, _ := getString(d, "kind"); kind == string(metadata.MachineJetson) {
		l4t, ok := versionField(d, "l4t_version")
		if !ok {
			return nil
		}
		e.Kind = metadata.MachineJetson
		e.L4TVersion = l4t
		e.JetsonProductName = optStringQuiet(d, "jetson_product_name")
		return e
	}
	e.OSVersion = optStringQuiet(d, "os_version")
	return e
}

func decodeDependency(v any) (metadata.ModelDependency, error) {
	o, ok := v.(*pyjson.Object)
	if !ok {
		return metadata.ModelDependency{}, fmt.Errorf("model dependency %s is not an object", describe(v))
	}
	name, ok1 := getString(o, "name")
	id, ok2 := getString(o, "model_id")
	if !ok1 || !ok2 {
		return metadata.ModelDependency{}, fmt.Errorf("model dependency %s needs string name and model_id", describe(v))
	}
	dep := metadata.ModelDependency{Name: name, ModelID: id}
	if pv, _ := o.Get("model_package_id"); pv != nil {
		s, ok := pv.(string)
		if !ok {
			return metadata.ModelDependency{}, fmt.Errorf("model dependency %q: model_package_id is not a string", name)
		}
		dep.ModelPackageID = &s
	}
	return dep, nil
}

// decodeRecommended validates {confidence?: number|null,
// per_class_confidence?: {str: number}|null}; other keys are ignored.
func decodeRecommended(o *pyjson.Object) (*metadata.RecommendedParameters, error) {
	rp := &metadata.RecommendedParameters{}
	if v, _ := o.Get("confidence"); v != nil {
		f, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("confidence %s is not a number", describe(v))
		}
		rp.Confidence = &f
	}
	if v, _ := o.Get("per_class_confidence"); v != nil {
		m, ok := v.(*pyjson.Object)
		if !ok {
			return nil, fmt.Errorf("per_class_confidence %s is not an object", describe(v))
		}
		rp.PerClassConfidence = metadata.ClassConfidences{}
		for _, k := range m.Keys() {
			cv, _ := m.Get(k)
			f, ok := number(cv)
			if !ok {
				return nil, fmt.Errorf("per_class_confidence[%q] %s is not a number", k, describe(cv))
			}
			rp.PerClassConfidence = append(rp.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: f})
		}
	}
	return rp, nil
}

// number accepts JSON numbers (Python coerces an int to float); not bools.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case pyjson.Int:
		f, _ := new(big.Float).SetInt(x.Big()).Float64()
		return f, true
	}
	return 0, false
}

// optInt returns an integer field that fits an int; anything else is nil.
func optInt(o *pyjson.Object, key string) *int {
	v, _ := o.Get(key)
	n, ok := v.(pyjson.Int)
	if !ok {
		return nil
	}
	i, ok := n.Int64()
	if !ok || i > math.MaxInt || i < math.MinInt {
		return nil
	}
	out := int(i)
	return &out
}

// versionField returns the normal form of a string field holding a valid
// PEP 440 version.
func versionField(o *pyjson.Object, key string) (string, bool) {
	s, ok := getString(o, key)
	if !ok {
		return "", false
	}
	v, err := pep440.Parse(s)
	if err != nil {
		return "", false
	}
	return v.String(), true
}

func optVersion(o *pyjson.Object, key string) *string {
	if s, ok := versionField(o, key); ok {
		return &s
	}
	return nil
}

func optString(o *pyjson.Object, key, path string, log *slog.Logger) *string {
	v, _ := o.Get(key)
	if v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		log.Warn("offline registry: ignoring non-string field", "path", path, "field", key, "value", describe(v))
		return nil
	}
	return &s
}

func optStringQuiet(o *pyjson.Object, key string) *string {
	if s, ok := getString(o, key); ok {
		return &s
	}
	return nil
}

func stringList(v any) ([]string, bool) {
	list, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// truthy is Python's bool() for JSON values.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case pyjson.Int:
		return x.Sign() != 0
	case float64:
		return x != 0 // NaN is truthy, as in Python
	case []any:
		return len(x) > 0
	case *pyjson.Object:
		return x.Len() > 0
	}
	return true
}
