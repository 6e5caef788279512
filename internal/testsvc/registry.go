package testsvc

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// OCIRegistry is a running CNCF distribution registry (filesystem storage
// in a temp dir, plain HTTP on loopback).
type OCIRegistry struct {
	// Host is "127.0.0.1:PORT", the registry part of a reference.
	Host string
	// StorageDir holds the registry's data.
	StorageDir string
	cmd        *exec.Cmd
	logs       *lockedBuffer
	exited     chan error
}

// Logs returns what the registry printed (for failure messages).
func (r *OCIRegistry) Logs() string { return r.logs.String() }

type testingT interface {
	Helper()
	Fatalf(string, ...any)
	Logf(string, ...any)
	TempDir() string
	Cleanup(func())
}

// StartRegistry starts a registry for the test and stops it at its end.
// Readiness is a condition (GET /v2/ answers 200) with a generous deadline;
// a port lost to another process between choosing and binding is retried.
func StartRegistry(t testingT) *OCIRegistry {
	t.Helper()
	bin := Registry().Path(t)
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		r, err := startRegistry(bin, t.TempDir())
		if err == nil {
			t.Cleanup(r.stop)
			return r
		}
		lastErr = err
	}
	t.Fatalf("registry did not start: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func startRegistry(bin, dir string) (*OCIRegistry, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	storage := filepath.Join(dir, "storage")
	host := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, storage, host)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	r := &OCIRegistry{Host: host, StorageDir: storage, logs: &lockedBuffer{}}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	r.cmd.Stdout, r.cmd.Stderr = r.logs, r.logs
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- r.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	for {
		select {
		case err := <-exited:
			return nil, fmt.Errorf("registry exited: %v\n%s", err, r.logs)
		case <-ctx.Done():
			r.cmd.Process.Kill()
			<-exited
			return nil, fmt.Errorf("registry on %s not ready after 60s\n%s", host, r.logs)
		case <-time.After(20 * time.Millisecond): // poll interval, not a wait for time to pass
		}
		resp, err := client.Get("http://" + host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				r.exited = exited
				return r, nil
			}
		}
	}
}

func (r *OCIRegistry) stop() {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.cmd.Process.Kill()
		<-r.exited
	}
}

// lockedBuffer collects a child's output safely for concurrent reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
