package retry

import (
	"testing"
	"time"
)

// A server's Retry-After can never make us wait longer than the limit, or
// a negative time.
func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"120", "0", "-1", "1.5", "NaN", "Inf", "1e400", "Wed, 21 Oct 2015 07:28:00 GMT", "", " 7 ", "Sun, 06 Nov 1994 08:49:37 GMT"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, v string) {
		d, ok := ParseRetryAfter(v, now, time.Minute)
		if ok && (d < 0 || d > time.Minute) {
			t.Fatalf("ParseRetryAfter(%q) = %v outside [0, 1m]", v, d)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) refused but returned %v", v, d)
		}
	})
}
