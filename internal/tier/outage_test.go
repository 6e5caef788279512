package tier

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/testsvc"
)

func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestBreakerOnOutage: with the store down (server stopped, wrong
// endpoint, wrong credentials) lookups and uploads fail open: the breaker
// opens after exactly FAILURE_THRESHOLD attempts, no request is sent while
// it is open, one probe goes out after the cooldown, and one warning is
// logged in all. A store that comes back closes the breaker at the probe.
func TestBreakerOnOutage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		outage func(t *testing.T, srv *testsvc.S3Server) []string // env overrides
		heal   bool
	}{
		{"server stopped", func(t *testing.T, srv *testsvc.S3Server) []string { srv.Stop(); return nil }, true},
		{"wrong endpoint", func(t *testing.T, srv *testsvc.S3Server) []string {
			return []string{config.EnvBlobCacheEndpointURL, closedPort(t)}
		}, false},
		{"wrong credentials", func(t *testing.T, srv *testsvc.S3Server) []string {
			return []string{config.EnvBlobCacheSecretAccessKey, "not-the-secret"}
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsvc.StartS3(t)
			extra := append([]string{config.EnvBlobCacheFailureThreshold, "3", config.EnvBlobCacheCooldown, "60"}, tc.outage(t, srv)...)
			cfg := tierConfig(t, srv, "model-blobs", extra...)
			clk := newFakeClock()
			rec := &logRecorder{}
			var requests atomic.Int64
			tr := New(cfg, WithClock(clk), WithLogger(slog.New(rec)), countRequests(&requests))
			ctx := context.Background()

			reasons := map[string]int{}
			for i := 0; i < 10; i++ {
				reasons[reason(tr.Lookup(ctx, sumOf(payload(uint64(100+i), 64)), 64))]++
			}
			if requests.Load() != 3 || reasons[ReasonError] != 3 || reasons[ReasonBreakerOpen] != 7 {
				t.Fatalf("10 lookups: %d requests, reasons %v; want 3 attempts, then the breaker", requests.Load(), reasons)
			}
			if r, _ := tr.Breakers(); r != Open {
				t.Fatalf("read breaker %s", r)
			}

			// Uploads: each offered after the last one failed; the third
			// failure opens the write breaker and later offers are declined.
			for i := 0; i < 3; i++ {
				lb := localBlob(t, payload(uint64(200+i), 64))
				if !tr.Offer(lb.MD5, lb.Path, lb.Size) {
					t.Fatalf("offer %d declined while the write breaker was closed", i)
				}
				waitFor(t, "a failed upload", func() bool {
					return testutil.ToFloat64(tr.Metrics().Uploads.WithLabelValues(UploadFailed)) == float64(i+1)
				})
			}
			lb := localBlob(t, payload(300, 64))
			if tr.Offer(lb.MD5, lb.Path, lb.Size) {
				t.Fatal("offer accepted with the write breaker open")
			}
			if requests.Load() != 6 {
				t.Fatalf("%d requests after 3 failed uploads, want 6", requests.Load())
			}

			// After the cooldown: one probe, which fails and reopens.
			clk.Advance(60 * time.Second)
			reasons = map[string]int{}
			for i := 0; i < 5; i++ {
				reasons[reason(tr.Lookup(ctx, sumOf(payload(uint64(400+i), 64)), 64))]++
			}
			if requests.Load() != 7 || reasons[ReasonError] != 1 {
				t.Fatalf("after the cooldown: %d requests, reasons %v; want exactly one probe", requests.Load(), reasons)
			}
			if w := rec.count(slog.LevelWarn); w != 1 {
				t.Fatalf("%d warnings, want exactly one:\n%s", w, rec.text())
			}
			if got := testutil.ToFloat64(tr.Metrics().BreakerTrips.WithLabelValues("read")); got != 2 {
				t.Fatalf("read trips %v, want 2", got)
			}
			if !strings.Contains(rec.text(), "last_err=") {
				t.Fatalf("the warning does not say what failed:\n%s", rec.text())
			}

			if tc.heal {
				srv.Start()
				clk.Advance(60 * time.Second)
				if r := reason(tr.Lookup(ctx, sumOf(payload(500, 64)), 64)); r != ReasonNotFound {
					t.Fatalf("probe against the restarted server: %s", r)
				}
				if r, _ := tr.Breakers(); r != Closed || !strings.Contains(rec.text(), "reachable again") {
					t.Fatalf("breaker %s after a good probe; log:\n%s", r, rec.text())
				}
				if r := reason(tr.Lookup(ctx, sumOf(payload(501, 64)), 64)); r != ReasonNotFound {
					t.Fatalf("after the heal: %s", r)
				}
			}
			if err := tr.Close(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestOfflineNeverDials: with OFFLINE_MODE the tier is off, whatever it is
// configured to, and nothing dials: lookup, offer, status, push, close.
func TestOfflineNeverDials(t *testing.T) {
	srv := testsvc.StartS3(t)
	cfg := tierConfig(t, srv, "model-blobs", config.EnvOffline, "true")
	if !cfg.Offline || !cfg.BlobCache.Enabled {
		t.Fatal("setup: want an enabled tier in offline mode")
	}
	var dials atomic.Int64
	rec := &logRecorder{}
	tr := New(cfg, recordDials(&dials), WithLogger(slog.New(rec)))
	var de *DisabledError
	if err := tr.Disabled(); !errors.As(err, &de) || de.Reason != "OFFLINE_MODE" {
		t.Fatalf("Disabled = %v", err)
	}
	ctx := context.Background()
	lb := localBlob(t, payload(1, 1000))
	if r := reason(tr.Lookup(ctx, lb.MD5, lb.Size)); r != "disabled" {
		t.Fatalf("Lookup: %s", r)
	}
	if tr.Offer(lb.MD5, lb.Path, lb.Size) {
		t.Fatal("Offer accepted offline")
	}
	if st := tr.Status(ctx, []Blob{lb}, 4); st.Enabled || st.Disabled != "OFFLINE_MODE" || st.Unchecked.Count != 1 {
		t.Fatalf("Status %+v", st)
	}
	if _, err := tr.Push(ctx, []Blob{lb}, 4); !errors.As(err, &de) {
		t.Fatalf("Push: %v", err)
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if dials.Load() != 0 || rec.count(slog.LevelWarn) != 0 {
		t.Fatalf("offline tier: %d dials, %d warnings", dials.Load(), rec.count(slog.LevelWarn))
	}

	// The dial recorder does see an online tier's dials.
	online := New(tierConfig(t, srv, "model-blobs"), recordDials(&dials))
	reason(online.Lookup(ctx, lb.MD5, lb.Size))
	if dials.Load() == 0 {
		t.Fatal("the dial recorder saw no dial from an online tier")
	}
}

// TestMisconfiguredDisablesWithOneWarning: an enabled tier without a bucket
// (or with half a key pair) is off, says why once, and never dials.
func TestMisconfiguredDisablesWithOneWarning(t *testing.T) {
	for _, env := range []map[string]string{
		{config.EnvBlobCacheEnabled: "true"},
		{config.EnvBlobCacheEnabled: "true", config.EnvBlobCacheBucket: "b", config.EnvBlobCacheAccessKeyID: "AKID"},
	} {
		cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		var dials atomic.Int64
		rec := &logRecorder{}
		tr := New(cfg, recordDials(&dials), WithLogger(slog.New(rec)))
		var ie *config.InvalidEnvError
		if err := tr.Disabled(); !errors.As(err, &ie) {
			t.Fatalf("%v: Disabled = %v, want the configuration problem", env, err)
		}
		for i := 0; i < 3; i++ {
			reason(tr.Lookup(context.Background(), sumOf(nil), 0))
			tr.Offer(sumOf(nil), "/nonexistent", 0)
		}
		if dials.Load() != 0 || rec.count(slog.LevelWarn) != 1 {
			t.Fatalf("%v: %d dials, %d warnings:\n%s", env, dials.Load(), rec.count(slog.LevelWarn), rec.text())
		}
	}
}

// TestNilTier: an engine without a tier needs no special case.
func TestNilTier(t *testing.T) {
	var tr *Tier
	if r := reason(tr.Lookup(context.Background(), sumOf(nil), 0)); r != "disabled" {
		t.Fatal(r)
	}
	if tr.Offer(sumOf(nil), "/x", 0) || tr.Close(context.Background()) != nil || tr.Disabled() == nil {
		t.Fatal("nil tier misbehaves")
	}
}
