package modelcache_test

import (
	"context"
	"testing"

	"github.com/modelcache/modelcache"
)

// BenchmarkLoadWarm is an in-process load answered by the auto-resolution
// cache (target: ≤ 200 µs median). The cold load happens once, outside the timer.
func BenchmarkLoadWarm(b *testing.B) {
	ctx := context.Background()
	es := serveExamples(b)
	c := newClient(b, b.TempDir(), es.URL)
	if _, err := c.Load(ctx, "parcel-det"); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := c.Load(ctx, "parcel-det")
		if err != nil || !p.FromCache {
			b.Fatalf("warm load: %v (from cache %v)", err, p != nil && p.FromCache)
		}
	}
}

// BenchmarkLoadCold loads into an empty cache each time (metadata, negotiation,
// download over loopback HTTP, verification, manifest, entry).
func BenchmarkLoadCold(b *testing.B) {
	ctx := context.Background()
	es := serveExamples(b)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c := newClient(b, b.TempDir(), es.URL, modelcache.WithLogger(discard()))
		b.StartTimer()
		if _, err := c.Load(ctx, "parcel-det"); err != nil {
			b.Fatal(err)
		}
	}
}
