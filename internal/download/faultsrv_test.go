package download

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/faultsrv"
)

// TestFaultOrigin runs the engine against every mode of the shared faulty
// origin (internal/faultsrv). Each case states the outcome (a verified blob
// or a typed error), and bounds the time it may take and the body bytes the
// origin may send: permanent errors fail at once, transient ones retry within
// their budgets, unknown sizes stop at their cap, and nothing partial is ever
// published.
func TestFaultOrigin(t *testing.T) {
	const size = 1<<20 + 4321 // ranged with the test tuning: 5 parts
	type outcome func(t *testing.T, err error)
	ok := func(t *testing.T, err error) {
		if err != nil {
			t.Fatalf("want a verified blob, got %v", err)
		}
	}
	typed := func(check func(error) bool, what string) outcome {
		return func(t *testing.T, err error) {
			if err == nil || !check(err) {
				t.Fatalf("want %s, got %T %v", what, err, err)
			}
		}
	}
	permanent := func(reason string) outcome {
		return typed(func(err error) bool {
			var pe *PermanentError
			return errors.As(err, &pe) && strings.Contains(pe.Reason, reason)
		}, "PermanentError("+reason+")")
	}
	httpErr := func(code int) outcome {
		return typed(func(err error) bool {
			var he *HTTPError
			return errors.As(err, &he) && he.Status == code
		}, "HTTPError")
	}
	F := func(m faultsrv.Mode, at int64) faultsrv.Fault { return faultsrv.Fault{Mode: m, At: at} }
	status := func(code int, ra string) faultsrv.Fault {
		return faultsrv.Fault{Mode: faultsrv.Status, Status: code, RetryAfter: ra}
	}
	cases := []struct {
		name     string
		then     faultsrv.Fault
		seq      []faultsrv.Fault
		setup    func(s *faultsrv.Server, path string)
		url      func(s *faultsrv.Server, u string) string
		refresh  bool
		tune     func(*Tuning)
		want     outcome
		maxTime  time.Duration
		maxBytes int64
		keep     bool // a resumable partial may stay
	}{
		{name: "clean", want: ok, maxTime: 15 * time.Second, maxBytes: size},
		{name: "reset mid-body", seq: []faultsrv.Fault{F(faultsrv.ResetMidBody, 100<<10), F(faultsrv.ResetMidBody, 0), F(faultsrv.ResetMidBody, 30<<10)},
			want: ok, maxTime: 15 * time.Second, maxBytes: size + 3*(256<<10)},
		{name: "short body", seq: []faultsrv.Fault{F(faultsrv.ShortBody, 50<<10), F(faultsrv.ShortBody, 1)},
			want: ok, maxTime: 15 * time.Second, maxBytes: size + 2*(256<<10)},
		{name: "wrong bytes", then: F(faultsrv.WrongBytes, 0),
			want:    typed(func(err error) bool { return errors.As(err, &DigestMismatchError{}) }, "DigestMismatchError"),
			maxTime: 15 * time.Second, maxBytes: size},
		{name: "stall then resume", seq: []faultsrv.Fault{F(faultsrv.Stall, 10<<10)},
			tune: func(t *Tuning) { t.StallTimeout = 300 * time.Millisecond },
			want: ok, maxTime: 15 * time.Second, maxBytes: size + 256<<10},
		{name: "stall forever", then: F(faultsrv.Stall, 1<<10), keep: true,
			tune:    func(t *Tuning) { t.StallTimeout, t.MaxStalls = 200*time.Millisecond, 3 },
			want:    typed(func(err error) bool { return errors.As(err, &StallError{}) }, "StallError"),
			maxTime: 15 * time.Second, maxBytes: 20 << 10},
		// Every ranged request in flight gets the whole file before the
		// engine falls back to one stream: bounded by the parts, not endless.
		{name: "ignored range", then: faultsrv.Fault{IgnoreRange: true},
			want: ok, maxTime: 15 * time.Second, maxBytes: 12 * size},
		{name: "endless body, no length", then: F(faultsrv.Endless, 0),
			tune:    func(t *Tuning) { t.MaxUnknownSize = 2 << 20 },
			want:    typed(func(err error) bool { return errors.As(err, &SizeLimitError{}) }, "SizeLimitError"),
			maxTime: 15 * time.Second, maxBytes: 2<<20 + 16<<20},
		{name: "endless body with a huge length", then: faultsrv.Fault{Mode: faultsrv.EndlessWithLength},
			want: typed(func(err error) bool {
				var de *DiskError
				return errors.As(err, &de) && de.Need > 1<<39
			}, "a free-space DiskError"),
			maxTime: 15 * time.Second, maxBytes: 0},
		{name: "redirect loop", then: F(faultsrv.RedirectLoop, 0), want: permanent("redirect loop"),
			maxTime: 5 * time.Second, maxBytes: 0},
		{name: "redirect to file://", then: F(faultsrv.RedirectScheme, 0), want: permanent(`scheme "file"`),
			maxTime: 5 * time.Second, maxBytes: 0},
		{name: "file:// URL", url: func(*faultsrv.Server, string) string { return "file:///etc/passwd" },
			want: permanent(`scheme "file"`), maxTime: time.Second, maxBytes: 0},
		{name: "ftp:// URL", url: func(*faultsrv.Server, string) string { return "ftp://example.com/w.onnx" },
			want: permanent(`scheme "ftp"`), maxTime: time.Second, maxBytes: 0},
		{name: "malformed URL", url: func(s *faultsrv.Server, _ string) string { return s.URL() + "/%zz" },
			want: permanent("malformed URL"), maxTime: time.Second, maxBytes: 0},
		{name: "503 twice with Retry-After, then ok", seq: []faultsrv.Fault{status(503, "0"), status(503, "0")},
			want: ok, maxTime: 15 * time.Second, maxBytes: size},
		{name: "429 with Retry-After, then ok", seq: []faultsrv.Fault{status(429, "1")},
			want: ok, maxTime: 15 * time.Second, maxBytes: size},
		{name: "503 forever", then: status(503, "0"), keep: true,
			want: typed(func(err error) bool {
				var re *RetryError
				return errors.As(err, &re) && re.Status == 503
			}, "RetryError(503)"),
			maxTime: 15 * time.Second, maxBytes: 0},
		{name: "500 is permanent", then: status(500, ""), want: httpErr(500), maxTime: 5 * time.Second},
		{name: "404 is permanent", then: status(404, ""), want: httpErr(404), maxTime: 5 * time.Second},
		{name: "410 is permanent", then: status(410, ""), want: httpErr(410), maxTime: 5 * time.Second},
		{name: "resets forever end at the retry deadline", then: F(faultsrv.ResetMidBody, 0), keep: true,
			tune: func(t *Tuning) {
				t.MaxAttempts, t.RetryDeadline, t.BackoffUnit = 1<<20, time.Second, 20*time.Millisecond
			},
			want: typed(func(err error) bool {
				var re *RetryError
				return errors.As(err, &re) && re.Deadline == time.Second && re.Elapsed >= time.Second &&
					strings.Contains(err.Error(), "MODELCACHE_DOWNLOAD_RETRY_DEADLINE")
			}, "RetryError at the deadline"),
			maxTime: 15 * time.Second, maxBytes: 0},
		{name: "expired signed URL (401), refreshed", refresh: true,
			setup: func(s *faultsrv.Server, path string) { s.Expire(path, http.StatusUnauthorized) },
			want:  ok, maxTime: 15 * time.Second, maxBytes: size},
		{name: "expired signed URL (403), no refresher",
			setup: func(s *faultsrv.Server, path string) { s.Expire(path, http.StatusForbidden) },
			want:  httpErr(403), maxTime: 5 * time.Second},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := faultsrv.New(t)
			env := newEnv(t, "")
			e := env.engine(t, tc.tune)
			data := randomBytes(uint64(300+i), size)
			const path = "/m/weights.onnx"
			u := srv.Add(path, data)
			srv.Script(path, tc.then, tc.seq...)
			if tc.setup != nil {
				tc.setup(srv, path)
			}
			if tc.url != nil {
				u = tc.url(srv, u)
			}
			it := Item{Name: "weights.onnx", URL: u, MD5: md5hex(data)}
			refreshed := 0
			if tc.refresh {
				it.Refresh = func(context.Context) (string, error) { refreshed++; return srv.SignedURL(path), nil }
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			start := time.Now()
			_, err := e.EnsureBlob(ctx, it)
			took := time.Since(start)
			tc.want(t, err)
			if err != nil && strings.Contains(err.Error(), "sig=") {
				t.Errorf("the error carries the signed query: %v", err)
			}
			if took > tc.maxTime {
				t.Errorf("took %v, bound %v", took, tc.maxTime)
			}
			if err := srv.Quiesce(ctx); err != nil {
				t.Fatal(err)
			}
			if got := srv.Stats(path).BodyBytes; got > tc.maxBytes {
				t.Errorf("origin sent %d body bytes, bound %d", got, tc.maxBytes)
			}
			if tc.refresh && refreshed != 1 {
				t.Errorf("refreshed %d times, want 1", refreshed)
			}
			assertStore(t, env, data, err == nil, tc.keep)
		})
	}
}
