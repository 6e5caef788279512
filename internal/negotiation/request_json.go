package negotiation

import (
	"fmt"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// DecodeRequest reads a request object in the compat/NEGOTIATION.md schema:
//
//	{"model_package_id": str|null, "backend": null|str|[str],
//	 "batch_size": null|int|[min, max]|other, "quantization": null|str|[str],
//	 "device": null|str, "onnx_execution_providers": null|[str|[name, {options}]],
//	 "allow_untrusted_packages": bool, "trt_engine_host_code_allowed": bool,
//	 "nms_fusion_preferences": null|bool|object}
//
// Every key is optional (absent = the default); unknown keys are refused so
// that a misspelt key does not go unnoticed. batch_size is kept raw: an
// invalid value is reported by Negotiate, like the reference does.
func DecodeRequest(data []byte) (Request, error) {
	v, err := pyjson.Decode(data)
	if err != nil {
		return Request{}, fmt.Errorf("request: %w", err)
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return Request{}, fmt.Errorf("request: expected a JSON object, got %s", pyTypeName(v))
	}
	var req Request
	var unknown []string
	for _, k := range o.Keys() {
		val, _ := o.Get(k)
		var err error
		switch k {
		case "model_package_id":
			switch x := val.(type) {
			case nil:
			case string:
				req.ModelPackageID = &x
			default:
				err = fmt.Errorf("expected a string or null, got %s", pyTypeName(val))
			}
		case "backend":
			req.Backends, err = stringOrList(val)
		case "quantization":
			req.Quantization, err = stringOrList(val)
		case "batch_size":
			req.BatchSize = RawBatchSize(val)
		case "device":
			switch x := val.(type) {
			case nil:
			case string:
				if x == "" {
					err = fmt.Errorf("empty device (use null for device=None)")
				}
				req.Device = x
			default:
				err = fmt.Errorf("expected a string or null, got %s", pyTypeName(val))
			}
		case "onnx_execution_providers":
			req.ONNXExecutionProviders, err = decodeProviders(val)
		case "allow_untrusted_packages":
			b, ok := val.(bool)
			if !ok {
				err = fmt.Errorf("expected a bool, got %s", pyTypeName(val))
			}
			req.AllowUntrustedPackages = b
		case "trt_engine_host_code_allowed":
			b, ok := val.(bool)
			if !ok {
				err = fmt.Errorf("expected a bool, got %s", pyTypeName(val))
			}
			req.DisallowTRTEngineHostCode = !b
		case "nms_fusion_preferences":
			switch val.(type) {
			case nil, bool, *pyjson.Object:
				req.NMSFusionPreferences = val
			default:
				err = fmt.Errorf("expected null, a bool or an object, got %s", pyTypeName(val))
			}
		default:
			unknown = append(unknown, k)
		}
		if err != nil {
			return Request{}, fmt.Errorf("request: %s: %w", k, err)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return Request{}, fmt.Errorf("request: unknown keys %s (known: model_package_id, backend, batch_size, quantization, device, onnx_execution_providers, allow_untrusted_packages, trt_engine_host_code_allowed, nms_fusion_preferences)", strings.Join(unknown, ", "))
	}
	return req, nil
}

func stringOrList(v any) ([]string, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case string:
		return []string{x}, nil
	case []any:
		out := make([]string, 0, len(x))
		for i, it := range x {
			s, ok := it.(string)
			if !ok {
				return nil, fmt.Errorf("item %d: expected a string, got %s", i, pyTypeName(it))
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("expected null, a string or a list of strings, got %s", pyTypeName(v))
}

func decodeProviders(v any) ([]ExecutionProvider, error) {
	if v == nil {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("expected null or a list, got %s", pyTypeName(v))
	}
	out := make([]ExecutionProvider, 0, len(l))
	for i, it := range l {
		switch x := it.(type) {
		case string:
			out = append(out, ExecutionProvider{Name: x})
		case []any:
			if len(x) != 2 {
				return nil, fmt.Errorf("item %d: expected [name, {options}], got a list of %d", i, len(x))
			}
			name, ok1 := x[0].(string)
			opts, ok2 := x[1].(*pyjson.Object)
			if !ok1 || !ok2 {
				return nil, fmt.Errorf("item %d: expected [name, {options}]", i)
			}
			out = append(out, ExecutionProvider{Name: name, Options: opts})
		default:
			return nil, fmt.Errorf("item %d: expected a name or [name, {options}], got %s", i, pyTypeName(it))
		}
	}
	return out, nil
}
