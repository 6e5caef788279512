package pyjson

import (
	"fmt"
	"math"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// SyntaxError is a JSON document json.loads would reject.
type SyntaxError struct {
	Offset int
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("pyjson: %s at offset %d", e.Msg, e.Offset)
}

// Decode parses data the way json.loads parses text: integer literals become Int,
// literals with a fraction or exponent become float64 (1e400 is +Inf), NaN and
// Infinity are accepted, and a duplicate key keeps the last value at the first
// key's position. data must be UTF-8 without a BOM.
func Decode(data []byte) (any, error) {
	if !utf8.Valid(data) {
		return nil, &SyntaxError{Offset: 0, Msg: "input is not valid UTF-8"}
	}
	if len(data) >= 3 && data[0] == 0xef && data[1] == 0xbb && data[2] == 0xbf {
		return nil, &SyntaxError{Offset: 0, Msg: "unexpected UTF-8 BOM"}
	}
	d := &decoder{s: data}
	d.ws()
	v, err := d.value(0)
	if err != nil {
		return nil, err
	}
	d.ws()
	if d.i != len(d.s) {
		return nil, d.fail("extra data")
	}
	return v, nil
}

// DecodeObject decodes data and requires a top-level object.
func DecodeObject(data []byte) (*Object, error) {
	v, err := Decode(data)
	if err != nil {
		return nil, err
	}
	o, ok := v.(*Object)
	if !ok {
		return nil, &SyntaxError{Offset: 0, Msg: "top-level value is not an object"}
	}
	return o, nil
}

const maxDepth = 1000 // CPython's default recursion limit is of this order

type decoder struct {
	s []byte
	i int
}

func (d *decoder) fail(msg string) error { return &SyntaxError{Offset: d.i, Msg: msg} }

func (d *decoder) ws() {
	for d.i < len(d.s) {
		switch d.s[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *decoder) lit(word string) bool {
	if len(d.s)-d.i >= len(word) && string(d.s[d.i:d.i+len(word)]) == word {
		d.i += len(word)
		return true
	}
	return false
}

func (d *decoder) value(depth int) (any, error) {
	if depth > maxDepth {
		return nil, d.fail("maximum nesting depth exceeded")
	}
	if d.i >= len(d.s) {
		return nil, d.fail("expecting value")
	}
	switch c := d.s[d.i]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		return d.string()
	case d.lit("null"):
		return nil, nil
	case d.lit("true"):
		return true, nil
	case d.lit("false"):
		return false, nil
	case d.lit("NaN"):
		return math.NaN(), nil
	case d.lit("Infinity"):
		return math.Inf(1), nil
	case d.lit("-Infinity"):
		return math.Inf(-1), nil
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, d.fail("expecting value")
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number follows the reference scanner: -?(0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?
func (d *decoder) number() (any, error) {
	start := d.i
	if d.s[d.i] == '-' {
		d.i++
	}
	if d.i >= len(d.s) || !isDigit(d.s[d.i]) {
		d.i = start
		return nil, d.fail("expecting value")
	}
	if d.s[d.i] == '0' {
		d.i++
	} else {
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	}
	isFloat := false
	if d.i+1 < len(d.s) && d.s[d.i] == '.' && isDigit(d.s[d.i+1]) {
		isFloat = true
		d.i += 2
		for d.i < len(d.s) && isDigit(d.s[d.i]) {
			d.i++
		}
	}
	if d.i < len(d.s) && (d.s[d.i] == 'e' || d.s[d.i] == 'E') {
		j := d.i + 1
		if j < len(d.s) && (d.s[j] == '+' || d.s[j] == '-') {
			j++
		}
		if j < len(d.s) && isDigit(d.s[j]) {
			isFloat = true
			for j < len(d.s) && isDigit(d.s[j]) {
				j++
			}
			d.i = j
		}
	}
	text := string(d.s[start:d.i])
	if !isFloat {
		return ParseInt(text)
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		// Out of range: Python's float() gives ±inf (or 0.0), never an error.
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, nil
		}
		return nil, &SyntaxError{Offset: start, Msg: "bad number " + text}
	}
	return f, nil
}

func (d *decoder) string() (string, error) {
	d.i++ // opening quote
	// Fast path: a string without escapes is a slice of the input.
	for j := d.i; j < len(d.s); j++ {
		c := d.s[j]
		if c == '"' {
			out := string(d.s[d.i:j])
			d.i = j + 1
			return out, nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
	}
	var buf []byte
	for {
		if d.i >= len(d.s) {
			return "", d.fail("unterminated string")
		}
		c := d.s[d.i]
		switch {
		case c == '"':
			d.i++
			return string(buf), nil
		case c < 0x20:
			return "", d.fail("invalid control character in string")
		case c == '\\':
			if d.i+1 >= len(d.s) {
				return "", d.fail("unterminated string")
			}
			esc := d.s[d.i+1]
			d.i += 2
			switch esc {
			case '"', '\\', '/':
				buf = append(buf, esc)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := d.hex4()
				if err != nil {
					return "", err
				}
				if utf16.IsSurrogate(r) && r < 0xdc00 && d.i+1 < len(d.s) && d.s[d.i] == '\\' && d.s[d.i+1] == 'u' {
					save := d.i
					d.i += 2
					r2, err := d.hex4()
					if err == nil && r2 >= 0xdc00 && r2 <= 0xdfff {
						r = utf16.DecodeRune(r, r2)
					} else {
						d.i = save
					}
				}
				// A lone surrogate cannot live in a Go string; U+FFFD stands in for it.
				buf = utf8.AppendRune(buf, r)
			default:
				d.i -= 2
				return "", d.fail("invalid \\escape")
			}
		default:
			buf = append(buf, c)
			d.i++
		}
	}
}

func (d *decoder) hex4() (rune, error) {
	if d.i+4 > len(d.s) {
		return 0, d.fail("invalid \\uXXXX escape")
	}
	v, err := strconv.ParseUint(string(d.s[d.i:d.i+4]), 16, 32)
	if err != nil {
		return 0, d.fail("invalid \\uXXXX escape")
	}
	d.i += 4
	return rune(v), nil
}

func (d *decoder) array(depth int) ([]any, error) {
	d.i++
	out := []any{}
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == ']' {
		d.i++
		return out, nil
	}
	for {
		d.ws()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		d.ws()
		if d.i >= len(d.s) {
			return nil, d.fail("expecting ',' delimiter")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return out, nil
		default:
			return nil, d.fail("expecting ',' delimiter")
		}
	}
}

func (d *decoder) object(depth int) (*Object, error) {
	d.i++
	o := NewObject()
	d.ws()
	if d.i < len(d.s) && d.s[d.i] == '}' {
		d.i++
		return o, nil
	}
	for {
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != '"' {
			return nil, d.fail("expecting property name enclosed in double quotes")
		}
		k, err := d.string()
		if err != nil {
			return nil, err
		}
		d.ws()
		if d.i >= len(d.s) || d.s[d.i] != ':' {
			return nil, d.fail("expecting ':' delimiter")
		}
		d.i++
		d.ws()
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		o.Set(k, v)
		d.ws()
		if d.i >= len(d.s) {
			return nil, d.fail("expecting ',' delimiter")
		}
		switch d.s[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			return o, nil
		default:
			return nil, d.fail("expecting ',' delimiter")
		}
	}
}
