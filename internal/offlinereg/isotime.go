package offlinereg

import (
	"fmt"
	"strings"
	"time"
)

// FormatTimestamp renders t as Python's datetime.isoformat() of an aware UTC
// datetime, the form of recorded_at and last_proven_at:
// "2026-01-02T03:04:05.123456+00:00", the fraction omitted when zero.
// Python datetimes have microsecond resolution, so t is truncated to it.
func FormatTimestamp(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	s := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	return s + "+00:00"
}

// ParseTimestamp parses the ISO 8601 forms Python's datetime.fromisoformat
// produces and commonly meets: a date, or a date and time separated by "T"
// or a space, with optional seconds and fraction (1–9 digits), and an
// optional "Z", "±HH:MM" or "±HHMM" offset. A value without an offset is
// taken as UTC (the registry only ever writes UTC).
func ParseTimestamp(s string) (time.Time, bool) {
	if len(s) >= 11 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	if strings.HasSuffix(s, "Z") || strings.HasSuffix(s, "z") {
		s = s[:len(s)-1] + "+00:00"
	}
	layouts := []string{
		"2006-01-02T15:04:05.999999999Z07:00",
		"2006-01-02T15:04:05.999999999Z0700",
		"2006-01-02T15:04:05.999999999",
		"2006-01-02T15:04Z07:00",
		"2006-01-02T15:04",
		"2006-01-02",
	}
	for _, l := range layouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
