package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A weights provider's strings (architecture, task type) carrying terminal
// escape sequences are printed escaped, never raw, by every output path:
// resolve --explain, a failing pull's error, a pull's text, its JSON.
func TestProviderStringsCannotControlTheTerminal(t *testing.T) {
	bin := e2eBinary(t)
	regRoot := filepath.Join(t.TempDir(), "registry")
	copyDir(t, "../../examples/registry", regRoot)
	mj := filepath.Join(regRoot, "models", "parcel-detector", "model.json")
	b, err := os.ReadFile(mj)
	if err != nil {
		t.Fatal(err)
	}
	evil := strings.Replace(string(b), `"model_architecture": "rfdetr"`, `"model_architecture": "rfdetr\u001b]0;pwned\u0007\u001b[2J"`, 1)
	evil = strings.Replace(evil, `"task_type": "object-detection"`, `"task_type": "object-detection\u009b31m\u202e"`, 1)
	if evil == string(b) {
		t.Fatal("fixture not changed: the example registry's model.json moved on")
	}
	if err := os.WriteFile(mj, []byte(evil), 0o644); err != nil {
		t.Fatal(err)
	}
	url := startRegistry(t, bin, regRoot)
	e := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "cache"), env: []string{"ROBOFLOW_API_HOST=" + url}}
	rt := "../../examples/runtimes/cpu-onnx.json"
	checks := []struct {
		name string
		args []string
	}{
		{"resolve --explain", []string{"resolve", "parcel-det", "--runtime", rt, "--explain"}},
		{"failing pull", []string{"pull", "parcel-det", "--runtime", rt, "--backend", "trt"}},
		{"pull", []string{"pull", "parcel-det", "--runtime", rt}},
		{"pull --json", []string{"pull", "parcel-det", "--runtime", rt, "--json"}},
	}
	sawEscaped := false
	for _, c := range checks {
		out, errOut, _ := e.run(c.args...)
		for _, s := range []string{out, errOut} {
			if i := strings.IndexAny(s, "\x1b\x07\u009b\u202e"); i >= 0 {
				t.Errorf("%s: a raw control character reached the terminal: %q", c.name, s[max(0, i-40):min(len(s), i+40)])
			}
			if strings.Contains(s, `rfdetr\x1b]0;pwned`) || strings.Contains(s, `rfdetr\u001b]0;pwned`) {
				sawEscaped = true
			}
		}
	}
	if !sawEscaped {
		t.Error("no output showed the escaped architecture: the test did not exercise the hostile string")
	}
}
