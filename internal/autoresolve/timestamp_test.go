package autoresolve

import (
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
)

func TestParseCreatedAt(t *testing.T) {
	ok := map[string]string{
		"2026-01-02T03:04":            "2026-01-02T03:04:00",
		"2026-01-02t03:04:05,5":       "2026-01-02T03:04:05.500000",
		"2026-01-02_03:04:05.1234567": "2026-01-02T03:04:05.123456",
		"2026-01-02T03:04:05+0530":    "2026-01-02T03:04:05+05:30",
		"2026-01-02T03:04:05-01:00":   "2026-01-02T03:04:05-01:00",
		"2026-01-02T03:04:05+00:00":   "2026-01-02T03:04:05Z",
		"2024-02-29":                  "2024-02-29T00:00:00",
		"1767323045":                  "2026-01-02T03:04:05Z",
		"2026-01-02T03:04:05.000000":  "2026-01-02T03:04:05",
	}
	for in, want := range ok {
		ts, err := parseCreatedAt(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if got := ts.String(); got != want {
			t.Errorf("%q -> %q, want %q", in, got, want)
		}
	}
	for _, in := range []any{"2026-02-30", "2026-01-02T24:00:00", "2026-01-02T03:04:05.", "2026-1-02", "2026-01-02T03:04:05 +01:00", "yesterday", "", true, nil, []any{}} {
		if _, err := parseCreatedAt(in); err == nil {
			t.Errorf("%#v accepted", in)
		}
	}
	// Large unix values are milliseconds.
	ts, err := parseCreatedAt(pyjson.NewInt(1767323045250))
	if err != nil || ts.String() != "2026-01-02T03:04:05.250000Z" {
		t.Errorf("ms timestamp: %v %v", ts, err)
	}
	// Naive values are local time.
	ts, _ = parseCreatedAt("2026-07-01T12:00:00")
	if !ts.Naive || !ts.Time.Equal(time.Date(2026, 7, 1, 12, 0, 0, 0, time.Local)) {
		t.Errorf("naive: %+v", ts)
	}
}

func TestNaiveLocalWriteForm(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.Local)
	if got := NaiveLocal(now).String(); got != "2026-01-02T03:04:05.123456" {
		t.Fatalf("got %s", got)
	}
	if got := NaiveLocal(now.Truncate(time.Second)).String(); got != "2026-01-02T03:04:05" {
		t.Fatalf("got %s", got)
	}
}

func TestTTLMinutesSaturates(t *testing.T) {
	if d := *TTLMinutes(1 << 62); d <= 0 {
		t.Fatalf("overflowed: %v", d)
	}
	if d := *TTLMinutes(1440); d != 24*time.Hour {
		t.Fatalf("1440 min = %v", d)
	}
}

func TestLaxCoercions(t *testing.T) {
	for _, v := range []any{true, pyjson.NewInt(1), 1.0, "yes", "On", "T", "1"} {
		if b, err := laxBool(v); err != nil || !b {
			t.Errorf("laxBool(%#v) = %v, %v", v, b, err)
		}
	}
	for _, v := range []any{pyjson.NewInt(2), 0.5, "2", "maybe", nil} {
		if _, err := laxBool(v); err == nil {
			t.Errorf("laxBool(%#v) accepted", v)
		}
	}
	for s, ok := range map[string]bool{" 0.5 ": true, "1e3": true, "-inf": true, "NaN": true, ".5": true, "5.": true, "0x10": false, "1_0": false, "": false, "e5": false, "1e": false} {
		if _, err := laxFloat(s); (err == nil) != ok {
			t.Errorf("laxFloat(%q): err=%v", s, err)
		}
	}
}
