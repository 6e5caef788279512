package autoresolve

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// Timestamp is an entry's created_at. The reference writes naive local time
// (§5.7); readers also meet offset-aware values and unix timestamps.
type Timestamp struct {
	// Time is the instant; a naive value is interpreted in time.Local.
	Time time.Time
	// Naive: no UTC offset was given (written and compared as local time).
	Naive bool
}

// NaiveLocal returns t as a naive local timestamp truncated to microseconds,
// the form our writer uses (Python's datetime.now()).
func NaiveLocal(t time.Time) Timestamp {
	return Timestamp{Time: t.In(time.Local).Truncate(time.Microsecond), Naive: true}
}

// String returns the ISO form: naive "YYYY-MM-DDTHH:MM:SS[.ffffff]" (what we
// write), aware values with "Z" or "+HH:MM" (how the reference's model dumps them).
func (ts Timestamp) String() string {
	t := ts.Time
	if ts.Naive {
		t = t.In(time.Local)
	}
	s := t.Format("2006-01-02T15:04:05")
	if us := t.Nanosecond() / 1000; us != 0 {
		s += fmt.Sprintf(".%06d", us)
	}
	if ts.Naive {
		return s
	}
	_, off := t.Zone()
	if off == 0 {
		return s + "Z"
	}
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	s += fmt.Sprintf("%c%02d:%02d", sign, off/3600, off/60%60)
	if off%60 != 0 {
		s += fmt.Sprintf(":%02d", off%60)
	}
	return s
}

// timestampMsThreshold: larger unix values are milliseconds (pydantic's rule).
const timestampMsThreshold = 20_000_000_000

// parseCreatedAt accepts what the reference's schema accepts for a datetime
// in JSON: an ISO 8601 / RFC 3339 string (date only, 'T', 't', ' ' or '_'
// separator, optional seconds and fraction, 'Z' or ±HH[:MM] offset) or a unix
// timestamp (number or numeric string; seconds, or milliseconds when large).
func parseCreatedAt(v any) (Timestamp, error) {
	switch x := v.(type) {
	case string:
		if ts, err := parseISO(x); err == nil {
			return ts, nil
		} else if f, ok := numericString(x); ok {
			return fromUnix(f)
		} else {
			return Timestamp{}, err
		}
	case pyjson.Int:
		f, _ := x.Big().Float64()
		return fromUnix(f)
	case float64:
		return fromUnix(x)
	}
	return Timestamp{}, fmt.Errorf("created_at must be a datetime string or a unix timestamp, got %T", v)
}

func numericString(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9') && c != '.' && !(i == 0 && (c == '-' || c == '+')) {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil
}

func fromUnix(f float64) (Timestamp, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return Timestamp{}, fmt.Errorf("created_at: invalid unix timestamp %v", f)
	}
	if math.Abs(f) > timestampMsThreshold {
		f /= 1000
	}
	sec, frac := math.Modf(f)
	us := math.Round(frac * 1e6)
	if math.Abs(sec) > 1e12 {
		return Timestamp{}, fmt.Errorf("created_at: unix timestamp out of range")
	}
	t := time.Unix(int64(sec), int64(us)*1000).UTC()
	return Timestamp{Time: t}, nil
}

func digits(s string, i, n int) (int, bool) {
	if i+n > len(s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(s[i : i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, true
}

func parseISO(s string) (Timestamp, error) {
	bad := func(why string) (Timestamp, error) {
		return Timestamp{}, fmt.Errorf("created_at %q: %s", s, why)
	}
	year, ok1 := digits(s, 0, 4)
	month, ok2 := digits(s, 5, 2)
	day, ok3 := digits(s, 8, 2)
	if !ok1 || !ok2 || !ok3 || s[4] != '-' || s[7] != '-' {
		return bad("not a YYYY-MM-DD date")
	}
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, month) {
		return bad("date out of range")
	}
	if len(s) == 10 {
		return Timestamp{Time: time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.Local), Naive: true}, nil
	}
	if c := s[10]; c != 'T' && c != 't' && c != ' ' && c != '_' {
		return bad("invalid date/time separator")
	}
	i := 11
	hour, okH := digits(s, i, 2)
	minute, okM := digits(s, i+3, 2)
	if !okH || !okM || i+2 >= len(s) || s[i+2] != ':' {
		return bad("not an HH:MM time")
	}
	i += 5
	second, us := 0, 0
	if i < len(s) && s[i] == ':' {
		var ok bool
		if second, ok = digits(s, i+1, 2); !ok {
			return bad("invalid seconds")
		}
		i += 3
		if i < len(s) && (s[i] == '.' || s[i] == ',') {
			i++
			n := 0
			for i < len(s) && s[i] >= '0' && s[i] <= '9' {
				if n < 6 { // digits past microseconds are dropped
					us = us*10 + int(s[i]-'0')
				}
				n++
				i++
			}
			if n == 0 {
				return bad("empty second fraction")
			}
			for ; n < 6; n++ {
				us *= 10
			}
		}
	}
	if hour > 23 || minute > 59 || second > 59 {
		return bad("time out of range")
	}
	loc, naive := time.Local, true
	if i < len(s) {
		switch c := s[i]; {
		case c == 'Z' || c == 'z':
			loc, naive = time.UTC, false
			i++
		case c == '+' || c == '-':
			oh, ok := digits(s, i+1, 2)
			if !ok {
				return bad("invalid UTC offset")
			}
			i += 3
			om := 0
			if i < len(s) && s[i] == ':' {
				if om, ok = digits(s, i+1, 2); !ok {
					return bad("invalid UTC offset")
				}
				i += 3
			} else if m, ok := digits(s, i, 2); ok {
				om = m
				i += 2
			}
			if oh > 23 || om > 59 {
				return bad("UTC offset out of range")
			}
			off := oh*3600 + om*60
			if c == '-' {
				off = -off
			}
			loc, naive = time.FixedZone("", off), false
		default:
			return bad("unexpected characters after the time")
		}
	}
	if i != len(s) {
		return bad("unexpected characters after the time")
	}
	return Timestamp{Time: time.Date(year, time.Month(month), day, hour, minute, second, us*1000, loc), Naive: naive}, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
