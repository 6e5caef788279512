package negotiation

import (
	"fmt"
	"math"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// pyRepr renders a pyjson value the way Python's repr() does (the reference
// embeds repr(model_features) in a reason text).
func pyRepr(v any) string {
	var sb strings.Builder
	writeRepr(&sb, v)
	return sb.String()
}

func writeRepr(sb *strings.Builder, v any) {
	switch x := v.(type) {
	case nil:
		sb.WriteString("None")
	case bool:
		if x {
			sb.WriteString("True")
		} else {
			sb.WriteString("False")
		}
	case string:
		sb.WriteString(pyStrRepr(x))
	case pyjson.Int:
		sb.WriteString(x.String())
	case int:
		sb.WriteString(strconv.Itoa(x))
	case int64:
		sb.WriteString(strconv.FormatInt(x, 10))
	case *big.Int:
		sb.WriteString(x.String())
	case float64:
		switch {
		case math.IsNaN(x):
			sb.WriteString("nan")
		case math.IsInf(x, 1):
			sb.WriteString("inf")
		case math.IsInf(x, -1):
			sb.WriteString("-inf")
		default:
			sb.WriteString(pyjson.FormatFloat(x))
		}
	case []any:
		sb.WriteByte('[')
		for i, it := range x {
			if i > 0 {
				sb.WriteString(", ")
			}
			writeRepr(sb, it)
		}
		sb.WriteByte(']')
	case pyjson.Tuple:
		sb.WriteByte('(')
		for i, it := range x {
			if i > 0 {
				sb.WriteString(", ")
			}
			writeRepr(sb, it)
		}
		if len(x) == 1 {
			sb.WriteByte(',')
		}
		sb.WriteByte(')')
	case *pyjson.Object:
		sb.WriteByte('{')
		for i, k := range x.Keys() {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString(pyStrRepr(k))
			sb.WriteString(": ")
			val, _ := x.Get(k)
			writeRepr(sb, val)
		}
		sb.WriteByte('}')
	default:
		fmt.Fprintf(sb, "%v", x)
	}
}

// pyStrRepr is repr(str): single quotes unless the text holds a single quote
// and no double quote; backslash, the quote, \t \n \r escaped; other
// non-printable characters as \xhh, \uhhhh or \Uhhhhhhhh.
func pyStrRepr(s string) string {
	q := byte('\'')
	if strings.ContainsRune(s, '\'') && !strings.ContainsRune(s, '"') {
		q = '"'
	}
	var sb strings.Builder
	sb.WriteByte(q)
	for _, r := range s {
		switch {
		case r == '\\':
			sb.WriteString(`\\`)
		case r == rune(q):
			sb.WriteByte('\\')
			sb.WriteByte(q)
		case r == '\t':
			sb.WriteString(`\t`)
		case r == '\n':
			sb.WriteString(`\n`)
		case r == '\r':
			sb.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&sb, `\x%02x`, r)
		case r < 0x7f:
			sb.WriteRune(r)
		case !unicode.IsPrint(r):
			switch {
			case r <= 0xff:
				fmt.Fprintf(&sb, `\x%02x`, r)
			case r <= 0xffff:
				fmt.Fprintf(&sb, `\u%04x`, r)
			default:
				fmt.Fprintf(&sb, `\U%08x`, r)
			}
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte(q)
	return sb.String()
}

// pySetRepr renders a set of strings sorted (Q8), "set()" when empty.
func pySetRepr(items []string) string {
	if len(items) == 0 {
		return "set()"
	}
	s := append([]string{}, items...)
	sort.Strings(s)
	uniq := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			uniq = append(uniq, v)
		}
	}
	parts := make([]string, len(uniq))
	for i, v := range uniq {
		parts[i] = pyStrRepr(v)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// pyListRepr renders a list of strings as Python prints it.
func pyListRepr(items []string) string {
	parts := make([]string, len(items))
	for i, v := range items {
		parts[i] = pyStrRepr(v)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
