package config

import (
	"math"
	"slices"
	"testing"
)

// The accepted/rejected cases below were checked against CPython 3.11's bool
// check, int() and float(), including the examples of on-disk-contract §1.3.

func TestParseBool(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
		ok   bool
	}{
		{"true", true, true},
		{"True", true, true},
		{"TRUE", true, true},
		{"tRuE", true, true},
		{"false", false, true},
		{"False", false, true},
		{"FALSE", false, true},
		{"", false, false}, // set-but-empty is an error, not false
		{" true", false, false},
		{"true ", false, false},
		{"true\n", false, false},
		{"yes", false, false},
		{"no", false, false},
		{"1", false, false},
		{"0", false, false},
		{"on", false, false},
		{"t", false, false},
		{"falſe", false, false}, // long s: strings.EqualFold would accept it, Python does not
		{"ｔrue", false, false},  // full-width t
	} {
		got, ok := parseBool(tc.in)
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseBool(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseInt(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"0", 0},
		{"20", 20},
		{"010", 10}, // leading zeros are decimal, not octal
		{"-010", -10},
		{"+5", 5},
		{"-0", 0},
		{"00", 0},
		{" 7 ", 7},
		{"\t7\n", 7},
		{"\v\f\r7", 7},
		{"1_000", 1000},
		{"0_0", 0},
		{"1_2_3", 123},
		{"\u00a07\u3000", 7}, // NBSP, ideographic space
		{"\u20037\u2028", 7}, // em space, line separator
		{"\u00857", 7},       // NEL
		{"٣٤", 34},           // Arabic-Indic digits
		{"٣_٤", 34},          // underscore between Unicode digits
		{"１２", 12},           // full-width digits
		{"𝟗", 9},             // mathematical bold digit nine (a 50-digit Nd run)
		{"9223372036854775807", math.MaxInt64},
		{"99999999999999999999", math.MaxInt64}, // Python has no bound: saturate
		{"-99999999999999999999", -math.MaxInt64},
	} {
		got, ok := parseInt(tc.in)
		if !ok || got != tc.want {
			t.Errorf("parseInt(%q) = %d, %v; want %d", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{
		"", "   ", // empty
		"0x10", "1.0", "1e3", // the spec's rejected examples
		"0b1", "0o7", "1j", "abc", "10s",
		"+", "-", "+-1", "- 5", "1 0",
		"_1", "1_", "-_1", "1__0", "1_ 0",
		"\x1c1", "1\x1f", // ASCII separators: str.isspace() but int() does not strip them
		"\u200b1",        // zero-width space is no whitespace
		"1\x00", "\xff1", // NUL, invalid UTF-8
		"٣x",
	} {
		if got, ok := parseInt(in); ok {
			t.Errorf("parseInt(%q) = %d, accepted; want rejected", in, got)
		}
	}
}

func TestParseFloat(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{"30", 30},
		{"30.0", 30},
		{"2.5", 2.5},
		{".5", 0.5},
		{"5.", 5},
		{"-2", -2},
		{"+2", 2},
		{"010", 10},
		{"1e3", 1000},
		{"1E3", 1000},
		{"1.5E-3", 0.0015},
		{"1e+2", 100},
		{" 1_0.0_1 ", 10.01},
		{"1_0e1_0", 1e11},
		{"1e5_0", 1e50},
		{"\t60.0\n", 60},
		{"\u00a01.5\u3000", 1.5},
		{"٣.٥", 3.5},
		{"inf", math.Inf(1)},
		{"INF", math.Inf(1)},
		{"+iNfInItY", math.Inf(1)},
		{"-Infinity", math.Inf(-1)},
		{"1e400", math.Inf(1)}, // overflow is inf in Python, not an error
		{"-1e400", math.Inf(-1)},
		{"1e-400", 0},
	} {
		got, ok := parseFloat(tc.in)
		if !ok || got != tc.want {
			t.Errorf("parseFloat(%q) = %v, %v; want %v", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{"nan", "NaN", "-nan", "+NAN", " nan "} {
		if got, ok := parseFloat(in); !ok || !math.IsNaN(got) {
			t.Errorf("parseFloat(%q) = %v, %v; want NaN", in, got, ok)
		}
	}
	for _, in := range []string{
		"", " ", "garbage", "abc",
		"0x10", "0x1p-2", // hex floats: strconv.ParseFloat accepts them, float() does not
		".", "e5", "1e", "1e+", "+-1", "1.2.3", "1j", "1 0", "- 1",
		"_1", "1_", "1__0", "1_.5", "._5", "1e_5", "1_e5", "i_nf", "inf_",
		"infinit", "infinityy", "nan1", "in f",
		"\x1c1", "1\x00",
	} {
		if got, ok := parseFloat(in); ok {
			t.Errorf("parseFloat(%q) = %v, accepted; want rejected", in, got)
		}
	}
}

func TestParseIntList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"408,429,502,503,504", []int{408, 429, 502, 503, 504}},
		{" 408 , 429 ", []int{408, 429}},
		{"408,,429,", []int{408, 429}}, // empty items dropped
		{"", []int{}},                  // an empty list: retry nothing
		{" , ,", []int{}},
		{"500", []int{500}},
		{"1_0,+5,-3,010", []int{10, 5, -3, 10}},
		{"\x1c408\x1f,429", []int{408, 429}}, // items use str.strip(), which does strip U+001C..U+001F
	} {
		got, ok := parseIntList(tc.in)
		if !ok || !slices.Equal(got, tc.want) || got == nil {
			t.Errorf("parseIntList(%q) = %#v, %v; want %#v", tc.in, got, ok, tc.want)
		}
	}
	for _, in := range []string{"408,abc", "408;429", "408 429", "4o4", "408,1.0", "0x1F4", "408,1e3", "408,_1"} {
		if got, ok := parseIntList(in); ok {
			t.Errorf("parseIntList(%q) = %v, accepted; want rejected", in, got)
		}
	}
}

func TestDecimalValueMatchesRunPositions(t *testing.T) {
	// Spot checks of the "distance to the run start, modulo 10" rule on Nd blocks of
	// different shapes: ASCII-adjacent, a lone block, and the 50-digit math block.
	for r, want := range map[rune]int{'٠': 0, '٩': 9, '۵': 5, '०': 0, '९': 9, '𝟎': 0, '𝟗': 9, '𝟘': 0, '𝟿': 9, '０': 0, '９': 9} {
		if got, ok := decimalValue(r); !ok || got != want {
			t.Errorf("decimalValue(%q) = %d, %v; want %d", r, got, ok, want)
		}
	}
	for _, r := range []rune{'a', '½', '²', 'Ⅷ', '_'} { // No, not Nd: int() rejects them
		if _, ok := decimalValue(r); ok {
			t.Errorf("decimalValue(%q) accepted", r)
		}
	}
}
