package pyjson

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UnsupportedValueError reports a value json.dumps would refuse (sets, paths,
// Go types outside the value model, invalid UTF-8).
type UnsupportedValueError struct {
	Type   string
	Reason string
}

func (e *UnsupportedValueError) Error() string {
	return fmt.Sprintf("pyjson: cannot serialize %s: %s", e.Type, e.Reason)
}

type encoder struct {
	sb       strings.Builder
	sortKeys bool
	indent   bool
}

// Marshal returns json.dumps(v): compact ", "/": " separators, keys in insertion order.
func Marshal(v any) ([]byte, error) { return encode(v, false, false) }

// MarshalSorted returns json.dumps(v, sort_keys=True), the form every hash uses.
func MarshalSorted(v any) ([]byte, error) { return encode(v, true, false) }

// MarshalIndent returns json.dumps(v, indent=2, sort_keys=True).
func MarshalIndent(v any) ([]byte, error) { return encode(v, true, true) }

// HashDict returns the lowercase hex SHA-256 of MarshalSorted(v) (the reference's hash_dict_content).
func HashDict(v any) (string, error) {
	b, err := MarshalSorted(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

func encode(v any, sortKeys, indent bool) ([]byte, error) {
	e := &encoder{sortKeys: sortKeys, indent: indent}
	if err := e.value(v, 0); err != nil {
		return nil, err
	}
	return []byte(e.sb.String()), nil
}

func (e *encoder) newline(depth int) {
	e.sb.WriteByte('\n')
	for i := 0; i < depth; i++ {
		e.sb.WriteString("  ")
	}
}

func (e *encoder) sep(depth int) {
	if e.indent {
		e.sb.WriteByte(',')
		e.newline(depth)
	} else {
		e.sb.WriteString(", ")
	}
}

func (e *encoder) value(v any, depth int) error {
	switch x := v.(type) {
	case nil:
		e.sb.WriteString("null")
	case bool:
		if x {
			e.sb.WriteString("true")
		} else {
			e.sb.WriteString("false")
		}
	case string:
		return e.str(x)
	case Enum:
		return e.str(x.Value)
	case Int:
		e.sb.WriteString(x.String())
	case *big.Int:
		e.sb.WriteString(x.String())
	case int:
		e.sb.WriteString(strconv.FormatInt(int64(x), 10))
	case int64:
		e.sb.WriteString(strconv.FormatInt(x, 10))
	case int32:
		e.sb.WriteString(strconv.FormatInt(int64(x), 10))
	case uint64:
		e.sb.WriteString(strconv.FormatUint(x, 10))
	case uint32:
		e.sb.WriteString(strconv.FormatUint(uint64(x), 10))
	case float64:
		e.sb.WriteString(FormatFloat(x))
	case float32:
		e.sb.WriteString(FormatFloat(float64(x)))
	case []any:
		return e.list(len(x), func(i int) any { return x[i] }, depth)
	case Tuple:
		return e.list(len(x), func(i int) any { return x[i] }, depth)
	case *Object:
		if x == nil {
			e.sb.WriteString("null")
			return nil
		}
		return e.object(x.keys, func(k string) any { return x.vals[k] }, depth)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys) // a Go map has no order to keep
		return e.object(keys, func(k string) any { return x[k] }, depth)
	case Set:
		return &UnsupportedValueError{Type: "set", Reason: "Object of type set is not JSON serializable"}
	case Path:
		return &UnsupportedValueError{Type: "path", Reason: "Object of type PosixPath is not JSON serializable"}
	default:
		// Typed slices ([]string, []int, [][2]string, …) serialize as lists.
		rv := reflect.ValueOf(v)
		if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array {
			return e.list(rv.Len(), func(i int) any { return rv.Index(i).Interface() }, depth)
		}
		if rv.Kind() == reflect.Map && rv.Type().Key().Kind() == reflect.String {
			m := make(map[string]any, rv.Len())
			for _, k := range rv.MapKeys() {
				m[k.String()] = rv.MapIndex(k).Interface()
			}
			return e.value(m, depth)
		}
		if rv.Kind() == reflect.Pointer && rv.IsNil() {
			e.sb.WriteString("null")
			return nil
		}
		if rv.Kind() == reflect.Pointer {
			return e.value(rv.Elem().Interface(), depth)
		}
		if rv.Kind() == reflect.String {
			return e.str(rv.String())
		}
		return &UnsupportedValueError{Type: fmt.Sprintf("%T", v), Reason: "not in the pyjson value model"}
	}
	return nil
}

func (e *encoder) list(n int, at func(int) any, depth int) error {
	if n == 0 {
		e.sb.WriteString("[]")
		return nil
	}
	e.sb.WriteByte('[')
	if e.indent {
		e.newline(depth + 1)
	}
	for i := 0; i < n; i++ {
		if i > 0 {
			e.sep(depth + 1)
		}
		if err := e.value(at(i), depth+1); err != nil {
			return err
		}
	}
	if e.indent {
		e.newline(depth)
	}
	e.sb.WriteByte(']')
	return nil
}

func (e *encoder) object(keys []string, at func(string) any, depth int) error {
	if len(keys) == 0 {
		e.sb.WriteString("{}")
		return nil
	}
	if e.sortKeys {
		keys = append([]string(nil), keys...)
		sort.Strings(keys) // byte order of valid UTF-8 == code point order, as Python sorts
	}
	e.sb.WriteByte('{')
	if e.indent {
		e.newline(depth + 1)
	}
	for i, k := range keys {
		if i > 0 {
			e.sep(depth + 1)
		}
		if err := e.str(k); err != nil {
			return err
		}
		e.sb.WriteString(": ")
		if err := e.value(at(k), depth+1); err != nil {
			return err
		}
	}
	if e.indent {
		e.newline(depth)
	}
	e.sb.WriteByte('}')
	return nil
}

const hexDigits = "0123456789abcdef"

// str writes s with ensure_ascii escaping: only printable ASCII other than '"' and '\' is literal.
func (e *encoder) str(s string) error {
	if !utf8.ValidString(s) {
		return &UnsupportedValueError{Type: "str", Reason: "invalid UTF-8"}
	}
	e.sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			e.sb.WriteString(`\"`)
		case r == '\\':
			e.sb.WriteString(`\\`)
		case r == '\n':
			e.sb.WriteString(`\n`)
		case r == '\r':
			e.sb.WriteString(`\r`)
		case r == '\t':
			e.sb.WriteString(`\t`)
		case r == '\b':
			e.sb.WriteString(`\b`)
		case r == '\f':
			e.sb.WriteString(`\f`)
		case r >= 0x20 && r <= 0x7e:
			e.sb.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			e.u16(0xd800 | uint16(r>>10))
			e.u16(0xdc00 | uint16(r&0x3ff))
		default:
			e.u16(uint16(r))
		}
	}
	e.sb.WriteByte('"')
	return nil
}

func (e *encoder) u16(c uint16) {
	e.sb.WriteString(`\u`)
	e.sb.WriteByte(hexDigits[c>>12&0xf])
	e.sb.WriteByte(hexDigits[c>>8&0xf])
	e.sb.WriteByte(hexDigits[c>>4&0xf])
	e.sb.WriteByte(hexDigits[c&0xf])
}

// FormatFloat returns Python's float repr as json.dumps writes it
// (Infinity, -Infinity and NaN as bare tokens).
func FormatFloat(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	case x == 0:
		if math.Signbit(x) {
			return "-0.0"
		}
		return "0.0"
	}
	// Shortest round-trip digits; Go's 'e' form already matches Python's
	// exponent form (no ".0", sign, at least two exponent digits).
	sci := strconv.FormatFloat(x, 'e', -1, 64)
	mant, expStr, _ := strings.Cut(sci, "e")
	exp, _ := strconv.Atoi(expStr)
	if exp < -4 || exp >= 16 {
		return sci
	}
	neg := strings.HasPrefix(mant, "-")
	digits := strings.Replace(strings.TrimPrefix(mant, "-"), ".", "", 1)
	var out string
	point := exp + 1 // digits before the decimal point
	switch {
	case point <= 0:
		out = "0." + strings.Repeat("0", -point) + digits
	case point >= len(digits):
		out = digits + strings.Repeat("0", point-len(digits)) + ".0"
	default:
		out = digits[:point] + "." + digits[point:]
	}
	if neg {
		out = "-" + out
	}
	return out
}
