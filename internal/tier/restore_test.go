package tier

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// reason is the Reason of Lookup's *MissError ("source" for a source).
func reason(src *Source, err error) string {
	var me *MissError
	switch {
	case src != nil:
		src.Reject(context.Canceled)
		return "source"
	case !errors.As(err, &me) || !errors.Is(err, ErrMiss):
		return "not a *MissError: " + err.Error()
	}
	return me.Reason
}

// TestRestorePresent: an object of the blob is handed to the engine as a
// presigned URL that serves parallel ranges; Done counts the restore.
func TestRestorePresent(t *testing.T) {
	srv := testsvc.StartS3(t)
	tr := New(tierConfig(t, srv, "model-blobs"), WithLogger(slog.New(&logRecorder{})))
	defer tr.Close(context.Background())
	b := payload(1, 3<<20+17)
	sum := sumOf(b)
	if err := tr.Store().Put(context.Background(), sum, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	src, err := tr.Lookup(context.Background(), sum, int64(len(b)))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if src.Size != int64(len(b)) || src.ETag == "" || src.Client == nil || src.StallTimeout <= 0 {
		t.Fatalf("source %+v", src)
	}
	n, err := fetchLikeTheEngine(t, src, sum, int64(len(b)), 4)
	if err != nil {
		t.Fatalf("ranged fetch of the presigned URL: %v", err)
	}
	src.Done(n)
	src.Done(n) // settled once
	m := tr.Metrics()
	if testutil.ToFloat64(m.Restores) != 1 || testutil.ToFloat64(m.RestoreBytes) != float64(len(b)) {
		t.Fatalf("restores %v, bytes %v", testutil.ToFloat64(m.Restores), testutil.ToFloat64(m.RestoreBytes))
	}
	// A refreshed URL works too (the engine's 403 path).
	u, err := src.Refresh(context.Background())
	if err != nil || u == "" {
		t.Fatalf("Refresh: %q, %v", u, err)
	}
}

// TestRestoreMissing: a missing object is a miss and counts as a working
// tier (the breaker stays closed however many misses there are).
func TestRestoreMissing(t *testing.T) {
	srv := testsvc.StartS3(t)
	tr := New(tierConfig(t, srv, "model-blobs", config.EnvBlobCacheFailureThreshold, "1"))
	for i := 0; i < 5; i++ {
		if r := reason(tr.Lookup(context.Background(), sumOf(payload(uint64(i), 10)), 10)); r != ReasonNotFound {
			t.Fatalf("reason %s", r)
		}
	}
	if r, _ := tr.Breakers(); r != Closed {
		t.Fatalf("read breaker %s after misses", r)
	}
	if got := testutil.ToFloat64(tr.Metrics().OriginFallbacks.WithLabelValues(ReasonNotFound)); got != 5 {
		t.Fatalf("fallbacks %v", got)
	}
}

// TestRestoreShortAndOversized: an object whose size is not the blob's, or
// that is over MAX_OBJECT_BYTES, is never handed out; it counts as a tier
// failure, is distrusted, and the verified upload after the origin
// download replaces it.
func TestRestoreShortAndOversized(t *testing.T) {
	srv := testsvc.StartS3(t)
	rec := &logRecorder{}
	var requests atomic.Int64
	tr := New(tierConfig(t, srv, "p", config.EnvBlobCacheMaxObjectBytes, "4096", config.EnvBlobCacheFailureThreshold, "10"),
		WithLogger(slog.New(rec)), countRequests(&requests))
	ctx := context.Background()
	raw := srv.Client(t)

	good := payload(2, 3000)
	sum := sumOf(good)
	key := tr.Store().Key(sum)
	if _, err := raw.PutObject(ctx, srv.Bucket, key, bytes.NewReader(good[:2000]), 2000, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := reason(tr.Lookup(ctx, sum, int64(len(good)))); r != ReasonSizeMismatch {
		t.Fatalf("short object: reason %s", r)
	}
	before := requests.Load()
	if r := reason(tr.Lookup(ctx, sum, int64(len(good)))); r != ReasonDistrusted || requests.Load() != before {
		t.Fatalf("second lookup: reason %s, %d requests", r, requests.Load()-before)
	}
	lb := localBlob(t, good)
	if !tr.Offer(lb.MD5, lb.Path, lb.Size) {
		t.Fatal("Offer declined")
	}
	waitFor(t, "the upload", func() bool {
		return testutil.ToFloat64(tr.Metrics().Uploads.WithLabelValues(UploadStored)) == 1
	})
	if !bytes.Equal(objectBytes(t, srv, key), good) {
		t.Fatal("the short object was not replaced by the verified blob")
	}
	src, err := tr.Lookup(ctx, sum, int64(len(good)))
	if err != nil {
		t.Fatalf("after the heal: %v", err)
	}
	src.Reject(context.Canceled)

	// Oversized: the blob itself (no request at all) or the object.
	before = requests.Load()
	if r := reason(tr.Lookup(ctx, sumOf(payload(3, 5000)), 5000)); r != ReasonTooLarge || requests.Load() != before {
		t.Fatalf("blob over the limit: reason %s, %d requests", r, requests.Load()-before)
	}
	big := payload(4, 5000)
	if _, err := raw.PutObject(ctx, srv.Bucket, tr.Store().Key(sumOf(big)), bytes.NewReader(big), 5000, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if r := reason(tr.Lookup(ctx, sumOf(big), 0)); r != ReasonTooLarge {
		t.Fatalf("object over the limit, size unknown: reason %s", r)
	}
	if w := rec.count(slog.LevelWarn); w != 2 {
		t.Fatalf("%d warnings, want one per bad object:\n%s", w, rec.text())
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreCorrupt: bytes overwritten in the bucket behind the server's
// back keep the object's size, so the HEAD cannot tell; the engine's MD5
// check rejects them, Reject distrusts the object, and the upload after the
// origin download replaces it. Put never publishes the wrong bytes: an
// offered local file that is not the blob uploads nothing.
func TestRestoreCorrupt(t *testing.T) {
	srv := testsvc.StartS3(t)
	rec := &logRecorder{}
	tr := New(tierConfig(t, srv, "model-blobs"), WithLogger(slog.New(rec)))
	ctx := context.Background()
	good := payload(5, 6<<20+5) // multipart on the heal
	sum := sumOf(good)
	if err := tr.Store().Put(ctx, sum, bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatal(err)
	}
	key := tr.Store().Key(sum)
	corrupt := append([]byte{}, good...)
	for i := 1 << 20; i < 1<<20+4096; i++ {
		corrupt[i] ^= 0x5a
	}
	if err := os.WriteFile(srv.ObjectPath(key), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}

	src, err := tr.Lookup(ctx, sum, int64(len(good)))
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	_, ferr := fetchLikeTheEngine(t, src, sum, int64(len(good)), 3)
	if ferr == nil {
		t.Fatal("the engine's check accepted corrupt bytes")
	}
	src.Reject(ferr)
	if r := reason(tr.Lookup(ctx, sum, int64(len(good)))); r != ReasonDistrusted {
		t.Fatalf("after Reject: reason %s", r)
	}
	if testutil.ToFloat64(tr.Metrics().OriginFallbacks.WithLabelValues(ReasonRejected)) != 1 || rec.count(slog.LevelWarn) != 1 {
		t.Fatalf("rejected fallbacks %v, warnings %d", testutil.ToFloat64(tr.Metrics().OriginFallbacks.WithLabelValues(ReasonRejected)), rec.count(slog.LevelWarn))
	}

	// A local file that is not the blob (one byte flipped): nothing uploaded.
	bad := localBlob(t, good)
	flipped := append([]byte{}, good...)
	flipped[len(flipped)/2] ^= 1
	if err := os.WriteFile(bad.Path, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if !tr.Offer(bad.MD5, bad.Path, bad.Size) {
		t.Fatal("Offer declined")
	}
	waitFor(t, "the refused upload", func() bool {
		return testutil.ToFloat64(tr.Metrics().Uploads.WithLabelValues(UploadLocalMismatch)) == 1
	})
	if !bytes.Equal(objectBytes(t, srv, key), corrupt) {
		t.Fatal("a local file that is not the blob changed the object")
	}
	assertNoUploads(t, srv)

	// The verified origin copy heals the object.
	lb := localBlob(t, good)
	if !tr.Offer(lb.MD5, lb.Path, lb.Size) {
		t.Fatal("Offer declined")
	}
	if err := tr.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !bytes.Equal(objectBytes(t, srv, key), good) {
		t.Fatal("the corrupt object was not replaced")
	}
}

func assertNoUploads(t *testing.T, srv *testsvc.S3Server) {
	t.Helper()
	for u := range srv.Client(t).ListIncompleteUploads(context.Background(), srv.Bucket, "", true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		t.Errorf("unfinished multipart upload left: %s", u.Key)
	}
}
