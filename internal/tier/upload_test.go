package tier

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// hungServer accepts connections and never answers: uploads to it end only
// when cancelled.
func hungServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "http://" + l.Addr().String()
}

// TestUploadQueueDropsWhenFull: with every worker stuck and the queue full,
// Offer returns false at once and counts the drop; Close returns at its
// bound although nothing can finish, reporting the unfinished uploads, and
// the cancelled uploads then wind down.
func TestUploadQueueDropsWhenFull(t *testing.T) {
	srv := testsvc.StartS3(t) // for the credentials; the endpoint is the hung one
	cfg := tierConfig(t, srv, "p",
		config.EnvBlobCacheEndpointURL, hungServer(t),
		config.EnvBlobCacheReadTimeout, "3600", // only Close can end the uploads
		config.EnvBlobCacheUploadWorkers, "1",
		config.EnvBlobCacheUploadQueue, "2",
		config.EnvBlobCacheExitWait, "0.2")
	rec := &logRecorder{}
	tr := New(cfg, WithLogger(slog.New(rec)))

	var accepted, dropped int
	for i := 0; i < 6; i++ {
		lb := localBlob(t, payload(uint64(i), 100))
		if tr.Offer(lb.MD5, lb.Path, lb.Size) {
			accepted++
		} else {
			dropped++
		}
	}
	if accepted != 3 || dropped != 3 || testutil.ToFloat64(tr.Metrics().UploadDrops) != 3 {
		t.Fatalf("accepted %d, dropped %d (metric %v); want 1 worker + 2 queued, 3 drops",
			accepted, dropped, testutil.ToFloat64(tr.Metrics().UploadDrops))
	}
	if rec.count(slog.LevelWarn) != 1 {
		t.Fatalf("want one warning about the full queue:\n%s", rec.text())
	}
	// An offer of a blob already queued is not a second upload.
	lb := localBlob(t, payload(0, 100))
	if !tr.Offer(lb.MD5, lb.Path, lb.Size) || testutil.ToFloat64(tr.Metrics().UploadDrops) != 3 {
		t.Fatal("a duplicate offer was dropped or counted")
	}

	closed := make(chan error, 1)
	go func() { closed <- tr.Close(context.Background()) }()
	var err error
	waitFor(t, "Close to return at its bound", func() bool {
		select {
		case err = <-closed:
			return true
		default:
			return false
		}
	})
	var de *DrainError
	if !errors.As(err, &de) || de.Unfinished != 3 {
		t.Fatalf("Close = %v, want a *DrainError with 3 unfinished uploads", err)
	}
	if tr.Offer(lb.MD5, lb.Path, lb.Size) {
		t.Fatal("Offer accepted after Close")
	}
	waitFor(t, "the cancelled uploads to wind down", func() bool {
		return testutil.ToFloat64(tr.Metrics().Uploads.WithLabelValues(UploadAbandoned)) == 3
	})
}

// TestCloseWaitsForQueuedUploads: queued uploads finish before Close
// returns; an object that exists is not uploaded again.
func TestCloseWaitsForQueuedUploads(t *testing.T) {
	srv := testsvc.StartS3(t)
	reg := prometheus.NewRegistry()
	tr := New(tierConfig(t, srv, "model-blobs", config.EnvBlobCacheUploadWorkers, "2", config.EnvBlobCacheUploadQueue, "8"),
		WithRegisterer(reg))
	var blobs []Blob
	for i := 0; i < 6; i++ {
		blobs = append(blobs, localBlob(t, payload(uint64(i), 1000+i*(1<<20))))
	}
	if err := tr.Store().Put(context.Background(), blobs[0].MD5, bytes.NewReader(mustRead(t, blobs[0].Path)), blobs[0].Size); err != nil {
		t.Fatal(err)
	}
	for _, b := range blobs {
		if !tr.Offer(b.MD5, b.Path, b.Size) {
			t.Fatalf("offer of %s declined", b.MD5)
		}
	}
	if err := tr.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, b := range blobs {
		if !bytes.Equal(objectBytes(t, srv, "model-blobs/"+b.MD5), mustRead(t, b.Path)) {
			t.Fatalf("object of %s missing or wrong after Close", b.MD5)
		}
	}
	m := tr.Metrics()
	if testutil.ToFloat64(m.Uploads.WithLabelValues(UploadStored)) != 5 || testutil.ToFloat64(m.Uploads.WithLabelValues(UploadExisted)) != 1 {
		t.Fatalf("stored %v, existed %v", testutil.ToFloat64(m.Uploads.WithLabelValues(UploadStored)), testutil.ToFloat64(m.Uploads.WithLabelValues(UploadExisted)))
	}
	// The metrics are registered under their documented names.
	names := map[string]bool{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"modelcache_tier_uploads_total", "modelcache_tier_upload_bytes_total", "modelcache_tier_breaker_state"} {
		if !names[n] {
			t.Errorf("metric %s not registered (have %v)", n, names)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
