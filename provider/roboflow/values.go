package roboflow

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// The helpers below read pyjson values with pydantic's lax-mode rules, which is
// how the reference validates the API response: str fields accept only
// strings; int fields accept ints, integral floats, bools and integer strings;
// float fields accept numbers, bools and numeric strings; bool fields accept
// bools, 0/1 and the usual yes/no strings.

// fieldError is a validation failure at a JSON path.
type fieldError struct {
	path string
	msg  string
}

func (e *fieldError) Error() string { return e.path + ": " + e.msg }

func ferr(path, format string, args ...any) error {
	return &fieldError{path: path, msg: fmt.Sprintf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case string:
		return "str"
	case pyjson.Int:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case *pyjson.Object:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// obj reads a required object.
func asObject(v any, path string) (*pyjson.Object, error) {
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, ferr(path, "expected an object, got %s", typeName(v))
	}
	return o, nil
}

func reqStr(o *pyjson.Object, key, path string) (string, error) {
	v, ok := o.Get(key)
	if !ok {
		return "", ferr(join(path, key), "field required")
	}
	s, ok := v.(string)
	if !ok {
		return "", ferr(join(path, key), "expected a string, got %s", typeName(v))
	}
	return s, nil
}

// optStr reads an optional, nullable string.
func optStr(o *pyjson.Object, key, path string) (*string, error) {
	v, ok := o.Get(key)
	if !ok || v == nil {
		return nil, nil
	}
	s, ok := v.(string)
	if !ok {
		return nil, ferr(join(path, key), "expected a string or null, got %s", typeName(v))
	}
	return &s, nil
}

func literal(o *pyjson.Object, key, want, path string) error {
	s, err := reqStr(o, key, path)
	if err != nil {
		return err
	}
	if s != want {
		return ferr(join(path, key), "expected %q, got %q", want, s)
	}
	return nil
}

func laxBool(v any, path string) (bool, error) {
	if b, ok := pyjson.LaxBool(v); ok {
		return b, nil
	}
	return false, ferr(path, "expected a boolean, got %s", typeName(v))
}

// boolDefault reads an optional bool with a default; null is invalid (the
// reference declares these as plain bool fields with a default).
func boolDefault(o *pyjson.Object, key, path string, def bool) (bool, error) {
	v, ok := o.Get(key)
	if !ok {
		return def, nil
	}
	return laxBool(v, join(path, key))
}

// strictBoolDefault reads an entity-level bool: only JSON true/false; a
// missing key takes def, anything else (null, "true", 1) is an error
// (NEGOTIATION.md quirk:strict-entity).
func strictBoolDefault(o *pyjson.Object, key, path string, def bool) (bool, error) {
	v, ok := o.Get(key)
	if !ok {
		return def, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, ferr(join(path, key), "expected true or false")
	}
	return b, nil
}

func laxInt(v any, path string) (int, error) {
	switch x := v.(type) {
	case pyjson.Int:
		if n, ok := x.Int64(); ok && n >= math.MinInt && n <= math.MaxInt {
			return int(n), nil
		}
		return 0, ferr(path, "integer out of range")
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case float64:
		if x == math.Trunc(x) && !math.IsInf(x, 0) && math.Abs(x) < 1<<53 {
			return int(x), nil
		}
		return 0, ferr(path, "expected an integer, got a float with a fractional part")
	case string:
		if n, err := strconv.Atoi(strings.TrimSpace(x)); err == nil {
			return n, nil
		}
	}
	return 0, ferr(path, "expected an integer, got %s", typeName(v))
}

func reqInt(o *pyjson.Object, key, path string) (int, error) {
	v, ok := o.Get(key)
	if !ok {
		return 0, ferr(join(path, key), "field required")
	}
	return laxInt(v, join(path, key))
}

func optInt(o *pyjson.Object, key, path string) (*int, error) {
	v, ok := o.Get(key)
	if !ok || v == nil {
		return nil, nil
	}
	n, err := laxInt(v, join(path, key))
	if err != nil {
		return nil, err
	}
	return &n, nil
}

func laxFloat(v any, path string) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case pyjson.Int:
		f, _ := new(big.Float).SetInt(x.Big()).Float64()
		if math.IsInf(f, 0) {
			return 0, ferr(path, "integer too large to convert to float")
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		if f, err := strconv.ParseFloat(strings.TrimSpace(x), 64); err == nil {
			return f, nil
		}
	}
	return 0, ferr(path, "expected a number, got %s", typeName(v))
}

func strList(v any, path string) ([]string, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, ferr(path, "expected a list, got %s", typeName(v))
	}
	out := make([]string, 0, len(l))
	for i, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, ferr(fmt.Sprintf("%s[%d]", path, i), "expected a string, got %s", typeName(e))
		}
		out = append(out, s)
	}
	return out, nil
}

// recommendedParameters parses {"confidence": float?, "perClassConfidence":
// {class: float}?} or null; unknown keys are dropped.
func recommendedParameters(v any, path string) (*metadata.RecommendedParameters, error) {
	if v == nil {
		return nil, nil
	}
	o, err := asObject(v, path)
	if err != nil {
		return nil, err
	}
	r := &metadata.RecommendedParameters{}
	if c, ok := o.Get("confidence"); ok && c != nil {
		f, err := laxFloat(c, join(path, "confidence"))
		if err != nil {
			return nil, err
		}
		r.Confidence = &f
	}
	if pc, ok := o.Get("perClassConfidence"); ok && pc != nil {
		po, err := asObject(pc, join(path, "perClassConfidence"))
		if err != nil {
			return nil, err
		}
		r.PerClassConfidence = metadata.ClassConfidences{}
		for _, k := range po.Keys() {
			fv, _ := po.Get(k)
			f, err := laxFloat(fv, join(path, "perClassConfidence."+k))
			if err != nil {
				return nil, err
			}
			r.PerClassConfidence = append(r.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: f})
		}
	}
	return r, nil
}
