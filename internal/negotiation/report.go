package negotiation

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/modelcache/modelcache/metadata"
)

// Stage names the filter that discarded a package, in the reference's order.
type Stage string

// Stages.
const (
	StageImplementation Stage = "implementation"
	StageTrust          Stage = "trust"
	StageBackend        Stage = "backend"
	StageBatchSize      Stage = "batch-size"
	StageQuantization   Stage = "quantization"
	StageRuntime        Stage = "runtime-environment"
	StageModelFeatures  Stage = "model-features"
)

// Code is a stable machine-readable rejection reason (compat/NEGOTIATION.md).
type Code string

// Rejection codes.
const (
	CodeImplementationMissing           Code = "implementation-missing"
	CodeUntrusted                       Code = "untrusted"
	CodeBackendNotRequested             Code = "backend-not-requested"
	CodeBatchSizeMismatch               Code = "batch-size-mismatch"
	CodeQuantizationMismatch            Code = "quantization-mismatch"
	CodeONNXNotInstalled                Code = "onnx-not-installed"
	CodeONNXDetailsMissing              Code = "onnx-details-missing"
	CodeONNXNoDefaultProviderAvailable  Code = "onnx-no-default-provider-available"
	CodeONNXNoSelectedProviderAvailable Code = "onnx-no-selected-provider-available"
	CodeONNXPrimaryProviderIncompatible Code = "onnx-primary-provider-incompatible"
	CodeONNXOpsetTooHigh                Code = "onnx-opset-too-high"
	CodeTorchNotInstalled               Code = "torch-not-installed"
	CodeTransformersNotInstalled        Code = "transformers-not-installed"
	CodeTRTNotInstalled                 Code = "trt-not-installed"
	CodeTRTDetailsMissing               Code = "trt-details-missing"
	CodeTRTHardwareIncompatible         Code = "trt-hardware-incompatible"
	CodeTRTL4TIncompatible              Code = "trt-l4t-incompatible"
	CodeTRTVersionIncompatible          Code = "trt-version-incompatible"
	CodeTRTLeanRuntimeExcluded          Code = "trt-lean-runtime-excluded"
	CodeTRTHostCodeNotAllowed           Code = "trt-host-code-not-allowed"
	CodeTorchScriptDetailsMissing       Code = "torchscript-details-missing"
	CodeTorchScriptDeviceNotSpecified   Code = "torchscript-device-not-specified"
	CodeTorchScriptDeviceTypeUnsupp     Code = "torchscript-device-type-unsupported"
	CodeTorchScriptTorchVersionUnknown  Code = "torchscript-torch-version-unknown"
	CodeTorchScriptTorchTooOld          Code = "torchscript-torch-too-old"
	CodeTorchScriptVisionVersionUnknown Code = "torchscript-torchvision-version-unknown"
	CodeTorchScriptVisionTooOld         Code = "torchscript-torchvision-too-old"
	CodeNMSFusionNotRequested           Code = "nms-fusion-not-requested"
	CodeNMSFusedMalformed               Code = "nms-fused-malformed"
	CodeNMSMaxDetectionsMismatch        Code = "nms-max-detections-mismatch"
	CodeNMSConfidenceMismatch           Code = "nms-confidence-mismatch"
	CodeNMSIoUMismatch                  Code = "nms-iou-mismatch"
	CodeNMSClassAgnosticMismatch        Code = "nms-class-agnostic-mismatch"
	// Codes of our own (no reference counterpart).

	// CodeBackendNotNegotiable: a backend without a runtime matcher
	// (ultralytics, custom); the reference aborts the whole negotiation (Q7).
	CodeBackendNotNegotiable Code = "backend-not-negotiable"
	// CodeInvalidPackageVersion: a version in the package metadata that is
	// not PEP 440 (possible only with metadata not built by our providers).
	CodeInvalidPackageVersion Code = "invalid-package-version"
)

// Rejection records why a filter discarded a package.
type Rejection struct {
	// Index is the package's position in the announced list.
	Index     int
	PackageID string
	Stage     Stage
	Code      Code
	// Reason is the reference's text, verbatim.
	Reason string
}

// Report is the outcome of a negotiation.
type Report struct {
	ModelArchitecture string
	TaskType          *string
	// ByID is true when the request named a package id (no filter ran).
	ByID bool
	// Selected lists the accepted package ids, best first.
	Selected []string
	// Packages has one entry per announced package, in announced order.
	Packages []Verdict
	// Rejections lists every discarded package in discard (filter) order.
	Rejections []Rejection
	// Quantizations is the set the quantization filter used (nil when it did
	// not run); QuantizationByDefault tells whether it is the device default.
	Quantizations         []metadata.Quantization
	QuantizationByDefault bool
	// ONNXExecutionProviders is the provider list the ONNX matcher used
	// (primary first); nil when no ONNX package reached it.
	ONNXExecutionProviders []string
	// Notes are explanations worth showing next to the result (quirks that
	// affected it, hints on misleading reference texts).
	Notes []string
}

// Verdict is one package's outcome.
type Verdict struct {
	Index        int
	PackageID    string
	Backend      metadata.BackendType
	Quantization metadata.Quantization
	// Batch describes the package's batch support ("dynamic", "dynamic 1-16",
	// "static 4", "-" when not declared).
	Batch    string
	Accepted bool
	// Rank is the 1-based position in Selected; 0 when not selected.
	Rank int
	// Stage, Code and Reason are set for rejected packages.
	Stage  Stage
	Code   Code
	Reason string
	// Key holds the ranking keys of accepted packages (nil otherwise, and for
	// a selection by id).
	Key *RankKey
}

// RankKey holds the ranking keys of a package (negotiation.md §6), compared
// lexicographically in field order, higher first.
type RankKey struct {
	Backend             int     `json:"backend"`
	Quantization        int     `json:"quantization"`
	Trusted             int     `json:"trusted"`
	BatchMode           int     `json:"batch_mode"`
	StaticBatch         int     `json:"static_batch"`
	Opset               int     `json:"onnx_opset"`
	TRTNotForwardCompat int     `json:"trt_not_forward_compatible"`
	TRTNotSameCC        int     `json:"trt_not_same_cc"`
	CUDADeviceMatch     int     `json:"cuda_device_match"`
	CUDAVersionRank     int     `json:"cuda_version_rank"`
	TRTVersionRank      int     `json:"trt_version_rank"`
	ONNXIncompatibleEPs int     `json:"onnx_incompatible_providers"`
	TRTDynamicSpan      int     `json:"trt_dynamic_span"`
	NMSScore            float64 `json:"nms_score"`
	LeanRuntime         int     `json:"lean_runtime"`
	JetsonProduct       int     `json:"jetson_product"`
	OSMatch             int     `json:"os_match"`
	L4TMatch            int     `json:"l4t_match"`
	DriverMatch         int     `json:"driver_match"`
	IDTieBreak          int     `json:"id_tie_break"`
}

// compare returns -1, 0 or 1 comparing a and b lexicographically.
func (a *RankKey) compare(b *RankKey) int {
	at, bt := a.Tuple(), b.Tuple()
	for i := range at {
		if at[i] != bt[i] {
			if at[i] < bt[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Tuple lists the 20 keys in ranking order (integers are exact in float64).
func (a *RankKey) Tuple() []float64 {
	return []float64{float64(a.Backend), float64(a.Quantization), float64(a.Trusted), float64(a.BatchMode),
		float64(a.StaticBatch), float64(a.Opset), float64(a.TRTNotForwardCompat), float64(a.TRTNotSameCC),
		float64(a.CUDADeviceMatch), float64(a.CUDAVersionRank), float64(a.TRTVersionRank),
		float64(a.ONNXIncompatibleEPs), float64(a.TRTDynamicSpan), a.NMSScore, float64(a.LeanRuntime),
		float64(a.JetsonProduct), float64(a.OSMatch), float64(a.L4TMatch), float64(a.DriverMatch),
		float64(a.IDTieBreak)}
}

// String renders the key as a compact tuple.
func (a *RankKey) String() string {
	t := a.Tuple()
	parts := make([]string, len(t))
	for i, v := range t {
		parts[i] = strconv.FormatFloat(v, 'g', 6, 64)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// Summary is the reference's failure summary: rejections grouped by identical
// reason, count descending (ties in first-seen order), one line each.
func Summary(rejections []Rejection) string {
	type group struct {
		reason string
		n      int
	}
	var groups []*group
	idx := map[string]*group{}
	for _, r := range rejections {
		g, ok := idx[r.Reason]
		if !ok {
			g = &group{reason: r.Reason}
			idx[r.Reason] = g
			groups = append(groups, g)
		}
		g.n++
	}
	// Stable insertion sort by count descending keeps first-seen order on ties.
	for i := 1; i < len(groups); i++ {
		for j := i; j > 0 && groups[j].n > groups[j-1].n; j-- {
			groups[j], groups[j-1] = groups[j-1], groups[j]
		}
	}
	lines := make([]string, len(groups))
	for i, g := range groups {
		noun := "package"
		if g.n >= 2 {
			noun = "packages"
		}
		lines[i] = fmt.Sprintf("\t* %d %s with the following note: %s", g.n, noun, g.reason)
	}
	return strings.Join(lines, "\n")
}

func describeBatch(p *metadata.ModelPackage) string {
	if p.DynamicBatchSizeSupported != nil && *p.DynamicBatchSizeSupported {
		if lo, hi, ok := p.DynamicBatchBoundaries(); ok {
			return fmt.Sprintf("dynamic %d-%d", lo, hi)
		}
		return "dynamic"
	}
	if p.StaticBatchSize != nil {
		return fmt.Sprintf("static %d", *p.StaticBatchSize)
	}
	return "-"
}
