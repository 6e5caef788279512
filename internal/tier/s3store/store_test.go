package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/blobstore/blobstoretest"
	"github.com/modelcache/modelcache/internal/testsvc"
)

func newStore(t *testing.T, srv *testsvc.S3Server, prefix string, edit ...func(*Options)) *Store {
	t.Helper()
	o := Options{
		Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: prefix, Region: srv.Region, Addressing: "path",
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
		ConnectTimeout: 5 * time.Second, StallTimeout: 30 * time.Second, // generous: the machine is shared
		PartSize: minPartSize,
	}
	for _, e := range edit {
		e(&o)
	}
	s, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestConformance runs the blob-store contract against a real versitygw;
// each store gets its own prefix in one bucket. The large blob spans three
// parts, so the multipart path runs too.
func TestConformance(t *testing.T) {
	srv := testsvc.StartS3(t)
	var n atomic.Int64
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
		return newStore(t, srv, fmt.Sprintf("conformance-%d", n.Add(1)))
	}, blobstoretest.Options{LargeSize: 2*minPartSize + 12345})
}

// TestKeyLayout: the object of blob <md5> is <prefix stripped of slashes>/<md5>,
// or the bare md5 for an empty prefix, and its body is the file's bytes:
// the reference's layout, so Python processes find the same objects.
func TestKeyLayout(t *testing.T) {
	srv := testsvc.StartS3(t)
	b := []byte("the bytes of one model file")
	sum := blobstoretest.Sum(b)
	for _, tc := range []struct{ prefix, key string }{
		{"model-blobs", "model-blobs/" + sum},
		{"/team/blobs/", "team/blobs/" + sum},
		{"", sum},
		{"/", sum},
	} {
		s := newStore(t, srv, tc.prefix)
		if s.Key(sum) != tc.key {
			t.Errorf("prefix %q: Key = %q, want %q", tc.prefix, s.Key(sum), tc.key)
		}
		if err := s.Put(context.Background(), sum, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(srv.ObjectPath(tc.key))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("prefix %q: object %s holds %q (%v), want the file bytes", tc.prefix, tc.key, got, err)
		}
	}
}

// TestMultipartMismatchLeavesNothing: a multipart upload whose bytes turn
// out wrong at the very end is aborted: no object, no unfinished upload.
func TestMultipartMismatchLeavesNothing(t *testing.T) {
	srv := testsvc.StartS3(t)
	s := newStore(t, srv, "mp")
	good := payload(1, 3*minPartSize+7)
	bad := append([]byte{}, good...)
	bad[len(bad)-1] ^= 0xff
	sum := blobstoretest.Sum(good)
	var dm *blobstore.DigestMismatchError
	if err := s.Put(context.Background(), sum, bytes.NewReader(bad), int64(len(bad))); !errors.As(err, &dm) {
		t.Fatalf("Put of a wrong last byte: %v, want *DigestMismatchError", err)
	}
	var sm *blobstore.SizeMismatchError
	if err := s.Put(context.Background(), sum, bytes.NewReader(good[:len(good)-1]), int64(len(good))); !errors.As(err, &sm) {
		t.Fatalf("Put of a short body: %v, want *SizeMismatchError", err)
	}
	if _, err := s.Stat(context.Background(), sum); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Stat after failed Puts: %v, want ErrNotFound", err)
	}
	assertNoUploads(t, srv, "mp/")

	res, err := s.PutDetailed(context.Background(), sum, bytes.NewReader(good), int64(len(good)))
	if err != nil || res.Parts != 4 || res.Bytes != int64(len(good)) {
		t.Fatalf("good Put: %+v, %v; want 4 parts", res, err)
	}
	if res, err := s.PutDetailed(context.Background(), sum, strings.NewReader("never read"), int64(len(good))); err != nil || !res.Existed {
		t.Fatalf("second Put: %+v, %v; want Existed", res, err)
	}
	assertNoUploads(t, srv, "mp/")
}

func assertNoUploads(t *testing.T, srv *testsvc.S3Server, prefix string) {
	t.Helper()
	for u := range srv.Client(t).ListIncompleteUploads(context.Background(), srv.Bucket, prefix, true) {
		if u.Err != nil {
			t.Fatalf("list uploads: %v", u.Err)
		}
		t.Errorf("unfinished multipart upload left: %s (%s)", u.Key, u.UploadID)
	}
}

// TestReplaceHealsAWrongSizedObject: Put replaces an object whose size
// cannot be the blob's; Replace rewrites even a same-sized corrupt one.
func TestReplaceHealsAWrongSizedObject(t *testing.T) {
	srv := testsvc.StartS3(t)
	s := newStore(t, srv, "heal")
	good := payload(2, 4096)
	sum := blobstoretest.Sum(good)
	raw := srv.Client(t)
	ctx := context.Background()
	if _, err := raw.PutObject(ctx, srv.Bucket, s.Key(sum), bytes.NewReader(good[:100]), 100, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if res, err := s.PutDetailed(ctx, sum, bytes.NewReader(good), int64(len(good))); err != nil || res.Existed {
		t.Fatalf("Put over a short object: %+v, %v; want an upload", res, err)
	}
	flipped := append([]byte{}, good...)
	flipped[0] ^= 1
	if err := os.WriteFile(srv.ObjectPath(s.Key(sum)), flipped, 0o644); err != nil {
		t.Fatal(err)
	}
	if res, err := s.PutDetailed(ctx, sum, bytes.NewReader(good), int64(len(good))); err != nil || !res.Existed {
		t.Fatalf("Put over a same-sized object: %+v, %v; want it kept (only Replace rewrites it)", res, err)
	}
	if _, err := s.Replace(ctx, sum, bytes.NewReader(good), int64(len(good))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(srv.ObjectPath(s.Key(sum))); !bytes.Equal(got, good) {
		t.Fatal("Replace did not rewrite the corrupt object")
	}
}

// TestMaxObjectBytes: blobs over the limit are neither stored nor served.
func TestMaxObjectBytes(t *testing.T) {
	srv := testsvc.StartS3(t)
	s := newStore(t, srv, "max", func(o *Options) { o.MaxObjectBytes = 1000 })
	ctx := context.Background()
	big := payload(3, 1001)
	sum := blobstoretest.Sum(big)
	var tl *TooLargeError
	if err := s.Put(ctx, sum, bytes.NewReader(big), 1001); !errors.As(err, &tl) {
		t.Fatalf("Put of 1001 bytes: %v, want *TooLargeError", err)
	}
	if err := s.Put(ctx, sum, bytes.NewReader(big), -1); !errors.As(err, &tl) {
		t.Fatalf("Put of 1001 bytes, size unknown: %v, want *TooLargeError", err)
	}
	if _, err := srv.Client(t).PutObject(ctx, srv.Bucket, s.Key(sum), bytes.NewReader(big), 1001, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if rc, _, err := s.Open(ctx, sum, 0); !errors.As(err, &tl) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open of a 1001-byte object: %v, want *TooLargeError", err)
	}
}

// TestErrorsNameTheProblem: a wrong secret and a missing bucket are typed
// errors with a hint, and never print the secret.
func TestErrorsNameTheProblem(t *testing.T) {
	srv := testsvc.StartS3(t)
	ctx := context.Background()
	sum := blobstoretest.Sum([]byte("x"))

	s := newStore(t, srv, "p", func(o *Options) { o.SecretAccessKey = "wrong-secret-value" })
	_, err := s.Stat(ctx, sum)
	var re *RequestError
	if !errors.As(err, &re) || re.Status != http.StatusForbidden || !strings.Contains(err.Error(), "ACCESS_KEY_ID") {
		t.Fatalf("wrong secret: %v, want a 403 *RequestError with a hint", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("error prints a secret: %v", err)
	}
	if err := s.Ping(ctx); err == nil {
		t.Fatal("Ping with a wrong secret succeeded")
	}

	nb := newStore(t, srv, "p", func(o *Options) { o.Bucket = "no-such-bucket" })
	var nbe *NoBucketError
	if err := nb.Ping(ctx); !errors.As(err, &nbe) {
		t.Fatalf("Ping of a missing bucket: %v, want *NoBucketError", err)
	}
	if err := newStore(t, srv, "p").Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

// TestStallBudget: a server that accepts and then says nothing, or stops
// in the middle of a body, fails the request with a *StallError once no
// byte has moved for the budget; a slow but moving body does not.
func TestStallBudget(t *testing.T) {
	release := make(chan struct{})
	var trickle atomic.Bool
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Last-Modified", time.Now().UTC().Format(http.TimeFormat))
		w.Header().Set("ETag", `"e"`)
		switch {
		case r.Method == http.MethodHead && strings.Contains(r.URL.Path, "silent"):
			<-release
		case r.Method == http.MethodHead:
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
		case trickle.Load():
			// 40 bytes, each well within the budget: moving, never stalled.
			w.Header().Set("Content-Length", "40")
			w.WriteHeader(http.StatusOK)
			for i := 0; i < 40; i++ {
				w.Write([]byte{'x'})
				w.(http.Flusher).Flush()
				select {
				case <-release:
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		default:
			w.Header().Set("Content-Length", "1000000")
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, 1000))
			w.(http.Flusher).Flush()
			<-release
		}
	}))
	defer func() { close(release); hs.Close() }()
	mk := func(prefix string, stall time.Duration) *Store {
		s, err := New(Options{Endpoint: hs.URL, Bucket: "bkt", Prefix: prefix, Region: "us-east-1", Addressing: "path",
			AccessKeyID: "k", SecretAccessKey: "s", StallTimeout: stall, ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sum := blobstoretest.Sum([]byte("x"))
	var se *StallError
	if _, err := mk("silent", 300*time.Millisecond).Stat(context.Background(), sum); !errors.As(err, &se) {
		t.Fatalf("silent server: %v, want *StallError", err)
	}
	rc, _, err := mk("body", 300*time.Millisecond).Open(context.Background(), sum, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !errors.As(err, &se) {
		t.Fatalf("body stalled mid-way: %v, want *StallError", err)
	}

	// The whole trickle takes longer than the budget, but no gap does.
	trickle.Store(true)
	s := mk("trickle", 5*time.Second)
	req, _ := http.NewRequest(http.MethodGet, hs.URL+"/bkt/trickle/"+sum, nil)
	resp, err := s.HTTPClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != 40 {
		t.Fatalf("trickling body: %d bytes, %v", n, err)
	}
}

// TestNoRequestAtNew: New sends nothing; the first call dials.
func TestNoRequestAtNew(t *testing.T) {
	var dials atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dials.Add(1)
		if addr != "127.0.0.1:1" {
			t.Errorf("dialled %s", addr)
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	s, err := New(Options{Endpoint: "http://127.0.0.1:1", Bucket: "bkt", Dial: dial, Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if dials.Load() != 0 {
		t.Fatal("New dialled")
	}
	if _, err := s.Stat(context.Background(), blobstoretest.Sum(nil)); err == nil {
		t.Fatal("Stat against a closed port succeeded")
	}
	if dials.Load() != 1 {
		t.Fatalf("one Stat made %d dials, want 1 (no retries: the breaker decides)", dials.Load())
	}
}

// TestRegionAskedOfTheService: without a configured region (nor AWS_REGION)
// the client asks the service for the bucket's location, once, and HEADs
// and presigned URLs work.
func TestRegionAskedOfTheService(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	srv := testsvc.StartS3(t)
	s := newStore(t, srv, "r", func(o *Options) { o.Region = "" })
	b := payload(7, 1000)
	sum := blobstoretest.Sum(b)
	ctx := context.Background()
	if err := s.Put(ctx, sum, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
	u, err := s.PresignGet(ctx, sum, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := s.HTTPClient().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(got, b) {
		t.Fatalf("presigned GET: HTTP %d, %d bytes, %v", resp.StatusCode, len(got), err)
	}
}
