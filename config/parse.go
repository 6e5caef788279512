package config

import (
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The reference parses with Python's bool check, int() and float(); a value one
// implementation accepts and the other rejects would split a mixed process tree, so
// these functions follow CPython's rules, including its Unicode whitespace and
// Unicode decimal digits (int("٣") == 3). Values beyond the int64 range saturate:
// Python's ints are unbounded and a huge timeout or TTL means "practically never".

const (
	acceptBool    = `true or false, in any letter case`
	acceptInt     = `a base-10 integer as Python's int() reads it, e.g. 20, -3, 010, 1_000 (no 0x prefix, decimal point or exponent)`
	acceptFloat   = `a number as Python's float() reads it, e.g. 30, 2.5, 1e3, 1_000.5, inf`
	acceptIntList = `comma-separated base-10 integers, e.g. 408,429,502,503,504 (empty items are ignored)`
)

// parseBool accepts exactly "true" or "false" in any ASCII letter case. Python's
// str.lower() maps no other character onto these letters, whereas strings.EqualFold
// would accept "falſe" (long s), so the comparison is ASCII-only on purpose.
func parseBool(s string) (bool, bool) {
	switch asciiLower(s) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// pyStrip is Python's str.strip(): str.isspace() also holds for the ASCII
// separators U+001C..U+001F, which unicode.IsSpace leaves out.
func pyStrip(s string) string {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (0x1c <= r && r <= 0x1f)
	})
}

// numberSpace is the whitespace int() and float() strip: Python maps non-ASCII
// whitespace to ' ' and then strips ASCII " \t\n\v\f\r", so U+001C..U+001F are
// NOT stripped here (int("\x1c1") fails). That set is exactly unicode.IsSpace.
func numberSpace(r rune) bool { return unicode.IsSpace(r) }

// decimalValue returns the value of a Unicode decimal digit (category Nd), as
// Python's int() and float() accept them. Every Nd block is a run of complete
// 0..9 sequences, so the value is the distance to the run start modulo 10.
func decimalValue(r rune) (int, bool) {
	if '0' <= r && r <= '9' {
		return int(r - '0'), true
	}
	if r < 0x80 || !unicode.Is(unicode.Nd, r) {
		return 0, false
	}
	start := r
	for unicode.Is(unicode.Nd, start-1) {
		start--
	}
	return int(r-start) % 10, true
}

// parseInt implements Python's int(s) in base 10: surrounding whitespace, an
// optional sign, digits with single underscores between them, leading zeros allowed.
func parseInt(s string) (int, bool) {
	s = strings.TrimFunc(s, numberSpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	const limit = uint64(math.MaxInt64)
	var n uint64
	digits, prevDigit, pendingUnderscore := 0, false, false
	for _, r := range s {
		if r == '_' {
			if !prevDigit {
				return 0, false // leading or doubled underscore
			}
			prevDigit, pendingUnderscore = false, true
			continue
		}
		d, ok := decimalValue(r)
		if !ok {
			return 0, false
		}
		if n > (limit-uint64(d))/10 {
			n = limit // saturate; keep scanning so syntax errors still surface
		} else {
			n = n*10 + uint64(d)
		}
		digits++
		prevDigit, pendingUnderscore = true, false
	}
	if digits == 0 || pendingUnderscore {
		return 0, false
	}
	v := int(n)
	if neg {
		v = -v
	}
	return v, true
}

// pyFloatSyntax is Python's float() grammar once underscores are removed and
// digits are ASCII. No hex floats: float("0x10") fails, unlike strconv.ParseFloat.
var pyFloatSyntax = regexp.MustCompile(`^[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|(?i:inf|infinity|nan))$`)

// parseFloat implements Python's float(s) for strings.
func parseFloat(s string) (float64, bool) {
	// Like CPython: Unicode whitespace -> ' ', Unicode digits -> ASCII, then check
	// underscores (each between two digits), drop them, strip, match the grammar.
	var b strings.Builder
	for _, r := range s {
		switch d, isDigit := decimalValue(r); {
		case isDigit:
			b.WriteByte(byte('0' + d))
		case r >= 0x80 && numberSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	t := b.String()
	if strings.Contains(t, "_") {
		for i := 0; i < len(t); i++ {
			if t[i] == '_' && (i == 0 || i == len(t)-1 || !isASCIIDigit(t[i-1]) || !isASCIIDigit(t[i+1])) {
				return 0, false
			}
		}
		t = strings.ReplaceAll(t, "_", "")
	}
	t = strings.Trim(t, " \t\n\v\f\r")
	if !pyFloatSyntax.MatchString(t) {
		return 0, false
	}
	unsigned := strings.TrimLeft(t, "+-")
	if strings.EqualFold(unsigned, "nan") {
		return math.NaN(), true // strconv rejects a signed "nan"; Python does not
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true // out of range: ±Inf or 0, as Python gives
}

func isASCIIDigit(c byte) bool { return '0' <= c && c <= '9' }

// parseIntList splits on ',', strips each item, drops empty ones and parses the
// rest with int(). An empty value is an empty list, not an error.
func parseIntList(s string) ([]int, bool) {
	out := []int{}
	for item := range strings.SplitSeq(s, ",") {
		item = pyStrip(item)
		if item == "" {
			continue
		}
		n, ok := parseInt(item)
		if !ok {
			return nil, false
		}
		out = append(out, n)
	}
	return out, true
}

// scaleDuration converts n units (seconds, minutes) to a Duration, saturating
// instead of overflowing.
func scaleDuration(n int, unit time.Duration) time.Duration {
	switch {
	case int64(n) > math.MaxInt64/int64(unit):
		return math.MaxInt64
	case int64(n) < math.MinInt64/int64(unit):
		return math.MinInt64
	}
	return time.Duration(n) * unit
}

// floatSeconds converts seconds to a Duration, saturating ±Inf and huge values.
// NaN has no Duration; the caller rejects it.
func floatSeconds(f float64) (time.Duration, bool) {
	ns := f * float64(time.Second)
	switch {
	case math.IsNaN(ns):
		return 0, false
	case ns >= math.MaxInt64:
		return math.MaxInt64, true
	case ns <= math.MinInt64:
		return math.MinInt64, true
	}
	return time.Duration(math.Round(ns)), true
}
