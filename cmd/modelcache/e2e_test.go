package main

import (
	"bufio"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	e2eBinOnce sync.Once
	e2eBin     string
	e2eBinErr  error
)

// e2eBinary builds the real binary once per test run.
func e2eBinary(t *testing.T) string {
	t.Helper()
	e2eBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "modelcache-e2e-bin")
		if err != nil {
			e2eBinErr = err
			return
		}
		e2eBin = filepath.Join(dir, "modelcache")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", e2eBin, ".").CombinedOutput()
		if err != nil {
			e2eBinErr = &buildError{string(out)}
		}
	})
	if e2eBinErr != nil {
		t.Fatal(e2eBinErr)
	}
	return e2eBin
}

type buildError struct{ out string }

func (e *buildError) Error() string { return "go build: " + e.out }

// copyDir copies a directory tree (regular files and dirs only).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// startRegistry runs `modelcache registry serve` as a real process on a free
// loopback port and returns its base URL.
func startRegistry(t *testing.T, bin, root string) string {
	t.Helper()
	cmd := exec.Command(bin, "registry", "serve", "--root", root, "--listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "INFERENCE_HOME=" + t.TempDir()}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("registry did not start: %v", err)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("registry start line: %q", line)
	}
	return strings.TrimSpace(line[i:])
}

type e2eEnv struct {
	t    *testing.T
	bin  string
	home string
	env  []string
}

func (e *e2eEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "INFERENCE_HOME=" + e.home}, e.env...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		e.t.Fatal(err)
	}
	return so.String(), se.String(), cmd.ProcessState.ExitCode()
}

func (e *e2eEnv) pull(extraEnv []string, args ...string) (packageJSON, string) {
	e.t.Helper()
	saved := e.env
	e.env = append(append([]string{}, e.env...), extraEnv...)
	defer func() { e.env = saved }()
	out, errOut, code := e.run(append([]string{"pull", "--json", "--runtime", "../../examples/runtimes/cpu-onnx.json", "--log-level", "warn"}, args...)...)
	if code != 0 {
		e.t.Fatalf("pull %v: exit %d: %s", args, code, errOut)
	}
	var p packageJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		e.t.Fatalf("pull output: %v\n%s", err, out)
	}
	return p, errOut
}

func duBytes(t *testing.T, path string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sb", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Fields(string(out))[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The product path end to end: the real binary against a real registry
// server process on loopback, in a temporary INFERENCE_HOME.
func TestEndToEndCLI(t *testing.T) {
	bin := e2eBinary(t)
	regRoot := filepath.Join(t.TempDir(), "registry")
	copyDir(t, "../../examples/registry", regRoot)
	url := startRegistry(t, bin, regRoot)
	e := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "cache"), env: []string{"ROBOFLOW_API_HOST=" + url, "ROBOFLOW_API_KEY=key-a"}}

	cold, _ := e.pull(nil, "parcel-det")
	if cold.FromCache || cold.PackageID != "detonnxfp32dyn" || cold.CanonicalModelID != "acme-ws/parcel-detector/7" {
		t.Fatalf("cold pull: %+v", cold)
	}
	warm, _ := e.pull(nil, "parcel-det")
	if !warm.FromCache || warm.Dir != cold.Dir {
		t.Fatalf("warm pull not served by the auto-resolution cache: %+v", warm)
	}
	if p, _ := e.pull([]string{"ROBOFLOW_API_KEY=key-b"}, "parcel-det"); p.FromCache {
		t.Error("another API key was served the first key's resolution")
	}
	if p, _ := e.pull(nil, "parcel-det", "--no-resolution-cache"); p.FromCache {
		t.Error("--no-resolution-cache still used the cache")
	}
	if p, _ := e.pull([]string{"AUTO_LOADER_CACHE_EXPIRATION_MINUTES=0"}, "parcel-det"); p.FromCache {
		t.Error("TTL 0 did not expire the entry")
	}

	t.Run("ls and du agree with du -b", func(t *testing.T) {
		e.pull(nil, "acme-ws/fruit-classifier/2")
		out, errOut, code := e.run("du", "--json")
		var du struct {
			Total int64 `json:"total_bytes"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &du) != nil {
			t.Fatalf("du: exit %d %s", code, errOut)
		}
		if want := duBytes(t, e.home); du.Total != want {
			t.Errorf("modelcache du says %d bytes, du -sb says %d", du.Total, want)
		}
		out, _, code = e.run("ls", "--json")
		var ls struct {
			Models []struct {
				ModelID  string `json:"model_id"`
				Packages []struct {
					PackageID string `json:"package_id"`
					Dir       string `json:"dir"`
					Bytes     int64  `json:"dir_bytes"`
					State     string `json:"state"`
				} `json:"packages"`
			} `json:"models"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &ls) != nil || len(ls.Models) != 2 {
			t.Fatalf("ls: exit %d: %s", code, out)
		}
		for _, m := range ls.Models {
			for _, p := range m.Packages {
				if p.State != "complete" {
					t.Errorf("%s/%s: state %s", m.ModelID, p.PackageID, p.State)
				}
				if want := duBytes(t, p.Dir); p.Bytes != want {
					t.Errorf("%s/%s: ls says %d bytes, du -sb of its dir says %d", m.ModelID, p.PackageID, p.Bytes, want)
				}
			}
		}
	})

	t.Run("verify finds a corrupt blob and repair fixes it", func(t *testing.T) {
		blob, err := filepath.EvalSymlinks(cold.Files["weights.onnx"])
		if err != nil {
			t.Fatal(err)
		}
		good, _ := os.ReadFile(blob)
		bad := append([]byte{}, good...)
		bad[len(bad)/2] ^= 0xff
		if err := os.WriteFile(blob, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, code := e.run("verify", "--full"); code != 1 {
			t.Fatalf("verify of a corrupt cache exited %d, want 1", code)
		}
		if _, errOut, code := e.run("verify", "--full", "--repair"); code != 1 && code != 0 {
			t.Fatalf("verify --repair: exit %d: %s", code, errOut)
		}
		// The bad blob is gone; the next pull downloads it again and all verifies.
		e.pull(nil, "parcel-det", "--no-resolution-cache")
		if got, _ := os.ReadFile(blob); string(got) != string(good) {
			t.Fatal("repaired blob does not hold the original bytes")
		}
		if out, errOut, code := e.run("verify", "--full"); code != 0 {
			t.Fatalf("verify after repair: exit %d\n%s%s", code, out, errOut)
		}
	})

	t.Run("purge reclaims exactly what it reports", func(t *testing.T) {
		before := duBytes(t, e.home)
		out, errOut, code := e.run("purge", "acme-ws/fruit-classifier/2", "--json")
		var rep struct {
			Reclaimed int64 `json:"reclaimed_bytes"`
		}
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("purge: exit %d: %s %s", code, out, errOut)
		}
		after := duBytes(t, e.home)
		if rep.Reclaimed <= 0 {
			t.Fatalf("purge reclaimed %d bytes", rep.Reclaimed)
		}
		if before-after != rep.Reclaimed {
			t.Errorf("purge reported %d bytes, du -sb shrank by %d", rep.Reclaimed, before-after)
		}
		out, _, _ = e.run("gc", "--dry-run", "--grace", "0s", "--json")
		var gc struct {
			Reclaimable int64 `json:"reclaimable_bytes"`
		}
		json.Unmarshal([]byte(out), &gc)
		if gc.Reclaimable != 0 {
			t.Errorf("purge left %d bytes of orphans for gc: %s", gc.Reclaimable, out)
		}
		if _, _, code := e.run("verify"); code != 0 {
			t.Error("cache does not verify after purge")
		}
	})

	t.Run("fallback to the next package when the first fails", func(t *testing.T) {
		// Changing a served file after start-up makes the server answer 500 for it.
		w := filepath.Join(regRoot, "models", "parcel-detector", "packages", "detonnxfp32dyn", "files", "weights.onnx")
		time.Sleep(10 * time.Millisecond)
		if err := os.WriteFile(w, []byte("changed after start"), 0o644); err != nil {
			t.Fatal(err)
		}
		fresh := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "cache2"), env: e.env}
		p, errOut := fresh.pull(nil, "parcel-det")
		if p.PackageID != "dettorchfp32" {
			t.Fatalf("loaded %s, want the second-ranked dettorchfp32", p.PackageID)
		}
		if !strings.Contains(errOut, "detonnxfp32dyn") {
			t.Errorf("the first package's failure was not reported: %s", errOut)
		}
	})
}
