package pyjson

import "strings"

// LaxBool converts v the way pydantic's lax mode reads a bool from JSON:
// true/false, the ints 0/1, the floats 0.0/1.0, and the strings 0/1, f/t,
// n/y, no/yes, off/on, false/true in any letter case. ok is false otherwise.
func LaxBool(v any) (b, ok bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case Int:
		if n, fits := x.Int64(); fits && (n == 0 || n == 1) {
			return n == 1, true
		}
	case float64:
		if x == 0 || x == 1 {
			return x == 1, true
		}
	case string:
		switch strings.ToLower(x) {
		case "0", "f", "n", "no", "off", "false":
			return false, true
		case "1", "t", "y", "yes", "on", "true":
			return true, true
		}
	}
	return false, false
}
