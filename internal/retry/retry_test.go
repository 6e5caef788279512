package retry

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestRangedSchedule(t *testing.T) {
	for n, base := range map[int]time.Duration{0: 1, 1: 1, 2: 2, 3: 4, 6: 32, 9: 32, 1000: 32} {
		for _, r := range []float64{0, 0.5, 0.999999} {
			b := Ranged(time.Second)
			b.Rand = func() float64 { return r }
			d := b.Delay(n)
			if d < base*time.Second/2 || d >= base*time.Second*3/2 {
				t.Fatalf("Delay(%d) at rand %v = %v outside [%v, %v)", n, r, d, base*time.Second/2, base*time.Second*3/2)
			}
		}
	}
}

func TestFullJitterSchedule(t *testing.T) {
	b := FullJitter(time.Second)
	b.Rand = func() float64 { return 0.5 }
	for n, want := range map[int]time.Duration{1: 500 * time.Millisecond, 2: time.Second, 3: 2 * time.Second, 4: 4 * time.Second} {
		if got := b.Delay(n); got != want {
			t.Errorf("Delay(%d) = %v, want %v", n, got, want)
		}
	}
	b.Rand = func() float64 { return 0 }
	if got := b.Delay(3); got != 0 {
		t.Errorf("full jitter at 0: %v", got)
	}
	if got := FullJitter(time.Hour).Delay(1 << 20); got <= 0 {
		t.Errorf("huge retry count overflowed: %v", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const limit = 60 * time.Second
	for _, tc := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false}, {"0", 0, true}, {"7", 7 * time.Second, true}, {" 3 ", 3 * time.Second, true},
		{"1.5", 1500 * time.Millisecond, true}, {"-1", 0, false}, {"abc", 0, false}, {"NaN", 0, false},
		{"100000", limit, true}, {"1e300", limit, true}, {"inf", limit, true},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0, true},
		{now.Add(time.Hour).Format(http.TimeFormat), limit, true},
	} {
		got, ok := ParseRetryAfter(tc.v, now, limit)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Retry-After %q: %v %v, want %v %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", "2")
	if d, ok := RetryAfter(h, now, limit); d != 2*time.Second || !ok {
		t.Errorf("RetryAfter(header) = %v %v", d, ok)
	}
}

func TestSleepEndsWithTheContextCause(t *testing.T) {
	cause := errors.New("stop")
	ctx, cancel := context.WithCancelCause(context.Background())
	cancel(cause)
	if err := Sleep(ctx, time.Hour); !errors.Is(err, cause) {
		t.Fatalf("Sleep on a cancelled context: %v", err)
	}
	if err := Sleep(ctx, 0); !errors.Is(err, cause) {
		t.Fatalf("Sleep(0) on a cancelled context: %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
}
