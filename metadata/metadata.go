// Package metadata holds the provider-neutral description of a model and the
// packages a weights provider announces for it.
//
// It mirrors the reference's ModelMetadata / ModelPackageMetadata
// (registry-protocol.md §7–§8, negotiation.md §1): every weights provider
// (the Roboflow API client, the offline-weights registry, the local
// directory source, user-registered providers) produces these values, and
// package negotiation consumes them.
//
// Conventions used throughout the package:
//
//   - A pointer field (or a nil slice where documented) means the value is
//     null/absent; the zero value of a non-pointer field is a real value.
//   - Version strings (CUDA, TensorRT, driver, L4T, torch …) are kept exactly
//     as the provider sent them; parsing and normalization are the
//     consumer's business.
//   - Free-form JSON values (ModelPackage.ModelFeatures) are pyjson values
//     (nil, bool, string, pyjson.Int, float64, []any, *pyjson.Object) so that
//     Python's int/float distinction and key order survive.
package metadata

import (
	"fmt"
	"strings"
)

// BackendType is the inference backend a package targets (negotiation.md §1.1).
type BackendType string

// Backend types, with their wire/enum values.
const (
	BackendTRT         BackendType = "trt"
	BackendONNX        BackendType = "onnx"
	BackendTorch       BackendType = "torch"
	BackendHuggingFace BackendType = "hugging-face"
	BackendTorchScript BackendType = "torch-script"
	BackendUltralytics BackendType = "ultralytics"
	BackendCustom      BackendType = "custom"
)

// AllBackends lists every backend type in ranking-priority order (highest first).
func AllBackends() []BackendType {
	return []BackendType{BackendTRT, BackendONNX, BackendTorch, BackendHuggingFace,
		BackendTorchScript, BackendUltralytics, BackendCustom}
}

// Valid reports whether b is one of the known backend values.
func (b BackendType) Valid() bool {
	for _, k := range AllBackends() {
		if b == k {
			return true
		}
	}
	return false
}

// String returns the enum value.
func (b BackendType) String() string { return string(b) }

// UnknownBackendError reports a backend name that is not recognized.
type UnknownBackendError struct{ Value string }

func (e *UnknownBackendError) Error() string {
	names := make([]string, 0, 7)
	for _, b := range AllBackends() {
		names = append(names, string(b))
	}
	return fmt.Sprintf("Requested backend of type '%s' which is not recognized. Supported backends: [%s]",
		e.Value, strings.Join(names, ", "))
}

// ParseBackendType parses user input the way the reference does: the value is
// lower-cased, then matched exactly against the enum values ("TRT" and "Onnx"
// are accepted, the manifest wire value "hf" is not).
func ParseBackendType(s string) (BackendType, error) {
	b := BackendType(strings.ToLower(s))
	if b.Valid() {
		return b, nil
	}
	return "", &UnknownBackendError{Value: s}
}

// Quantization is the numeric precision of a package's weights.
type Quantization string

// Quantization values. The empty Quantization means "not declared" (null).
const (
	QuantizationFP32    Quantization = "fp32"
	QuantizationFP16    Quantization = "fp16"
	QuantizationBF16    Quantization = "bf16"
	QuantizationINT8    Quantization = "int8"
	QuantizationUnknown Quantization = "unknown"
)

// AllQuantizations lists every quantization value.
func AllQuantizations() []Quantization {
	return []Quantization{QuantizationFP32, QuantizationFP16, QuantizationBF16, QuantizationINT8, QuantizationUnknown}
}

// Valid reports whether q is one of the known (non-empty) values.
func (q Quantization) Valid() bool {
	for _, k := range AllQuantizations() {
		if q == k {
			return true
		}
	}
	return false
}

// String returns the enum value.
func (q Quantization) String() string { return string(q) }

// UnknownQuantizationError reports a quantization value that is not recognized.
type UnknownQuantizationError struct{ Value string }

func (e *UnknownQuantizationError) Error() string {
	return fmt.Sprintf("Requested quantization of type '%s' which is not recognized. Supported quantizations: [FP32, FP16, BF16, INT8, UNKNOWN]", e.Value)
}

// ParseQuantization parses a quantization value. Matching is case-sensitive,
// as in the reference ("FP16" is rejected).
func ParseQuantization(s string) (Quantization, error) {
	q := Quantization(s)
	if q.Valid() {
		return q, nil
	}
	return "", &UnknownQuantizationError{Value: s}
}

// PackageSource tells where a package comes from.
type PackageSource string

// Package sources.
const (
	// SourcePlatform: announced by a weights provider, files downloaded from URLs.
	SourcePlatform PackageSource = "platform"
	// SourceLocalCache: found in the local cache (local TRT engines, offline registry).
	SourceLocalCache PackageSource = "local_cache"
)

// MachineType identifies the kind of environment requirements.
type MachineType string

// Machine types of TRT packages.
const (
	MachineGPUServer MachineType = "gpu-server"
	MachineJetson    MachineType = "jetson"
)

// ModelMetadata is what a provider returns for one model id.
type ModelMetadata struct {
	// ModelID is the canonical id; it may differ from the requested id (alias).
	ModelID           string `json:"model_id"`
	ModelArchitecture string `json:"model_architecture"`
	// TaskType and ModelVariant are nil when the provider sent null.
	TaskType     *string `json:"task_type"`
	ModelVariant *string `json:"model_variant"`
	// ModelDependencies is nil when the provider sent null or omitted it.
	ModelDependencies []ModelDependency `json:"model_dependencies"`
	// RecommendedParameters at model level; a package's own value overrides it
	// (see ModelPackage.EffectiveRecommendedParameters).
	RecommendedParameters *RecommendedParameters `json:"recommended_parameters"`
	// Packages in provider order (pages concatenated); may be empty.
	Packages []ModelPackage `json:"model_packages"`
	// NextPage is the pagination cursor of the last page read (nil on the
	// final page). It is opaque.
	NextPage *string `json:"next_page,omitempty"`
}

// Package returns the package with the given id, if announced.
func (m *ModelMetadata) Package(id string) (*ModelPackage, bool) {
	for i := range m.Packages {
		if m.Packages[i].PackageID == id {
			return &m.Packages[i], true
		}
	}
	return nil, false
}

// ModelDependency names another model this model needs at load time.
type ModelDependency struct {
	Name    string `json:"name"`
	ModelID string `json:"model_id"`
	// ModelPackageID pins the dependency's package; nil lets negotiation choose.
	ModelPackageID *string `json:"model_package_id"`
}

// RecommendedParameters are provider hints for inference thresholds.
// Unknown keys sent by a provider are dropped.
type RecommendedParameters struct {
	// Confidence is nil when absent/null. Python coerces it to float, so a
	// wire integer 1 is held as 1.0.
	Confidence *float64 `json:"confidence"`
	// PerClassConfidence keeps the provider's key order. nil means null/absent;
	// a non-nil empty slice means {}.
	PerClassConfidence ClassConfidences `json:"per_class_confidence"`
}

// ClassConfidence is one entry of RecommendedParameters.PerClassConfidence.
type ClassConfidence struct {
	Class      string
	Confidence float64
}

// ClassConfidences is an ordered class → confidence map.
type ClassConfidences []ClassConfidence

// Get returns the confidence of class c.
func (cc ClassConfidences) Get(c string) (float64, bool) {
	for _, e := range cc {
		if e.Class == c {
			return e.Confidence, true
		}
	}
	return 0, false
}

// Artifact is one file of a package.
type Artifact struct {
	// FileHandle is the path of the file inside the package (on-disk-contract §4.4
	// rules are applied at load time, not here).
	FileHandle string `json:"file_handle"`
	// MD5Hash as sent by the provider (nil when the provider sent none).
	// Format validation happens at load time.
	MD5Hash *string `json:"md5_hash"`
	// DownloadURL is empty for local-cache artefacts. Platform URLs are already
	// secure-gateway rewritten when the gateway is configured.
	DownloadURL string `json:"download_url,omitempty"`
	// Local: the file is already in the package directory (packages of
	// PackageSource local-cache: the offline-weights registry, locally built
	// TensorRT engines) and is never downloaded; it must carry an MD5.
	Local bool `json:"-"`
}

// TRTPackageDetails are TensorRT-specific package properties.
type TRTPackageDetails struct {
	MinDynamicBatchSize    *int `json:"min_dynamic_batch_size"`
	OptDynamicBatchSize    *int `json:"opt_dynamic_batch_size"`
	MaxDynamicBatchSize    *int `json:"max_dynamic_batch_size"`
	SameCCCompatible       bool `json:"same_cc_compatible"`
	TRTForwardCompatible   bool `json:"trt_forward_compatible"`
	TRTLeanRuntimeExcluded bool `json:"trt_lean_runtime_excluded"`
}

// ONNXPackageDetails are ONNX-specific package properties.
type ONNXPackageDetails struct {
	Opset int `json:"opset"`
	// IncompatibleProviders lists ONNX Runtime execution providers the package
	// must not run on; nil when not declared.
	IncompatibleProviders []string `json:"incompatible_providers"`
}

// TorchScriptPackageDetails are TorchScript-specific package properties.
type TorchScriptPackageDetails struct {
	// SupportedDeviceTypes is a set in the reference; kept in provider order here.
	SupportedDeviceTypes []string `json:"supported_device_types"`
	// TorchVersion is the minimum torch version, as given.
	TorchVersion string `json:"torch_version"`
	// TorchVisionVersion is the minimum torchvision version, nil when absent.
	TorchVisionVersion *string `json:"torch_vision_version"`
}

// EnvironmentRequirements describes the machine a (TRT) package was built for.
// Kind selects which optional fields are meaningful:
//
//   - gpu-server: CUDADeviceCC, CUDADeviceName, DriverVersion, CUDAVersion,
//     TRTVersion, OSVersion.
//   - jetson: CUDADeviceCC, CUDADeviceName, L4TVersion, JetsonProductName,
//     CUDAVersion, TRTVersion, DriverVersion.
//
// All version strings are kept as given.
type EnvironmentRequirements struct {
	Kind              MachineType `json:"kind"`
	CUDADeviceCC      string      `json:"cuda_device_cc"`
	CUDADeviceName    string      `json:"cuda_device_name"`
	DriverVersion     *string     `json:"driver_version"`
	CUDAVersion       *string     `json:"cuda_version"`
	TRTVersion        *string     `json:"trt_version"`
	OSVersion         *string     `json:"os_version,omitempty"`
	L4TVersion        string      `json:"l4t_version,omitempty"`
	JetsonProductName *string     `json:"jetson_product_name,omitempty"`
}

// ModelPackage is one announced package of a model.
type ModelPackage struct {
	PackageID string      `json:"package_id"`
	Backend   BackendType `json:"backend"`
	// Artifacts in provider order.
	Artifacts     []Artifact    `json:"package_artefacts"`
	PackageSource PackageSource `json:"package_source"`
	// Quantization is "" when the package declares none (null).
	Quantization Quantization `json:"quantization"`
	// DynamicBatchSizeSupported and StaticBatchSize are nil when not applicable
	// (Hugging Face, Ultralytics packages).
	DynamicBatchSizeSupported *bool                      `json:"dynamic_batch_size_supported"`
	StaticBatchSize           *int                       `json:"static_batch_size"`
	TRTPackageDetails         *TRTPackageDetails         `json:"trt_package_details"`
	ONNXPackageDetails        *ONNXPackageDetails        `json:"onnx_package_details"`
	TorchScriptPackageDetails *TorchScriptPackageDetails `json:"torch_script_package_details"`
	EnvironmentRequirements   *EnvironmentRequirements   `json:"environment_requirements"`
	TrustedSource             bool                       `json:"trusted_source"`
	// ModelFeatures is a pyjson value: nil (null) or *pyjson.Object in practice.
	ModelFeatures any `json:"model_features"`
	// RecommendedParameters of the package itself (nil: use the model's).
	RecommendedParameters *RecommendedParameters `json:"recommended_parameters"`
	// CacheModelID is the id whose cache directory holds a local package;
	// "" when not set (null).
	CacheModelID string `json:"cache_model_id,omitempty"`
}

// EffectiveRecommendedParameters returns the package-level parameters when
// set, else the model-level ones (which may be nil).
func (p *ModelPackage) EffectiveRecommendedParameters(m *ModelMetadata) *RecommendedParameters {
	if p.RecommendedParameters != nil {
		return p.RecommendedParameters
	}
	if m == nil {
		return nil
	}
	return m.RecommendedParameters
}

// DynamicBatchBoundaries returns the (min, max) dynamic batch range of a TRT
// package: defined iff dynamic batching is supported, TRT details are present
// and at least one of min/opt/max is set; the bounds are the min and max over
// the values that are set.
func (p *ModelPackage) DynamicBatchBoundaries() (lo, hi int, ok bool) {
	if p.DynamicBatchSizeSupported == nil || !*p.DynamicBatchSizeSupported || p.TRTPackageDetails == nil {
		return 0, 0, false
	}
	d := p.TRTPackageDetails
	for _, v := range []*int{d.MinDynamicBatchSize, d.OptDynamicBatchSize, d.MaxDynamicBatchSize} {
		if v == nil {
			continue
		}
		if !ok || *v < lo {
			lo = *v
		}
		if !ok || *v > hi {
			hi = *v
		}
		ok = true
	}
	return lo, hi, ok
}

// Clone returns a deep copy of m, except for ModelFeatures values, which are
// shared (treat them as read-only).
func (m *ModelMetadata) Clone() *ModelMetadata {
	if m == nil {
		return nil
	}
	c := *m
	c.TaskType = cloneStr(m.TaskType)
	c.ModelVariant = cloneStr(m.ModelVariant)
	c.NextPage = cloneStr(m.NextPage)
	if m.ModelDependencies != nil {
		c.ModelDependencies = make([]ModelDependency, len(m.ModelDependencies))
		for i, d := range m.ModelDependencies {
			d.ModelPackageID = cloneStr(d.ModelPackageID)
			c.ModelDependencies[i] = d
		}
	}
	c.RecommendedParameters = m.RecommendedParameters.Clone()
	if m.Packages != nil {
		c.Packages = make([]ModelPackage, len(m.Packages))
		for i := range m.Packages {
			c.Packages[i] = m.Packages[i].Clone()
		}
	}
	return &c
}

// Clone returns a deep copy of p (ModelFeatures is shared).
func (p *ModelPackage) Clone() ModelPackage {
	c := *p
	if p.Artifacts != nil {
		c.Artifacts = make([]Artifact, len(p.Artifacts))
		for i, a := range p.Artifacts {
			a.MD5Hash = cloneStr(a.MD5Hash)
			c.Artifacts[i] = a
		}
	}
	if p.DynamicBatchSizeSupported != nil {
		v := *p.DynamicBatchSizeSupported
		c.DynamicBatchSizeSupported = &v
	}
	c.StaticBatchSize = cloneInt(p.StaticBatchSize)
	if p.TRTPackageDetails != nil {
		d := *p.TRTPackageDetails
		d.MinDynamicBatchSize = cloneInt(d.MinDynamicBatchSize)
		d.OptDynamicBatchSize = cloneInt(d.OptDynamicBatchSize)
		d.MaxDynamicBatchSize = cloneInt(d.MaxDynamicBatchSize)
		c.TRTPackageDetails = &d
	}
	if p.ONNXPackageDetails != nil {
		d := *p.ONNXPackageDetails
		if d.IncompatibleProviders != nil {
			d.IncompatibleProviders = append([]string{}, d.IncompatibleProviders...)
		}
		c.ONNXPackageDetails = &d
	}
	if p.TorchScriptPackageDetails != nil {
		d := *p.TorchScriptPackageDetails
		d.SupportedDeviceTypes = append([]string(nil), d.SupportedDeviceTypes...)
		d.TorchVisionVersion = cloneStr(d.TorchVisionVersion)
		c.TorchScriptPackageDetails = &d
	}
	if p.EnvironmentRequirements != nil {
		e := *p.EnvironmentRequirements
		e.DriverVersion = cloneStr(e.DriverVersion)
		e.CUDAVersion = cloneStr(e.CUDAVersion)
		e.TRTVersion = cloneStr(e.TRTVersion)
		e.OSVersion = cloneStr(e.OSVersion)
		e.JetsonProductName = cloneStr(e.JetsonProductName)
		c.EnvironmentRequirements = &e
	}
	c.RecommendedParameters = p.RecommendedParameters.Clone()
	return c
}

// Clone returns a deep copy (nil for nil).
func (r *RecommendedParameters) Clone() *RecommendedParameters {
	if r == nil {
		return nil
	}
	c := RecommendedParameters{}
	if r.Confidence != nil {
		v := *r.Confidence
		c.Confidence = &v
	}
	if r.PerClassConfidence != nil {
		c.PerClassConfidence = append(ClassConfidences{}, r.PerClassConfidence...)
	}
	return &c
}

// Str returns a pointer to s (helper for the nullable string fields).
func Str(s string) *string { return &s }

// Int returns a pointer to v (helper for the nullable int fields).
func Int(v int) *int { return &v }

// Bool returns a pointer to v (helper for the nullable bool fields).
func Bool(v bool) *bool { return &v }

// Float returns a pointer to v (helper for the nullable float fields).
func Float(v float64) *float64 { return &v }

func cloneStr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

func cloneInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// MD5 returns the provider's MD5 of the file, "" when it sent none.
func (a Artifact) MD5() string {
	if a.MD5Hash == nil {
		return ""
	}
	return *a.MD5Hash
}
