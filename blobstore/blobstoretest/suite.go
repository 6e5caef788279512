// Package blobstoretest is the conformance suite of blobstore.Store: every
// implementation (the cache's shared-blobs, the S3 tier, a test fake) runs
// Run from its own tests, so that all of them keep one contract.
package blobstoretest

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
)

// Options tunes the suite to an implementation.
type Options struct {
	// LargeSize is the size of the large blob the suite round-trips (so that
	// an implementation's multipart or ranged paths run); 0 means 9 MiB.
	LargeSize int
	// Concurrency is how many goroutines put one blob at once; 0 means 8.
	Concurrency int
}

// Run runs every conformance test against stores made by newStore; each call
// must return an empty store of its own.
func Run(t *testing.T, newStore func(t *testing.T) blobstore.Store, o Options) {
	if o.LargeSize == 0 {
		o.LargeSize = 9 << 20
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	tests := []struct {
		name string
		fn   func(*testing.T, blobstore.Store, Options)
	}{
		{"PutStatOpen", testPutStatOpen},
		{"OpenAtOffset", testOpenAtOffset},
		{"Missing", testMissing},
		{"WrongBytesNotPublished", testWrongBytes},
		{"WrongSizeNotPublished", testWrongSize},
		{"UnknownSize", testUnknownSize},
		{"EmptyBlob", testEmpty},
		{"InvalidNames", testInvalidNames},
		{"PutExistingKeepsContent", testPutExisting},
		{"ConcurrentPuts", testConcurrentPuts},
		{"WalkAndDelete", testWalkAndDelete},
		{"CancelledPut", testCancelledPut},
		{"Large", testLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t), o) })
	}
}

// Sum is the blob name of b.
func Sum(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func put(t *testing.T, s blobstore.Store, b []byte) string {
	t.Helper()
	sum := Sum(b)
	if err := s.Put(context.Background(), sum, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("Put %s (%d bytes): %v", sum, len(b), err)
	}
	return sum
}

func readAll(t *testing.T, s blobstore.Store, sum string, off int64) ([]byte, blobstore.Info) {
	t.Helper()
	rc, info, err := s.Open(context.Background(), sum, off)
	if err != nil {
		t.Fatalf("Open %s at %d: %v", sum, off, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", sum, err)
	}
	return b, info
}

func mustNotFound(t *testing.T, s blobstore.Store, sum string) {
	t.Helper()
	if _, err := s.Stat(context.Background(), sum); !errors.Is(err, blobstore.ErrNotFound) {
		t.Fatalf("Stat %s: got %v, want ErrNotFound", sum, err)
	}
	if rc, _, err := s.Open(context.Background(), sum, 0); !errors.Is(err, blobstore.ErrNotFound) {
		if rc != nil {
			rc.Close()
		}
		t.Fatalf("Open %s: got %v, want ErrNotFound", sum, err)
	}
}

func testPutStatOpen(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(1, 100_001)
	sum := put(t, s, b)
	info, err := s.Stat(context.Background(), sum)
	if err != nil || info.MD5 != sum || info.Size != int64(len(b)) {
		t.Fatalf("Stat = %+v, %v; want {%s %d}", info, err, sum, len(b))
	}
	got, oi := readAll(t, s, sum, 0)
	if !bytes.Equal(got, b) || oi.Size != int64(len(b)) {
		t.Fatalf("Open returned %d bytes (info size %d), want the %d put", len(got), oi.Size, len(b))
	}
}

func testOpenAtOffset(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(2, 70_000)
	sum := put(t, s, b)
	for _, off := range []int64{1, 4096, 69_999, 70_000} {
		got, _ := readAll(t, s, sum, off)
		if !bytes.Equal(got, b[off:]) {
			t.Fatalf("Open at %d: %d bytes, want %d (the tail)", off, len(got), len(b)-int(off))
		}
	}
	if rc, _, err := s.Open(context.Background(), sum, 70_001); err == nil {
		rc.Close()
		t.Fatal("Open past the end succeeded")
	}
}

func testMissing(t *testing.T, s blobstore.Store, _ Options) {
	sum := Sum([]byte("never stored"))
	mustNotFound(t, s, sum)
	if err := s.Delete(context.Background(), sum); err != nil {
		t.Fatalf("Delete of a missing blob: %v", err)
	}
}

func testWrongBytes(t *testing.T, s blobstore.Store, _ Options) {
	claimed := Sum([]byte("the announced bytes"))
	bad := []byte("other bytes of the same size")
	err := s.Put(context.Background(), claimed, bytes.NewReader(bad), int64(len(bad)))
	var dm *blobstore.DigestMismatchError
	if !errors.As(err, &dm) || !errors.Is(err, errdefs.ErrDigestMismatch) {
		t.Fatalf("Put of wrong bytes: got %v, want *DigestMismatchError", err)
	}
	mustNotFound(t, s, claimed)
	// Same size, one byte flipped: a size check alone would pass it.
	good := payload(3, 50_000)
	flipped := append([]byte{}, good...)
	flipped[25_000] ^= 1
	if err := s.Put(context.Background(), Sum(good), bytes.NewReader(flipped), int64(len(flipped))); !errors.As(err, &dm) {
		t.Fatalf("Put of a flipped byte: got %v, want *DigestMismatchError", err)
	}
	mustNotFound(t, s, Sum(good))
}

func testWrongSize(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(4, 10_000)
	sum := Sum(b)
	var sm *blobstore.SizeMismatchError
	if err := s.Put(context.Background(), sum, bytes.NewReader(b[:9_000]), 10_000); !errors.As(err, &sm) {
		t.Fatalf("short body: got %v, want *SizeMismatchError", err)
	}
	mustNotFound(t, s, sum)
	if err := s.Put(context.Background(), sum, bytes.NewReader(b), 9_000); !errors.As(err, &sm) {
		t.Fatalf("long body: got %v, want *SizeMismatchError", err)
	}
	mustNotFound(t, s, sum)
}

func testUnknownSize(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(5, 33_333)
	sum := Sum(b)
	if err := s.Put(context.Background(), sum, bytes.NewReader(b), -1); err != nil {
		t.Fatalf("Put with size -1: %v", err)
	}
	if info, err := s.Stat(context.Background(), sum); err != nil || info.Size != int64(len(b)) {
		t.Fatalf("Stat = %+v, %v", info, err)
	}
}

func testEmpty(t *testing.T, s blobstore.Store, _ Options) {
	sum := put(t, s, nil)
	if sum != "d41d8cd98f00b204e9800998ecf8427e" {
		t.Fatalf("empty MD5 %s", sum)
	}
	got, info := readAll(t, s, sum, 0)
	if len(got) != 0 || info.Size != 0 {
		t.Fatalf("empty blob read %d bytes, size %d", len(got), info.Size)
	}
}

func testInvalidNames(t *testing.T, s blobstore.Store, _ Options) {
	b := []byte("x")
	for _, name := range []string{"", "../x", "../../etc/passwd", strings.ToUpper(Sum(b)), Sum(b)[:31], Sum(b) + "0",
		"d41d8cd98f00b204e9800998ecf8427g", "a/" + Sum(b)[2:], " " + Sum(b)[1:]} {
		var inv *blobstore.InvalidDigestError
		ctx := context.Background()
		if err := s.Put(ctx, name, bytes.NewReader(b), 1); !errors.As(err, &inv) {
			t.Errorf("Put(%q): got %v, want *InvalidDigestError", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.As(err, &inv) {
			t.Errorf("Stat(%q): got %v, want *InvalidDigestError", name, err)
		}
		if rc, _, err := s.Open(ctx, name, 0); !errors.As(err, &inv) {
			if rc != nil {
				rc.Close()
			}
			t.Errorf("Open(%q): got %v, want *InvalidDigestError", name, err)
		}
		if err := s.Delete(ctx, name); !errors.As(err, &inv) {
			t.Errorf("Delete(%q): got %v, want *InvalidDigestError", name, err)
		}
	}
	if got := walk(t, s); len(got) != 0 {
		t.Fatalf("invalid names left blobs: %v", got)
	}
}

func testPutExisting(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(6, 20_000)
	sum := put(t, s, b)
	// A second Put of the same name succeeds and never replaces the blob,
	// whatever the reader holds.
	if err := s.Put(context.Background(), sum, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatalf("second Put: %v", err)
	}
	got, _ := readAll(t, s, sum, 0)
	if !bytes.Equal(got, b) {
		t.Fatal("content changed after a second Put")
	}
}

func testConcurrentPuts(t *testing.T, s blobstore.Store, o Options) {
	b := payload(7, 300_000)
	sum := Sum(b)
	var wg sync.WaitGroup
	errs := make(chan error, o.Concurrency)
	for i := 0; i < o.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- s.Put(context.Background(), sum, bytes.NewReader(b), int64(len(b)))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Put: %v", err)
		}
	}
	got, _ := readAll(t, s, sum, 0)
	if !bytes.Equal(got, b) {
		t.Fatal("concurrent Puts left wrong content")
	}
	if w := walk(t, s); len(w) != 1 || w[0] != fmt.Sprintf("%s:%d", sum, len(b)) {
		t.Fatalf("Walk after concurrent Puts = %v, want exactly one blob", w)
	}
}

func walk(t *testing.T, s blobstore.Store) []string {
	t.Helper()
	var out []string
	if err := s.Walk(context.Background(), func(i blobstore.Info) error {
		out = append(out, fmt.Sprintf("%s:%d", i.MD5, i.Size))
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	sort.Strings(out)
	return out
}

func testWalkAndDelete(t *testing.T, s blobstore.Store, _ Options) {
	var want []string
	var sums []string
	for i := 0; i < 5; i++ {
		b := payload(uint64(10+i), 1000+i)
		sums = append(sums, put(t, s, b))
		want = append(want, fmt.Sprintf("%s:%d", Sum(b), len(b)))
	}
	sort.Strings(want)
	if got := walk(t, s); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("Walk = %v, want %v", got, want)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(context.Background(), func(blobstore.Info) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("Walk did not stop at fn's error: err %v after %d calls", err, n)
	}
	if err := s.Delete(context.Background(), sums[2]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	mustNotFound(t, s, sums[2])
	if got := walk(t, s); len(got) != 4 {
		t.Fatalf("Walk after Delete = %v, want 4 blobs", got)
	}
	if err := s.Delete(context.Background(), sums[2]); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
}

type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	if c.n <= 0 {
		c.cancel()
	}
	if len(p) > 4096 {
		p = p[:4096]
	}
	n, err := c.r.Read(p)
	c.n -= n
	return n, err
}

func testCancelledPut(t *testing.T, s blobstore.Store, _ Options) {
	b := payload(8, 1<<20)
	sum := Sum(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.Put(ctx, sum, &cancelAfter{r: bytes.NewReader(b), n: 64 << 10, cancel: cancel}, int64(len(b)))
	if err == nil {
		t.Fatal("Put succeeded although its context was cancelled mid-stream")
	}
	mustNotFound(t, s, sum)
	if got := walk(t, s); len(got) != 0 {
		t.Fatalf("a cancelled Put left %v", got)
	}
}

func testLarge(t *testing.T, s blobstore.Store, o Options) {
	b := payload(9, o.LargeSize)
	sum := put(t, s, b)
	got, _ := readAll(t, s, sum, 0)
	if !bytes.Equal(got, b) {
		t.Fatalf("large blob: read %d bytes, not the %d put", len(got), len(b))
	}
	tail, _ := readAll(t, s, sum, int64(o.LargeSize-12345))
	if !bytes.Equal(tail, b[o.LargeSize-12345:]) {
		t.Fatal("large blob: tail read differs")
	}
}
