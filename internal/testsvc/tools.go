// Package testsvc provides the real third-party servers and clients the
// tests start (an S3-compatible server, an OCI registry, an OCI client), at
// pinned versions. A tool is built once with `go install module@version`
// into a per-user cache directory and reused by every later run; .ci/run
// installs them all up front (go run ./internal/testsvc/install), and a test
// that finds its tool missing installs it itself, so `go test ./...` works on
// a machine that has only Go.
package testsvc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Tool is a pinned binary installed with go install.
type Tool struct {
	Name    string // binary name
	Package string // main package path
	Version string // module version
}

// The tools the tests use, at the versions .ci/run installs.
func Versitygw() Tool {
	return Tool{"versitygw", "github.com/versity/versitygw/cmd/versitygw", "v1.8.0"}
}

// Registry is the CNCF distribution registry.
func Registry() Tool {
	return Tool{"registry", "github.com/distribution/distribution/v3/cmd/registry", "v3.1.2"}
}

// ORAS is the oras CLI, an independent OCI client for interop checks.
func ORAS() Tool { return Tool{"oras", "oras.land/oras/cmd/oras", "v1.3.6"} }

// All lists every tool.
func All() []Tool { return []Tool{Versitygw(), Registry(), ORAS()} }

// EnvToolsDir overrides the cache directory of installed tools.
const EnvToolsDir = "MODELCACHE_TOOLS_DIR"

// Dir is where tools are installed: $MODELCACHE_TOOLS_DIR, else
// <user cache dir>/modelcache-tools.
func Dir() (string, error) {
	if d := os.Getenv(EnvToolsDir); d != "" {
		return filepath.Abs(d)
	}
	c, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory for test tools (set %s): %w", EnvToolsDir, err)
	}
	return filepath.Join(c, "modelcache-tools"), nil
}

// BinPath is where the tool's binary sits once installed.
func (tl Tool) BinPath() (string, error) {
	d, err := Dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, tl.Name+"-"+tl.Version, tl.Name), nil
}

// Install makes sure the binary exists, building it if needed. Concurrent
// callers (parallel test packages, .ci/run) build it once: the build runs
// under an flock in the tools directory and publishes by rename.
func (tl Tool) Install(ctx context.Context) (string, error) {
	bin, err := tl.BinPath()
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, nil
	}
	dir := filepath.Dir(filepath.Dir(bin))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("test tools directory %s: %w", dir, err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, "."+tl.Name+"-"+tl.Version+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lf.Name(), err)
	}
	defer unix.Flock(int(lf.Fd()), unix.LOCK_UN)
	if isExecutable(bin) {
		return bin, nil
	}
	tmp, err := os.MkdirTemp(dir, "."+tl.Name+"-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "install", tl.Package+"@"+tl.Version)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-mod=mod", "CGO_ENABLED=0")
	cmd.Dir = tmp
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go install %s@%s failed after %s (needs the Go module proxy): %w\n%s",
			tl.Package, tl.Version, time.Since(start).Round(time.Second), err, out.Bytes())
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, tl.Name), bin); err != nil {
		return "", fmt.Errorf("install %s: %w", bin, err)
	}
	return bin, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Path returns the tool's binary for a test, installing it on first use. It
// fails the test (never skips it) when the tool cannot be had.
func (tl Tool) Path(t interface {
	Helper()
	Fatalf(string, ...any)
	Logf(string, ...any)
}) string {
	t.Helper()
	bin, err := tl.BinPath()
	if err == nil && isExecutable(bin) {
		return bin
	}
	t.Logf("installing %s %s for the tests (once per machine; .ci/run does it up front)", tl.Name, tl.Version)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	bin, err = tl.Install(ctx)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return bin
}
