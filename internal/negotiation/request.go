package negotiation

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Request holds the negotiation arguments (negotiation.md §2). The zero value
// is the reference's defaults with device=None: every package is considered,
// trusted packages only, device-default quantization, auto-selected ONNX
// execution providers, TensorRT engine host code allowed, no NMS preferences.
//
// Request values are kept as given and parsed inside the filter that uses
// them, as the reference does: an invalid value raises even when earlier
// filters left no package, and a request by package id parses none of them.
type Request struct {
	// ModelPackageID selects one package by id (nil: negotiate). "" is a real
	// id that never matches.
	ModelPackageID *string
	// Backends: nil is not requested; a non-nil empty slice requests the
	// empty set (rejects every package). Values are case-insensitive
	// BackendType values ("hf" is invalid).
	Backends []string
	// BatchSize: nil is not requested.
	BatchSize *BatchSize
	// Quantization: nil selects the device default; a non-nil empty slice
	// disables the quantization filter. Values are case-sensitive.
	Quantization []string
	// Device is a torch device string ("cpu", "cuda", "cuda:1", "mps", …);
	// "" means device=None (the x-ray decides the default quantization,
	// TensorRT considers every GPU, TorchScript packages are rejected).
	Device string
	// ONNXExecutionProviders: nil or empty means auto-selection. Entries with
	// Options never match an available provider (reference quirk Q3).
	ONNXExecutionProviders []ExecutionProvider
	// AllowUntrustedPackages lets packages with trusted_source=false through.
	AllowUntrustedPackages bool
	// DisallowTRTEngineHostCode is the negation of the reference's
	// trt_engine_host_code_allowed (default true).
	DisallowTRTEngineHostCode bool
	// NMSFusionPreferences: nil/false (fused-NMS packages rejected), true
	// (the reference defaults) or a *pyjson.Object with any of
	// max_detections, confidence_threshold, iou_threshold (a number or a
	// 2-item [a, b] range) and class_agnostic (bool).
	NMSFusionPreferences any
	// EnvONNXExecutionProviders is the ONNXRUNTIME_EXECUTION_PROVIDERS
	// setting (ParseEnvONNXExecutionProviders); nil means the reference default
	// DefaultEnvONNXExecutionProviders().
	EnvONNXExecutionProviders []string
}

// DefaultEnvONNXExecutionProviders returns ONNXRUNTIME_EXECUTION_PROVIDERS's default.
func DefaultEnvONNXExecutionProviders() []string {
	return []string{"CUDAExecutionProvider", "OpenVINOExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"}
}

// ParseEnvONNXExecutionProviders parses ONNXRUNTIME_EXECUTION_PROVIDERS:
// comma-separated names, surrounding "[" / "]" stripped, items trimmed of
// spaces and quotes, empty items dropped. A blank value yields nil (default).
func ParseEnvONNXExecutionProviders(s string) []string {
	s = strings.TrimSpace(s)
	s = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")
	var out []string
	for _, item := range strings.Split(s, ",") {
		item = strings.Trim(strings.TrimSpace(item), `"'`)
		if item != "" {
			out = append(out, item)
		}
	}
	return out
}

// BatchSize is a requested batch size as the caller gave it. Build one with
// ExactBatchSize, BatchSizeRange or RawBatchSize; it is validated by the
// batch filter (InvalidRequestedBatchSizeError).
type BatchSize struct {
	// value is a pyjson value: an int (or bool) for n, a 2-item list for
	// (min, max), anything else for an invalid request.
	value any
}

// ExactBatchSize requests n.
func ExactBatchSize(n int) *BatchSize { return &BatchSize{value: pyjson.NewInt(int64(n))} }

// BatchSizeRange requests the inclusive range (lo, hi).
func BatchSizeRange(lo, hi int) *BatchSize {
	return &BatchSize{value: []any{pyjson.NewInt(int64(lo)), pyjson.NewInt(int64(hi))}}
}

// RawBatchSize wraps a decoded JSON value (pyjson value model): an int, a
// list (the reference's tuple) or anything else. nil returns nil.
func RawBatchSize(v any) *BatchSize {
	if v == nil {
		return nil
	}
	return &BatchSize{value: v}
}

// Value returns the value as given (pyjson value model).
func (b *BatchSize) Value() any {
	if b == nil {
		return nil
	}
	return b.value
}

// Parse validates the request and returns the inclusive (min, max) range.
func (b *BatchSize) Parse() (lo, hi int64, err error) {
	fail := func(detail string) (int64, int64, error) {
		return 0, 0, &InvalidRequestedBatchSizeError{Detail: detail,
			Message: "Could not parse batch size requested from model package negotiation procedure. " + detail}
	}
	switch v := b.value.(type) {
	case []any, pyjson.Tuple:
		items := toList(v)
		if len(items) != 2 {
			return fail(fmt.Sprintf("Batch size can be specified as single integer value or tuple with (min_batch_size, max_batch_size), detected tuple of invalid size (%d)", len(items)))
		}
		var n [2]int64
		for i, it := range items {
			x, ok := pyInt(it)
			if !ok {
				return fail(fmt.Sprintf("Batch size tuple must hold integer values, detected element which is not integer but has type %s", pyTypeName(it)))
			}
			n[i] = x
		}
		if n[1] < n[0] {
			return fail("`max_batch_size` is lower than `min_batch_size`")
		}
		if n[0] <= 0 || n[1] <= 0 {
			return fail("`min_batch_size` or `max_batch_size` is <= 0")
		}
		return n[0], n[1], nil
	default:
		x, ok := pyInt(v)
		if !ok {
			return fail(fmt.Sprintf("Batch size can be specified as single integer value or tuple with (min_batch_size, max_batch_size), detected single value which is not integer but has type %s", pyTypeName(v)))
		}
		if x <= 0 {
			return fail("`requested_batch_size` is <= 0")
		}
		return x, x, nil
	}
}

func toList(v any) []any {
	switch l := v.(type) {
	case []any:
		return l
	case pyjson.Tuple:
		return []any(l)
	}
	return nil
}

// pyInt reads a Python int (bool included, as isinstance(x, int) does).
// Values beyond int64 saturate, which keeps their comparisons right.
func pyInt(v any) (int64, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	case pyjson.Int:
		if n, ok := x.Int64(); ok {
			return n, true
		}
		if x.Sign() < 0 {
			return -1 << 63, true
		}
		return 1<<63 - 1, true
	case int:
		return int64(x), true
	case int64:
		return x, true
	case *big.Int:
		return pyInt(pyjson.IntFromBig(x))
	}
	return 0, false
}

// pyTypeName is Python's type(x).__name__ for a pyjson value.
func pyTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case bool:
		return "bool"
	case pyjson.Int, int, int64, *big.Int:
		return "int"
	case float64, float32:
		return "float"
	case string:
		return "str"
	case []any:
		return "list"
	case pyjson.Tuple:
		return "tuple"
	case *pyjson.Object, map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// parseBackends lower-cases and validates the requested backends; the result
// is a set in request order (duplicates dropped).
func parseBackends(values []string) ([]metadata.BackendType, error) {
	out := []metadata.BackendType{}
	for _, v := range values {
		b := metadata.BackendType(strings.ToLower(v))
		if !b.Valid() {
			names := make([]string, 0, 7)
			for _, k := range backendDeclarationOrder() {
				names = append(names, "'"+string(k)+"'")
			}
			hint := ""
			if strings.EqualFold(v, "hf") {
				hint = " `hf` is the manifest spelling: request `hugging-face`."
			}
			return nil, &UnknownBackendTypeError{Value: v, Message: fmt.Sprintf(
				"Requested backend of type '%s' which is not recognized by `inference-models`. Supported backends: [%s].%s",
				v, strings.Join(names, ", "), hint)}
		}
		if !containsBackend(out, b) {
			out = append(out, b)
		}
	}
	return out, nil
}

func containsBackend(s []metadata.BackendType, b metadata.BackendType) bool {
	for _, x := range s {
		if x == b {
			return true
		}
	}
	return false
}

// backendDeclarationOrder is the reference's BackendType declaration order,
// used wherever it prints a set of backends (Q8).
func backendDeclarationOrder() []metadata.BackendType {
	return []metadata.BackendType{metadata.BackendTorch, metadata.BackendTorchScript, metadata.BackendONNX,
		metadata.BackendTRT, metadata.BackendHuggingFace, metadata.BackendUltralytics, metadata.BackendCustom}
}

// quantizationDeclarationOrder is the reference's Quantization declaration order.
func quantizationDeclarationOrder() []metadata.Quantization {
	return []metadata.Quantization{metadata.QuantizationFP32, metadata.QuantizationFP16,
		metadata.QuantizationBF16, metadata.QuantizationINT8, metadata.QuantizationUnknown}
}

func parseQuantizations(values []string) ([]metadata.Quantization, error) {
	out := []metadata.Quantization{}
	for _, v := range values {
		q := metadata.Quantization(v)
		if !q.Valid() {
			hint := ""
			if lq := metadata.Quantization(strings.ToLower(v)); lq.Valid() {
				hint = fmt.Sprintf(" Quantization values are case-sensitive: request `%s`.", lq)
			}
			return nil, &UnknownQuantizationError{Value: v, Message: fmt.Sprintf(
				"Requested quantization of type '%s' which is not recognized by `inference-models`. Supported values: ['FP32', 'FP16', 'BF16', 'INT8', 'UNKNOWN'].%s", v, hint)}
		}
		if !containsQuant(out, q) {
			out = append(out, q)
		}
	}
	return out, nil
}

func containsQuant(s []metadata.Quantization, q metadata.Quantization) bool {
	for _, x := range s {
		if x == q {
			return true
		}
	}
	return false
}

// Device is a parsed torch device.
type Device struct {
	// Type is "cpu", "cuda", "mps", …
	Type string
	// Index is the device index; HasIndex is false for "cuda" (index 0 for CUDA).
	Index    int
	HasIndex bool
}

// String returns the torch spelling ("cuda:1", "cpu").
func (d Device) String() string {
	if d.HasIndex {
		return d.Type + ":" + strconv.Itoa(d.Index)
	}
	return d.Type
}

// ParseDevice parses a torch device string: "<type>" or "<type>:<index>",
// type lower-case letters, digits and underscores, index a non-negative
// integer. Errors wrap ErrNegotiation's base class.
func ParseDevice(s string) (Device, error) {
	typ, idx, hasIdx := strings.Cut(strings.TrimSpace(s), ":")
	bad := func() (Device, error) {
		return Device{}, negotiationErrorf(fmt.Sprintf("Invalid device %q: expected a torch device such as cpu, cuda, cuda:1 or mps", s))
	}
	if typ == "" {
		return bad()
	}
	for _, r := range typ {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			return bad()
		}
	}
	d := Device{Type: typ}
	if hasIdx {
		n, err := strconv.Atoi(idx)
		if err != nil || n < 0 || strings.HasPrefix(idx, "+") {
			return bad()
		}
		d.Index, d.HasIndex = n, true
	}
	return d, nil
}

// ExecutionProvider is an ONNX Runtime execution provider: a bare name, or a
// name with an options dict.
type ExecutionProvider struct {
	Name string
	// Options nil means the bare name; otherwise [name, options] (pyjson values).
	Options *pyjson.Object
}

// DefaultDevice is the loader's device when the caller names none: the
// configured DEFAULT_DEVICE, else cuda when the runtime lists a GPU, else cpu.
func DefaultDevice(configured string, rt Runtime) string {
	if d := strings.TrimSpace(configured); d != "" {
		return d
	}
	if len(rt.GPUDevices) > 0 {
		return "cuda"
	}
	return "cpu"
}
