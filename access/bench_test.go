package access_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/config"
)

// BenchmarkWarmLoad measures what the guard adds to a warm Load (an
// auto-resolution hit) by one tenant: three clients over one cache (no guard; a ProviderGuard holding a positive decision; the same
// with an audit log and counters) load in rotating order within each
// iteration, so that the machine's noise hits all three alike. It reports
// the median of each and the median of the paired differences
// (guard-overhead-µs, target ≤ 20). bench/guard.sh runs it several times and
// prints the medians.
func BenchmarkWarmLoad(b *testing.B) {
	w := newWorld(b)
	up := newUpstream(b, w, modelX, modelY)
	quiet := slog.New(slog.DiscardHandler)
	variants := [][]modelcache.Option{
		nil,
		{modelcache.WithAccessGuard(access.Options{})},
		{modelcache.WithAccessGuard(access.Options{
			AuditLogger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
			Metrics:     prometheus.NewRegistry(),
		})},
		nil,
	}
	ctx := context.Background()
	key := modelcache.WithAPIKey(keyA)
	clients := make([]*modelcache.Client, len(variants))
	home := w.home(b)
	for i, opts := range variants {
		cfg := config.Default()
		cfg.Home, cfg.APIHost = home, up.URL
		c, err := modelcache.New(cfg, append([]modelcache.Option{modelcache.WithRuntime(cpuRuntime()), modelcache.WithLogger(quiet)}, opts...)...)
		if err != nil {
			b.Fatal(err)
		}
		for j := 0; j < 2; j++ { // cold load, then the first warm one (the guard's verification)
			if _, err := c.Load(ctx, modelX, key); err != nil {
				b.Fatal(err)
			}
		}
		clients[i] = c
	}
	samples := make([][]time.Duration, len(clients))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range clients {
			k := (i + j) % len(clients)
			t0 := time.Now()
			p, err := clients[k].Load(ctx, modelX, key)
			samples[k] = append(samples[k], time.Since(t0))
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
