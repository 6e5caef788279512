package access_test

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// BenchmarkWarmLoad measures what the guard adds to a warm Load (an
// auto-resolution hit) by one tenant. One client loads through a switchable
// access manager whose mode changes every load: no guard; a ProviderGuard
// holding a positive decision; another with an audit log (JSON) and
// counters; no guard again (the control), in a new random order each
// iteration. Same client, same cache, same entry: only the manager
// differs, and the machine's noise hits all modes alike. It reports the median of each mode and the medians of the paired
// differences with the first (guard-overhead-µs, target ≤ 20;
// control-overhead-µs is the resolution of the measurement).
// bench/guard.sh runs it several times and prints the medians.
func BenchmarkWarmLoad(b *testing.B) {
	w := newWorld(b)
	up := newUpstream(b, w, modelX, modelY)
	quiet := slog.New(slog.DiscardHandler)
	verifier := access.ProviderVerifier(roboflow.New(roboflow.Options{APIHost: up.URL, Logger: quiet}))
	plain, err := access.NewProviderGuard(access.Options{Verifier: verifier, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	audited, err := access.NewProviderGuard(access.Options{Verifier: verifier, Logger: quiet,
		AuditLogger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	sw := &switchable{modes: []access.AccessManager{access.AllowAll{}, plain, audited, access.AllowAll{}}}
	cfg := config.Default()
	cfg.Home, cfg.APIHost = w.home(b), up.URL
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()), modelcache.WithLogger(quiet), modelcache.WithAccessManager(sw))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	key := modelcache.WithAPIKey(keyA)
	// The cold load, then one warm load per mode (the guards' verifications).
	for m := range sw.modes {
		sw.mode.Store(int32(m))
		if _, err := c.Load(ctx, modelX, key); err != nil {
			b.Fatal(err)
		}
	}
	samples := make([][]time.Duration, len(sw.modes))
	order := make([]int, len(sw.modes))
	for i := range order {
		order[i] = i
	}
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A new random order each iteration: no mode always follows another.
		rng.Shuffle(len(order), func(x, y int) { order[x], order[y] = order[y], order[x] })
		for _, m := range order {
			sw.mode.Store(int32(m))
			t0 := time.Now()
			p, err := c.Load(ctx, modelX, key)
			samples[m] = append(samples[m], time.Since(t0))
			if err != nil || !p.FromCache {
				b.Fatalf("warm load: %v", err)
			}
		}
	}
	b.StopTimer()
	diffs := func(a, base []time.Duration) []time.Duration {
		out := make([]time.Duration, len(a))
		for i := range a {
			out[i] = a[i] - base[i]
		}
		return out
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(median(samples[0])), "allow-all-µs")
	b.ReportMetric(us(median(samples[1])), "guard-µs")
	b.ReportMetric(us(median(samples[2])), "audited-µs")
	b.ReportMetric(us(median(diffs(samples[1], samples[0]))), "guard-overhead-µs")
	b.ReportMetric(us(median(diffs(samples[2], samples[0]))), "audited-overhead-µs")
	b.ReportMetric(us(median(diffs(samples[3], samples[0]))), "control-overhead-µs")
}

// switchable delegates to one of its managers, chosen per load.
type switchable struct {
	mode  atomic.Int32
	modes []access.AccessManager
}

func (s *switchable) m() access.AccessManager { return s.modes[s.mode.Load()] }

func (s *switchable) IsModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) bool {
	return s.m().IsModelAccessForbidden(ctx, modelID, apiKey)
}
func (s *switchable) OnModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) {
	s.m().OnModelAccessForbidden(ctx, modelID, apiKey)
}
func (s *switchable) CanUseCachedPackage(ctx context.Context, modelID, packageID string, apiKey *string) bool {
	return s.m().CanUseCachedPackage(ctx, modelID, packageID, apiKey)
}
func (s *switchable) OnModelPackageAccessGranted(ctx context.Context, modelID, packageID string, apiKey *string) {
	s.m().OnModelPackageAccessGranted(ctx, modelID, packageID, apiKey)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)/2]
}

// BenchmarkDecide is the guard alone on a cached positive decision, without
// and with the audit log and counters.
func BenchmarkDecide(b *testing.B) {
	for _, c := range []struct {
		name string
		o    access.Options
	}{
		{"plain", access.Options{}},
		{"audited", access.Options{AuditLogger: slog.New(slog.NewJSONHandler(io.Discard, nil)), Metrics: prometheus.NewRegistry()}},
	} {
		b.Run(c.name, func(b *testing.B) {
			o := c.o
			o.Logger = slog.New(slog.DiscardHandler)
			o.Verifier = access.VerifierFunc(func(context.Context, string, *string) error { return nil })
			g, err := access.NewProviderGuard(o)
			if err != nil {
				b.Fatal(err)
			}
			ctx, key := context.Background(), keyA
			g.Check(ctx, modelX, "", &key)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := g.Check(ctx, modelX, "pkg", &key); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
