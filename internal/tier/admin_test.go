package tier

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/testsvc"
	"github.com/modelcache/modelcache/internal/tier/s3store"
)

// TestPushAndStatus: push seeds the bucket from local blobs, skipping what
// exists and refusing local files that are not their blob; status then
// tells which blobs the bucket holds.
func TestPushAndStatus(t *testing.T) {
	srv := testsvc.StartS3(t)
	tr := New(tierConfig(t, srv, "model-blobs"), WithStoreOptions(func(o *s3store.Options) { o.PartSize = 5 << 20 }))
	ctx := context.Background()
	existing := localBlob(t, payload(1, 2000))
	fresh := localBlob(t, payload(2, 11<<20)) // three parts
	corrupt := localBlob(t, payload(3, 3000))
	flipped := mustRead(t, corrupt.Path)
	flipped[0] ^= 1
	if err := os.WriteFile(corrupt.Path, flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := tr.Store().Put(ctx, existing.MD5, bytes.NewReader(mustRead(t, existing.Path)), existing.Size); err != nil {
		t.Fatal(err)
	}
	blobs := []Blob{existing, fresh, corrupt}

	r, err := tr.Push(ctx, blobs, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Local.Count != 3 || r.Uploaded != (Tally{1, fresh.Size}) || r.Existed != (Tally{1, existing.Size}) ||
		r.LocalMismatch != (Tally{1, corrupt.Size}) || r.Failed.Count != 0 || r.Skipped.Count != 0 || len(r.Errors) != 1 {
		t.Fatalf("push report %+v", r)
	}
	if !bytes.Equal(objectBytes(t, srv, "model-blobs/"+fresh.MD5), mustRead(t, fresh.Path)) {
		t.Fatal("pushed object differs from the local blob")
	}
	if objectBytes(t, srv, "model-blobs/"+corrupt.MD5) != nil {
		t.Fatal("a corrupt local blob was pushed")
	}

	// An object of the wrong size for a fourth blob.
	odd := localBlob(t, payload(4, 500))
	if _, err := srv.Client(t).PutObject(ctx, srv.Bucket, "model-blobs/"+odd.MD5, bytes.NewReader(make([]byte, 10)), 10, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	st := tr.Status(ctx, append(blobs, odd), 4)
	if !st.Enabled || !st.Reachable || st.Error != "" || st.Credentials != "static" || st.Prefix != "model-blobs" ||
		st.InTier.Count != 2 || st.Missing.Count != 1 || st.Mismatched.Count != 1 || st.Unchecked.Count != 0 ||
		st.ReadBreaker != "closed" || st.WriteBreaker != "closed" || st.InTier.Bytes != existing.Size+fresh.Size {
		t.Fatalf("status %+v", st)
	}
}

// TestPushAgainstADownStore: failures open the write breaker after the
// threshold; the rest is skipped, not hammered. Status says unreachable.
func TestPushAgainstADownStore(t *testing.T) {
	srv := testsvc.StartS3(t)
	cfg := tierConfig(t, srv, "model-blobs", config.EnvBlobCacheFailureThreshold, "2")
	srv.Stop()
	tr := New(cfg)
	var blobs []Blob
	for i := 0; i < 6; i++ {
		blobs = append(blobs, localBlob(t, payload(uint64(i), 100)))
	}
	r, err := tr.Push(context.Background(), blobs, 1)
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed.Count != 2 || r.Skipped.Count != 4 || len(r.Errors) != 2 {
		t.Fatalf("push report %+v", r)
	}
	st := tr.Status(context.Background(), blobs, 1)
	if st.Reachable || st.Error == "" || st.Unchecked.Count != 6 || st.ReadBreaker != "open" {
		t.Fatalf("status %+v", st)
	}
}
