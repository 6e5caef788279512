package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinary builds the real binary and runs it as a process: the build, the
// link-time version, config.Load (with .env) and the exit status are only
// exercised this way.
func TestBinary(t *testing.T) {
	goTool, err := exec.LookPath("go") // go test puts GOROOT/bin first on PATH
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "modelcache")
	build := exec.Command(goTool, "build", "-buildvcs=false", "-o", bin,
		"-ldflags", "-X github.com/modelcache/modelcache/internal/version.Version=v0.0.0-test", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// run starts the binary in dir with only PATH and the given variables, so the
	// developer's own INFERENCE_HOME or OFFLINE_MODE cannot leak in.
	run := func(t *testing.T, dir string, env []string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if _, isExit := err.(*exec.ExitError); err != nil && !isExit {
			t.Fatal(err)
		}
		return out.String(), errb.String(), cmd.ProcessState.ExitCode()
	}
	dir := t.TempDir()
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("version", func(t *testing.T) {
		out, _, code := run(t, dir, nil, "version")
		if code != 0 || !strings.HasPrefix(out, "modelcache v0.0.0-test\n") || !strings.Contains(out, "module: github.com/modelcache/modelcache\n") {
			t.Errorf("exit %d, output %q", code, out)
		}
		out, _, code = run(t, dir, nil, "version", "--json")
		var info struct{ Version, Module string }
		if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.Version != "v0.0.0-test" || info.Module != "github.com/modelcache/modelcache" {
			t.Errorf("exit %d, output %q, %v", code, out, err)
		}
	})

	t.Run("path", func(t *testing.T) {
		out, _, code := run(t, dir, []string{"INFERENCE_HOME=/srv/cache"}, "path", "my-model", "pkg1")
		if want := "/srv/cache/models-cache/" + slugMyModel + "/pkg1\n"; code != 0 || out != want {
			t.Errorf("exit %d, output %q, want %q", code, out, want)
		}
	})

	t.Run("dotenv", func(t *testing.T) {
		envDir := t.TempDir()
		if err := os.WriteFile(filepath.Join(envDir, ".env"), []byte("INFERENCE_HOME=relative/cache\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		realEnvDir, _ := filepath.EvalSymlinks(envDir)
		out, _, code := run(t, envDir, nil, "path", "my-model")
		if want := realEnvDir + "/relative/cache/models-cache/" + slugMyModel + "\n"; code != 0 || out != want {
			t.Errorf(".env: exit %d, output %q, want %q", code, out, want)
		}
		out, _, _ = run(t, envDir, []string{"INFERENCE_HOME=/set"}, "path", "my-model")
		if want := "/set/models-cache/" + slugMyModel + "\n"; out != want {
			t.Errorf("set variable vs .env: output %q, want %q", out, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct {
			env      []string
			args     []string
			code     int
			contains string
		}{
			{[]string{"OFFLINE_MODE=yes", "API_CALLS_TIMEOUT=5s"}, []string{"version"}, 2, "OFFLINE_MODE"},
			{nil, []string{"path", "my-model", "pkg-1"}, 1, `"pkg-1"`},
			{nil, []string{"bogus"}, 1, "bogus"},
		} {
			out, stderr, code := run(t, realDir, tc.env, tc.args...)
			if code != tc.code || out != "" || strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "modelcache: ") || !strings.Contains(stderr, tc.contains) {
				t.Errorf("%v %q: exit %d (want %d), stdout %q, stderr %q; want one line naming %s", tc.env, tc.args, code, tc.code, out, stderr, tc.contains)
			}
		}
	})
}
