package offlinereg

import (
	"sort"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// EncodePackage returns the stored form of a package (offline.md §3.2): all
// fourteen keys, artefacts as {file_handle, md5_hash} in provider order (no
// URLs), versions in PEP 440 normal form (an invalid version is stored as
// null), supported_device_types sorted. Callers drop packages with unhashed
// artefacts before encoding; an unhashed artefact is encoded as null.
func EncodePackage(p *metadata.ModelPackage) *pyjson.Object {
	artifacts := make([]any, 0, len(p.Artifacts))
	for _, a := range p.Artifacts {
		artifacts = append(artifacts, pyjson.ObjectOf(
			"file_handle", a.FileHandle,
			"md5_hash", strOrNil(a.MD5Hash),
		))
	}
	var quantization any
	if p.Quantization != "" {
		quantization = string(p.Quantization)
	}
	var cacheModelID any
	if p.CacheModelID != "" {
		cacheModelID = p.CacheModelID
	}
	return pyjson.ObjectOf(
		"package_id", p.PackageID,
		"backend", string(p.Backend),
		"quantization", quantization,
		"dynamic_batch_size_supported", boolOrNil(p.DynamicBatchSizeSupported),
		"static_batch_size", intOrNil(p.StaticBatchSize),
		"trusted_source", p.TrustedSource,
		"model_features", p.ModelFeatures,
		"recommended_parameters", encodeRecommended(p.RecommendedParameters),
		"cache_model_id", cacheModelID,
		"environment_requirements", encodeEnvironment(p.EnvironmentRequirements),
		"trt_package_details", encodeTRT(p.TRTPackageDetails),
		"onnx_package_details", encodeONNX(p.ONNXPackageDetails),
		"torch_script_package_details", encodeTorchScript(p.TorchScriptPackageDetails),
		"artifacts", artifacts,
	)
}

// encodeModelFields returns the incoming model-level fields in the record's
// key order; nil values mean "keep what the record has".
func encodeModelFields(m *metadata.ModelMetadata) *pyjson.Object {
	var deps any
	// An empty dependency list is stored as null, as the reference does.
	if len(m.ModelDependencies) > 0 {
		list := make([]any, 0, len(m.ModelDependencies))
		for _, d := range m.ModelDependencies {
			list = append(list, pyjson.ObjectOf(
				"name", d.Name,
				"model_id", d.ModelID,
				"model_package_id", strOrNil(d.ModelPackageID),
			))
		}
		deps = list
	}
	return pyjson.ObjectOf(
		"model_architecture", m.ModelArchitecture,
		"task_type", strOrNil(m.TaskType),
		"model_variant", strOrNil(m.ModelVariant),
		"model_dependencies", deps,
		"recommended_parameters", encodeRecommended(m.RecommendedParameters),
	)
}

// encodeRecommended mirrors pydantic's model_dump: both keys, null when unset.
func encodeRecommended(r *metadata.RecommendedParameters) any {
	if r == nil {
		return nil
	}
	var conf any
	if r.Confidence != nil {
		conf = *r.Confidence
	}
	var perClass any
	if r.PerClassConfidence != nil {
		o := pyjson.NewObject()
		for _, c := range r.PerClassConfidence {
			o.Set(c.Class, c.Confidence)
		}
		perClass = o
	}
	return pyjson.ObjectOf("confidence", conf, "per_class_confidence", perClass)
}

func encodeEnvironment(e *metadata.EnvironmentRequirements) any {
	if e == nil {
		return nil
	}
	if e.Kind == metadata.MachineJetson {
		return pyjson.ObjectOf(
			"kind", string(metadata.MachineJetson),
			"cuda_device_cc", normalVersion(e.CUDADeviceCC),
			"cuda_device_name", e.CUDADeviceName,
			"l4t_version", normalVersion(e.L4TVersion),
			"jetson_product_name", strOrNil(e.JetsonProductName),
			"cuda_version", normalVersionPtr(e.CUDAVersion),
			"trt_version", normalVersionPtr(e.TRTVersion),
			"driver_version", normalVersionPtr(e.DriverVersion),
		)
	}
	// Anything that is not a Jetson is a server, as in the reference.
	return pyjson.ObjectOf(
		"kind", string(metadata.MachineGPUServer),
		"cuda_device_cc", normalVersion(e.CUDADeviceCC),
		"cuda_device_name", e.CUDADeviceName,
		"driver_version", normalVersionPtr(e.DriverVersion),
		"cuda_version", normalVersionPtr(e.CUDAVersion),
		"trt_version", normalVersionPtr(e.TRTVersion),
		"os_version", strOrNil(e.OSVersion),
	)
}

func encodeTRT(d *metadata.TRTPackageDetails) any {
	if d == nil {
		return nil
	}
	return pyjson.ObjectOf(
		"min_dynamic_batch_size", intOrNil(d.MinDynamicBatchSize),
		"opt_dynamic_batch_size", intOrNil(d.OptDynamicBatchSize),
		"max_dynamic_batch_size", intOrNil(d.MaxDynamicBatchSize),
		"same_cc_compatible", d.SameCCCompatible,
		"trt_forward_compatible", d.TRTForwardCompatible,
		"trt_lean_runtime_excluded", d.TRTLeanRuntimeExcluded,
	)
}

func encodeONNX(d *metadata.ONNXPackageDetails) any {
	if d == nil {
		return nil
	}
	var providers any
	if d.IncompatibleProviders != nil {
		providers = append([]string{}, d.IncompatibleProviders...)
	}
	return pyjson.ObjectOf("opset", d.Opset, "incompatible_providers", providers)
}

func encodeTorchScript(d *metadata.TorchScriptPackageDetails) any {
	if d == nil {
		return nil
	}
	return pyjson.ObjectOf(
		"supported_device_types", sortedSet(d.SupportedDeviceTypes),
		"torch_version", normalVersion(d.TorchVersion),
		"torch_vision_version", normalVersionPtr(d.TorchVisionVersion),
	)
}

// sortedSet: the reference holds device types in a set and stores
// sorted(set), so duplicates collapse.
func sortedSet(in []string) []string {
	out := make([]string, 0, len(in))
	seen := make(map[string]bool, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out) // byte order of UTF-8 = code-point order, as Python sorts
	return out
}

// normalVersion returns the PEP 440 normal form of s, or nil when s is not
// a valid version.
func normalVersion(s string) any {
	v, err := pep440.Parse(s)
	if err != nil {
		return nil
	}
	return v.String()
}

func normalVersionPtr(s *string) any {
	if s == nil {
		return nil
	}
	return normalVersion(*s)
}

func strOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func boolOrNil(b *bool) any {
	if b == nil {
		return nil
	}
	return *b
}

func intOrNil(i *int) any {
	if i == nil {
		return nil
	}
	return *i
}
