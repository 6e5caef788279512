package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/modelcache/modelcache/blobstore/blobstoretest"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// BenchmarkUpload compares the verified upload (Replace: hashing, 16 MiB
// parts with Content-MD5, 4 in flight, completed after the MD5 check) with
// minio-go's own PutObject of the same bytes (the baseline), on versitygw.
//
//	go test ./internal/tier/s3store -run '^$' -bench Upload -benchtime 5x -count 5
func BenchmarkUpload(b *testing.B) {
	srv := testsvc.StartS3(b)
	s := benchStore(b, srv)
	blob := payload(42, 64<<20)
	sum := blobstoretest.Sum(blob)
	ctx := context.Background()
	b.Run("verified", func(b *testing.B) {
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := s.Replace(ctx, sum, bytes.NewReader(blob), int64(len(blob))); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("minio-putobject", func(b *testing.B) {
		c := srv.Client(b)
		b.SetBytes(int64(len(blob)))
		for b.Loop() {
			if _, err := c.PutObject(ctx, srv.Bucket, "baseline/"+sum, bytes.NewReader(blob), int64(len(blob)),
				minio.PutObjectOptions{PartSize: 16 << 20, NumThreads: 4}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRestore compares fetching a presigned URL in 4 parallel ranges
// (what the engine does with a Source) with one GET stream (the baseline).
func BenchmarkRestore(b *testing.B) {
	srv := testsvc.StartS3(b)
	s := benchStore(b, srv)
	blob := payload(43, 64<<20)
	sum := blobstoretest.Sum(blob)
	ctx := context.Background()
	if err := s.Put(ctx, sum, bytes.NewReader(blob), int64(len(blob))); err != nil {
		b.Fatal(err)
	}
	u, err := s.PresignGet(ctx, sum, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	get := func(b *testing.B, from, to int64) {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", from, to))
		resp, err := s.HTTPClient().Do(req)
		if err != nil {
			b.Error(err)
			return
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || n != to-from+1 {
			b.Errorf("range %d-%d: %d bytes, %v", from, to, n, err)
		}
	}
	for _, streams := range []int{1, 4} {
		b.Run(fmt.Sprintf("streams=%d", streams), func(b *testing.B) {
			b.SetBytes(int64(len(blob)))
			for b.Loop() {
				var wg sync.WaitGroup
				part := int64(len(blob)) / int64(streams)
				for i := range streams {
					wg.Add(1)
					go func() {
						defer wg.Done()
						to := int64(i+1)*part - 1
						if i == streams-1 {
							to = int64(len(blob)) - 1
						}
						get(b, int64(i)*part, to)
					}()
				}
				wg.Wait()
			}
		})
	}
}

func benchStore(b *testing.B, srv *testsvc.S3Server) *Store {
	s, err := New(Options{Endpoint: srv.Endpoint, Bucket: srv.Bucket, Prefix: "bench", Region: srv.Region, Addressing: "path",
		AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey, StallTimeout: time.Minute, ConnectTimeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	return s
}
