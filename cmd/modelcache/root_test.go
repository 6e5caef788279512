package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
)

// Slugs from on-disk-contract §4.1.
const (
	slugMyModel  = "v2-my-model-83fafb8ac0ed88eaaebd92414d983ae1"
	slugWsModel1 = "v2-workspace-model-1-85a770a510b42c707e2e6429eae1786c"
)

// execute runs the CLI in-process on a copy of cfg.
func execute(t *testing.T, cfg config.Config, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	root := newRootCmd(&cfg)
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err = root.Execute()
	return out.String(), errb.String(), err
}

func testConfig(home string) config.Config {
	c := config.Default()
	c.Home = home
	return c
}

func TestVersionText(t *testing.T) {
	out, _, err := execute(t, config.Default(), "version")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"modelcache ", "go: " + runtime.Version() + "\n", "module: github.com/modelcache/modelcache\n", "platform: " + runtime.GOOS + "/" + runtime.GOARCH + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output %q lacks %q", out, want)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	out, _, err := execute(t, config.Default(), "version", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got["version"] == "" || got["go_version"] != runtime.Version() || got["module"] != "github.com/modelcache/modelcache" {
		t.Errorf("version --json = %v", got)
	}
}

func TestPath(t *testing.T) {
	for _, tc := range []struct {
		home string
		args []string
		want string
	}{
		{"/srv/cache", []string{"my-model"}, "/srv/cache/models-cache/" + slugMyModel},
		{"/srv/cache", []string{"workspace/model/1"}, "/srv/cache/models-cache/" + slugWsModel1},
		{"/srv/cache", []string{"my-model", "pkg1"}, "/srv/cache/models-cache/" + slugMyModel + "/pkg1"},
		{"/srv/cache", []string{"my-model", "COM0"}, "/srv/cache/models-cache/" + slugMyModel + "/COM0"},
		{"//srv/cache", []string{"my-model"}, "//srv/cache/models-cache/" + slugMyModel}, // Home kept verbatim
		{"/", []string{"my-model"}, "/models-cache/" + slugMyModel},
	} {
		out, _, err := execute(t, testConfig(tc.home), append([]string{"path"}, tc.args...)...)
		if err != nil || out != tc.want+"\n" {
			t.Errorf("home %q, path %q: got %q, %v; want %q", tc.home, tc.args, out, err, tc.want)
		}
	}
}

// TestPathRejectsBadPackageIDs uses the rejected ids of on-disk-contract §4.2.
func TestPathRejectsBadPackageIDs(t *testing.T) {
	for _, id := range []string{"", "pkg-1", "pkg/1", "pkg.1", "..", "NUL", "COM1", strings.Repeat("a", 256), "pkg 1", "pkg/../1", "/my-package"} {
		out, _, err := execute(t, testConfig("/srv/cache"), "path", "my-model", id)
		if !errors.Is(err, errdefs.ErrInsecureIdentifier) || out != "" {
			t.Errorf("package id %q: out %q, err %v; want an insecure-identifier error and no output", id, out, err)
		}
	}
}

func TestPathArgs(t *testing.T) {
	for _, args := range [][]string{{"path"}, {"path", "a", "b", "c"}} {
		if _, _, err := execute(t, testConfig("/srv/cache"), args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if _, _, err := execute(t, testConfig("/srv/cache"), "path", "bad\xffid"); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Errorf("invalid UTF-8 model id: %v", err)
	}
}

func TestHomeFlag(t *testing.T) {
	wd, err := os.Getwd()
	if err == nil {
		wd, err = filepath.EvalSymlinks(wd) // relative paths resolve against getcwd(2)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ flag, want string }{
		{"/other", "/other"},
		{"/other/../x/", "/x"},
		{"rel", wd + "/rel"},
	} {
		out, _, err := execute(t, testConfig("/srv/cache"), "--home", tc.flag, "path", "my-model")
		if want := tc.want + "/models-cache/" + slugMyModel + "\n"; err != nil || out != want {
			t.Errorf("--home %q: got %q, %v; want %q", tc.flag, out, err, want)
		}
	}
	if _, _, err := execute(t, testConfig("/srv/cache"), "--home=", "path", "my-model"); err == nil {
		t.Error("--home= accepted")
	}
}

func TestWarningsAndLogLevel(t *testing.T) {
	cfg := testConfig("/srv/cache")
	cfg.Warnings = []string{"ROBOFLOW_REGION is odd"}
	_, stderr, err := execute(t, cfg, "version")
	if err != nil || !strings.Contains(stderr, "level=WARN") || !strings.Contains(stderr, "ROBOFLOW_REGION is odd") {
		t.Errorf("stderr %q, err %v; want the warning logged", stderr, err)
	}
	if _, stderr, _ := execute(t, cfg, "--log-level", "error", "version"); stderr != "" {
		t.Errorf("--log-level error still logged %q", stderr)
	}
	for _, bad := range []string{"loud", "info+2", ""} {
		if _, _, err := execute(t, cfg, "--log-level", bad, "version"); err == nil {
			t.Errorf("--log-level %q accepted", bad)
		}
	}
}

func TestUnknownCommand(t *testing.T) {
	if _, _, err := execute(t, config.Default(), "bogus"); err == nil {
		t.Error("unknown command accepted")
	}
}

func TestOneLine(t *testing.T) {
	err := errors.Join(errors.New(`A="x  y" bad`), errors.New("B bad"))
	if got := oneLine(err); got != `A="x  y" bad; B bad` {
		t.Errorf("oneLine = %q", got)
	}
}
