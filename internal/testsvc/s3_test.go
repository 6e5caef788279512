package testsvc

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestS3ServerRoundTrip: the helper's server speaks S3 with its
// credentials, keeps objects as files under Root, refuses a wrong secret,
// and serves the same objects again after Stop and Start.
func TestS3ServerRoundTrip(t *testing.T) {
	s := StartS3(t)
	ctx := context.Background()
	c := s.Client(t)
	body := []byte("hello, fleet")
	if _, err := c.PutObject(ctx, s.Bucket, "p/x", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got, err := os.ReadFile(s.ObjectPath("p/x")); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("backend file: %q, %v", got, err)
	}

	wrong, err := minio.New(s.Addr(), &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, "not-the-secret", ""), Region: s.Region, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wrong.StatObject(ctx, s.Bucket, "p/x", minio.StatObjectOptions{}); err == nil {
		t.Fatal("a wrong secret was accepted")
	}

	s.Stop()
	if answers(s.Addr()) {
		t.Fatal("server still answers after Stop")
	}
	s.Stop() // idempotent
	s.Start()
	o, err := c.GetObject(ctx, s.Bucket, "p/x", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, err := io.ReadAll(o); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after restart: %q, %v", got, err)
	}
}
