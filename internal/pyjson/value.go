// Package pyjson reads and writes JSON exactly as CPython's json module does.
//
// The reference hashes json.dumps output (sort_keys=True, ", " and ": " separators,
// ensure_ascii, float repr), so every hash in the on-disk contract depends on
// reproducing those bytes; encoding/json cannot. Values keep Python's int/float
// distinction: a parsed "1" is an Int, "1.0" a float64.
//
// Value model (both for Marshal input and Decode output):
//
//	nil        None / null
//	bool       bool
//	string     str
//	Int        int of any size (Go int kinds are accepted on input too)
//	float64    float (float32 accepted on input)
//	[]any      list (Tuple and typed slices such as []string accepted on input)
//	*Object    dict with insertion order (map[string]any accepted on input, sorted)
//	Enum       a str-valued enum member; serializes as its value
//
// Set and Path exist only so that callers can hold Python-only argument types
// before canonicalizing them; json.dumps rejects them and so does Marshal.
package pyjson

import (
	"fmt"
	"math/big"
	"strings"
)

// Int is a Python int of arbitrary precision.
type Int struct {
	small int64
	big   *big.Int // non-nil only when the value does not fit int64
}

// NewInt returns the Int for v.
func NewInt(v int64) Int { return Int{small: v} }

// IntFromBig returns the Int for v (copied).
func IntFromBig(v *big.Int) Int {
	if v.IsInt64() {
		return Int{small: v.Int64()}
	}
	return Int{big: new(big.Int).Set(v)}
}

// ParseInt parses a decimal integer literal (optional leading '-').
func ParseInt(s string) (Int, error) {
	b, ok := new(big.Int).SetString(s, 10)
	if !ok || strings.HasPrefix(s, "+") {
		return Int{}, fmt.Errorf("pyjson: invalid integer literal %q", s)
	}
	return IntFromBig(b), nil
}

// Int64 returns the value and whether it fits in an int64.
func (i Int) Int64() (int64, bool) {
	if i.big != nil {
		return 0, false
	}
	return i.small, true
}

// Big returns the value as a new *big.Int.
func (i Int) Big() *big.Int {
	if i.big != nil {
		return new(big.Int).Set(i.big)
	}
	return big.NewInt(i.small)
}

// Sign returns -1, 0 or +1.
func (i Int) Sign() int {
	if i.big != nil {
		return i.big.Sign()
	}
	switch {
	case i.small < 0:
		return -1
	case i.small > 0:
		return 1
	}
	return 0
}

// String returns the decimal form, as Python's repr(int).
func (i Int) String() string {
	if i.big != nil {
		return i.big.String()
	}
	return fmt.Sprint(i.small)
}

// Tuple is a Python tuple; it serializes as a JSON array.
type Tuple []any

// Set is a Python set. Marshal rejects it, as json.dumps does.
type Set []any

// Path is an os.PathLike value. Marshal rejects it, as json.dumps does.
type Path string

// Enum is a member of a str-valued Python enum (BackendType, Quantization, …).
type Enum struct {
	Class string
	Value string
}

// Object is a JSON object that keeps insertion order, like a Python dict.
type Object struct {
	keys []string
	vals map[string]any
}

// NewObject returns an empty object.
func NewObject() *Object { return &Object{vals: map[string]any{}} }

// ObjectOf builds an object from alternating key, value arguments.
// It panics on a non-string key: it is meant for literals in code.
func ObjectOf(kv ...any) *Object {
	if len(kv)%2 != 0 {
		panic("pyjson.ObjectOf: odd number of arguments")
	}
	o := NewObject()
	for i := 0; i < len(kv); i += 2 {
		o.Set(kv[i].(string), kv[i+1])
	}
	return o
}

// Set assigns k. An existing key keeps its position, as in a Python dict.
func (o *Object) Set(k string, v any) {
	if o.vals == nil {
		o.vals = map[string]any{}
	}
	if _, ok := o.vals[k]; !ok {
		o.keys = append(o.keys, k)
	}
	o.vals[k] = v
}

// Get returns the value at k.
func (o *Object) Get(k string) (any, bool) {
	if o == nil {
		return nil, false
	}
	v, ok := o.vals[k]
	return v, ok
}

// Has reports whether k is present.
func (o *Object) Has(k string) bool {
	_, ok := o.Get(k)
	return ok
}

// Delete removes k if present.
func (o *Object) Delete(k string) {
	if _, ok := o.vals[k]; !ok {
		return
	}
	delete(o.vals, k)
	for i, kk := range o.keys {
		if kk == k {
			o.keys = append(o.keys[:i:i], o.keys[i+1:]...)
			break
		}
	}
}

// Keys returns the keys in insertion order (a copy).
func (o *Object) Keys() []string {
	if o == nil {
		return nil
	}
	return append([]string(nil), o.keys...)
}

// Len returns the number of keys.
func (o *Object) Len() int {
	if o == nil {
		return 0
	}
	return len(o.keys)
}

// Clone returns a shallow copy.
func (o *Object) Clone() *Object {
	c := NewObject()
	for _, k := range o.Keys() {
		c.Set(k, o.vals[k])
	}
	return c
}
