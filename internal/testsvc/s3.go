package testsvc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Server is a real S3-compatible server for a test: versitygw serving its
// posix backend from a temporary directory on a loopback port, with static
// credentials and one bucket. It stops when the test ends.
type S3Server struct {
	// Endpoint is the base URL, http://127.0.0.1:<port>.
	Endpoint string
	// Bucket exists and is empty when StartS3 returns.
	Bucket    string
	AccessKey string
	SecretKey string
	Region    string
	// Root is the posix backend's directory: object key k of Bucket is the
	// file Root/Bucket/k (see ObjectPath).
	Root string

	t    testing.TB
	bin  string
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *syncBuffer
}

// How long a starting server may take to answer: generous, since the
// machine may be busy; the wait ends as soon as the server answers.
const s3StartDeadline = 2 * time.Minute

// StartS3 starts versitygw (installing it on first use) and creates the
// bucket "models". It fails the test if the server cannot be had.
func StartS3(t testing.TB) *S3Server {
	t.Helper()
	s := &S3Server{
		Bucket:    "models",
		AccessKey: "modelcache-test",
		SecretKey: randomHex(t, 20),
		Region:    "us-east-1",
		Root:      t.TempDir(),
		t:         t,
		bin:       Versitygw().Path(t),
	}
	t.Cleanup(s.Stop)
	var err error
	for try := 0; try < 3; try++ {
		s.addr = freeLoopbackAddr(t)
		s.Endpoint = "http://" + s.addr
		if err = s.start(); err == nil {
			break
		}
		if !errors.Is(err, errExitedEarly) {
			break
		}
		// Most likely another process took the port in between: take another.
	}
	if err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), s3StartDeadline)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("create bucket %s on versitygw: %v\n%s", s.Bucket, err, s.log.String())
	}
	return s
}

var errExitedEarly = errors.New("versitygw exited before it answered")

func (s *S3Server) start() error {
	if err := os.MkdirAll(s.Root, 0o755); err != nil {
		return err
	}
	cmd := exec.Command(s.bin,
		"--port", s.addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--keep-alive",
		"--quiet",
		"posix", s.Root)
	cmd.Env = cleanVGWEnv(os.Environ())
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()

	// Ready = the port answers HTTP. Poll that condition until the deadline
	// or until the process exits.
	deadline := time.Now().Add(s3StartDeadline)
	for {
		if answers(s.addr) {
			return nil
		}
		select {
		case <-done:
			return fmt.Errorf("%w (%s): %s", errExitedEarly, cmd.ProcessState, log.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return fmt.Errorf("versitygw did not answer on %s within %s: %s", s.addr, s3StartDeadline, log.String())
		}
	}
}

// answers reports whether an HTTP server answers a request on addr.
func answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		return false
	}
	buf := make([]byte, 5)
	n, _ := c.Read(buf)
	return n == 5 && string(buf) == "HTTP/"
}

// Stop ends the server (SIGTERM, then SIGKILL) and waits for it. Objects
// stay in Root; Start serves them again. Stopping a stopped server is a no-op.
func (s *S3Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Start serves Root again on the same address after Stop.
func (s *S3Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		return
	}
	if err := s.start(); err != nil {
		s.t.Fatalf("restart versitygw on %s: %v", s.addr, err)
	}
}

// Addr is host:port.
func (s *S3Server) Addr() string { return s.addr }

// ObjectPath is the backend file of key in the bucket: overwriting it
// corrupts the object behind the server's back.
func (s *S3Server) ObjectPath(key string) string {
	return filepath.Join(s.Root, s.Bucket, filepath.FromSlash(key))
}

// Log is what the server printed so far.
func (s *S3Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return ""
	}
	return s.log.String()
}

// Client is an S3 client with the server's credentials, for tests that look
// into or tamper with the bucket independently of the code under test.
func (s *S3Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatalf("S3 client for %s: %v", s.Endpoint, err)
	}
	return c
}

// Env is the INFERENCE_MODELS_MODEL_BLOB_CACHE_* environment that points a
// modelcache or inference-models process at this server.
func (s *S3Server) Env(prefix string) map[string]string {
	const p = "INFERENCE_MODELS_MODEL_BLOB_CACHE_"
	return map[string]string{
		p + "ENABLED":           "true",
		p + "BUCKET":            s.Bucket,
		p + "PREFIX":            prefix,
		p + "ENDPOINT_URL":      s.Endpoint,
		p + "REGION":            s.Region,
		p + "ADDRESSING_STYLE":  "path",
		p + "ACCESS_KEY_ID":     s.AccessKey,
		p + "SECRET_ACCESS_KEY": s.SecretKey,
	}
}

// cleanVGWEnv drops variables versitygw would read instead of its flags.
func cleanVGWEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VGW_") || strings.HasPrefix(name, "ROOT_ACCESS_KEY") ||
			strings.HasPrefix(name, "ROOT_SECRET") || name == "LOGFILE" || name == "WEBHOOK" {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free loopback port: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b.Len() > 1<<20 {
		return len(p), nil // keep the head; a runaway log must not eat memory
	}
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
