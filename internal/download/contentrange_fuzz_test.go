package download

import "testing"

// Content-Range is read from any server: what it accepts is a range a
// download can trust (0 <= first <= last < total, or an unknown total).
func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 5-10/*", "bytes 10-5/20", "bytes -5-10/20", "bytes 0-99/99", "items 0-1/2",
		"bytes 0-9223372036854775807/*", "bytes 1-2/3/4", " bytes 0-0/1 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		first, last, total, ok := parseContentRange(v)
		if !ok {
			return
		}
		if first < 0 || last < first || (total != -1 && total <= last) {
			t.Fatalf("parseContentRange(%q) = %d, %d, %d accepted", v, first, last, total)
		}
	})
}
