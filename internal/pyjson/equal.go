package pyjson

import (
	"math"
	"math/big"
)

// Equal reports whether a == b under Python semantics for the value model:
// key order is ignored, 1 == 1.0 == True, NaN is unequal to everything, and a
// list never equals a tuple (json output never holds tuples, so that rarely matters).
func Equal(a, b any) bool {
	if na, ok := numeric(a); ok {
		nb, ok := numeric(b)
		return ok && numEqual(na, nb)
	}
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case Enum:
		// A str-enum member compares equal to its value.
		switch y := b.(type) {
		case Enum:
			return x.Value == y.Value
		case string:
			return x.Value == y
		}
		return false
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case Tuple:
		y, ok := b.(Tuple)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case *Object:
		y, ok := b.(*Object)
		if !ok || x.Len() != y.Len() {
			return false
		}
		for _, k := range x.keys {
			yv, ok := y.vals[k]
			if !ok || !Equal(x.vals[k], yv) {
				return false
			}
		}
		return true
	}
	if s, ok := b.(string); ok {
		if e, ok := a.(Enum); ok {
			return e.Value == s
		}
	}
	return false
}

// numeric maps bool, Int, Go ints and floats onto a comparable number.
// The returned value is *big.Int for integers (bools are 0/1) or float64.
func numeric(v any) (any, bool) {
	switch x := v.(type) {
	case bool:
		if x {
			return big.NewInt(1), true
		}
		return big.NewInt(0), true
	case Int:
		return x.Big(), true
	case *big.Int:
		return x, true
	case int:
		return big.NewInt(int64(x)), true
	case int64:
		return big.NewInt(x), true
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	return nil, false
}

func numEqual(a, b any) bool {
	ai, aInt := a.(*big.Int)
	bi, bInt := b.(*big.Int)
	switch {
	case aInt && bInt:
		return ai.Cmp(bi) == 0
	case aInt:
		return intFloatEqual(ai, b.(float64))
	case bInt:
		return intFloatEqual(bi, a.(float64))
	}
	return a.(float64) == b.(float64)
}

// intFloatEqual compares exactly, as Python does (no rounding of the int).
func intFloatEqual(i *big.Int, f float64) bool {
	if math.IsNaN(f) || math.IsInf(f, 0) || f != math.Trunc(f) {
		return false
	}
	bf := new(big.Float).SetInt(i)
	return bf.Cmp(big.NewFloat(f)) == 0
}
