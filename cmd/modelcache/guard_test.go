package main

import (
	"bufio"
	"bytes"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const (
	cliKeyA = "rk-cli-guard-A-7e6d5c4b3a291807"
	cliKeyB = "rk-cli-guard-B-18273645aabbccdd"
	cliX    = "acme-ws/parcel-detector/7"
	cliY    = "acme-ws/fruit-classifier/2"
)

// startGuardRegistry runs `modelcache registry serve` with an access.json
// (A: X and Y; B: Y; anonymous: nothing) and returns its URL and a stop
// function that ends the process (the upstream goes down).
func startGuardRegistry(t *testing.T, bin string) (string, func()) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "registry")
	copyDir(t, "../../examples/registry", root)
	access := `{"keys": [{"key": "` + cliKeyA + `", "models": ["` + cliX + `", "` + cliY + `"]},
	                     {"key": "` + cliKeyB + `", "models": ["` + cliY + `"]}]}`
	if err := os.WriteFile(filepath.Join(root, "access.json"), []byte(access), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "registry", "serve", "--root", root, "--listen", "127.0.0.1:0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "INFERENCE_HOME=" + t.TempDir()}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cmd.Process.Signal(os.Interrupt)
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	line, err := bufio.NewReader(out).ReadString('\n')
	i := strings.Index(line, "http://")
	if err != nil || i < 0 {
		t.Fatalf("registry did not start: %q %v", line, err)
	}
	return strings.TrimSpace(line[i:]), stop
}

// TestCLIPullGuard: pull --guard with the key from --api-key-file or the
// environment, against a real registry process; then with the registry
// stopped, deny by default and the grace period from the flag or the
// environment. No key appears in any output or file.
func TestCLIPullGuard(t *testing.T) {
	bin := e2eBinary(t)
	url, stop := startGuardRegistry(t, bin)
	dir := t.TempDir()
	keyFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fileA, fileB := keyFile("a.key", cliKeyA+"\n"), keyFile("b.key", cliKeyB)
	e := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "cache"), env: []string{"ROBOFLOW_API_HOST=" + url, "API_CALLS_MAX_TRIES=1"}}
	var outputs strings.Builder
	pull := func(env []string, args ...string) (string, int) {
		t.Helper()
		saved := e.env
		e.env = append(append([]string{}, e.env...), env...)
		defer func() { e.env = saved }()
		out, errOut, code := e.run(append([]string{"pull", "--runtime", "../../examples/runtimes/cpu-onnx.json", "--log-level", "debug"}, args...)...)
		outputs.WriteString(out + errOut)
		return out + errOut, code
	}
	expect := func(what string, out string, code, want int, contains ...string) {
		t.Helper()
		if code != want {
			t.Errorf("%s: exit %d, want %d:\n%s", what, code, want, out)
		}
		for _, c := range contains {
			if !strings.Contains(out, c) {
				t.Errorf("%s: output lacks %q:\n%s", what, c, out)
			}
		}
	}

	out, code := pull(nil, cliX, "--guard", "--api-key-file", fileA)
	expect("A pulls X", out, code, 0, "downloaded and verified", "msg=\"access decision\"", "decision=allowed")
	out, code = pull(nil, cliX, "--guard", "--api-key-file", fileB)
	expect("B pulls X (cached by A)", out, code, 1, cliX, "403", "denied for tenant")
	out, code = pull(nil, cliX, "--guard")
	expect("anonymous pulls X", out, code, 1, "anonymous", "401")
	out, code = pull([]string{"ROBOFLOW_API_KEY=" + cliKeyB}, cliY, "--guard")
	expect("B pulls Y, key from the environment", out, code, 0)
	out, code = pull([]string{"ROBOFLOW_API_KEY=" + cliKeyB}, cliX, "--guard", "--api-key-file", fileA)
	expect("the key file wins over the environment", out, code, 0, "auto-resolution cache hit")
	out, code = pull(nil, cliX, "--guard", "--api-key-file", "-")
	expect("--api-key-file - without input", out, code, 2, "empty")

	stop() // the upstream goes down
	out, code = pull(nil, cliX, "--guard", "--api-key-file", fileA)
	expect("upstream down, deny", out, code, 1, "could not verify")
	out, code = pull(nil, cliX, "--guard", "--api-key-file", fileA, "--offline-grace", "1h")
	expect("upstream down, --offline-grace 1h", out, code, 0, "auto-resolution cache hit")
	out, code = pull([]string{"MODELCACHE_GUARD_OFFLINE_GRACE=1h"}, cliX, "--guard", "--api-key-file", fileA)
	expect("upstream down, grace from the environment", out, code, 0)
	out, code = pull([]string{"MODELCACHE_GUARD_OFFLINE_GRACE=1h"}, cliX, "--guard", "--api-key-file", fileA, "--offline-grace", "0")
	expect("--offline-grace 0 overrides the environment", out, code, 1)
	out, code = pull([]string{"MODELCACHE_GUARD_OFFLINE_GRACE=1h"}, cliX, "--guard", "--api-key-file", fileB)
	expect("upstream down, grace, B never verified for X", out, code, 1, cliX)
	out, code = pull([]string{"OFFLINE_MODE=true"}, cliY, "--guard", "--api-key-file", fileB)
	expect("OFFLINE_MODE, deny", out, code, 1, "OFFLINE_MODE")

	assertNoKeys(t, e.home, outputs.String())
}

func TestCLIGuardUsage(t *testing.T) {
	bin := e2eBinary(t)
	dir := t.TempDir()
	e := &e2eEnv{t: t, bin: bin, home: filepath.Join(dir, "cache"), env: []string{"ROBOFLOW_API_HOST=http://127.0.0.1:9"}}
	empty := filepath.Join(dir, "empty.key")
	twoLines := filepath.Join(dir, "two.key")
	os.WriteFile(empty, []byte("\n"), 0o600)
	os.WriteFile(twoLines, []byte(cliKeyA+"\n"+cliKeyB+"\n"), 0o600)
	localModel := filepath.Join(dir, "local-model")
	os.MkdirAll(localModel, 0o755)
	os.WriteFile(filepath.Join(localModel, "model_config.json"), []byte("{}"), 0o644)
	for what, args := range map[string][]string{
		"grace without guard": {"pull", cliX, "--offline-grace", "1h"},
		"negative grace":      {"pull", cliX, "--guard", "--offline-grace", "-1m"},
		"bad grace":           {"pull", cliX, "--guard", "--offline-grace", "soon"},
		"missing key file":    {"pull", cliX, "--api-key-file", filepath.Join(dir, "nope")},
		"empty key file":      {"pull", cliX, "--api-key-file", empty},
		"two keys":            {"pull", cliX, "--api-key-file", twoLines},
		"directory":           {"pull", cliX, "--api-key-file", dir},
		"local dir":           {"pull", localModel, "--guard"},
		"misspelt flag":       {"pull", cliX, "--guard", "--offline-grase", "1h"},
	} {
		out, errOut, code := e.run(args...)
		if code != 2 || !strings.HasPrefix(errOut, "modelcache: ") {
			t.Errorf("%s: exit %d, want 2: %s%s", what, code, out, errOut)
		}
		assertNoKeys(t, e.home, out+errOut)
	}
}

func TestReadAPIKeyFile(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte("  "+cliKeyA+"\r\n"), 0o644)
	var logs bytes.Buffer
	key, err := readAPIKeyFile(open, nil, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil || key != cliKeyA {
		t.Fatalf("got %q, %v", key, err)
	}
	if !strings.Contains(logs.String(), "chmod 600") || strings.Contains(logs.String(), cliKeyA) {
		t.Errorf("a world-readable key file is not warned about (or the warning holds the key): %s", logs.String())
	}
	key, err = readAPIKeyFile("-", strings.NewReader(cliKeyB+"\n"), slog.New(slog.DiscardHandler))
	if err != nil || key != cliKeyB {
		t.Errorf("stdin: %q, %v", key, err)
	}
	_, err = readAPIKeyFile("-", strings.NewReader(cliKeyA+" "+cliKeyB), slog.New(slog.DiscardHandler))
	if err == nil || strings.Contains(err.Error(), cliKeyA) {
		t.Errorf("two words: %v", err)
	}
}

func assertNoKeys(t *testing.T, home, output string) {
	t.Helper()
	for _, k := range []string{cliKeyA, cliKeyB} {
		if strings.Contains(output, k) {
			t.Errorf("the output contains a key")
		}
	}
	filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		b := []byte(p)
		if d.Type().IsRegular() {
			c, _ := os.ReadFile(p)
			b = append(b, c...)
		}
		for _, k := range []string{cliKeyA, cliKeyB} {
			if bytes.Contains(b, []byte(k)) {
				t.Errorf("%s holds a key", p)
			}
		}
		return nil
	})
}
