package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func exampleRegistry(t *testing.T) string {
	t.Helper()
	wd, _ := os.Getwd()
	for d := wd; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "examples", "registry")
		}
	}
	t.Fatal("go.mod not found")
	return ""
}

func TestRegistryLsJSON(t *testing.T) {
	cmd := newRegistryCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"ls", "--root", exampleRegistry(t), "--json"})
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		t.Fatal(err)
	}
	var l struct {
		Models []struct {
			ModelID  string   `json:"model_id"`
			Aliases  []string `json:"aliases"`
			Packages []struct {
				PackageID    string            `json:"package_id"`
				Backend      string            `json:"backend"`
				Quantization string            `json:"quantization"`
				Files        []json.RawMessage `json:"files"`
			} `json:"packages"`
		} `json:"models"`
	}
	if err := json.Unmarshal(out.Bytes(), &l); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(l.Models) < 3 {
		t.Fatalf("models: %d", len(l.Models))
	}
	found := false
	for _, m := range l.Models {
		if m.ModelID == "acme-ws/parcel-detector/7" && len(m.Aliases) == 1 && m.Aliases[0] == "parcel-det" && len(m.Packages) >= 6 &&
			m.Packages[0].Backend == "onnx" && m.Packages[0].Quantization == "fp32" && len(m.Packages[0].Files) == 3 {
			found = true
		}
	}
	if !found {
		t.Fatalf("detector listing wrong:\n%s", out.String())
	}
	// Table output.
	cmd = newRegistryCmd()
	out.Reset()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"ls", "--root", exampleRegistry(t)})
	if err := cmd.ExecuteContext(context.Background()); err != nil || !strings.HasPrefix(out.String(), "MODEL") || !strings.Contains(out.String(), "dettrtorinfp16") {
		t.Fatalf("table: %v\n%s", err, out.String())
	}
}

func TestRegistryLsReportsBadContent(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "models", "m", "packages", "bad-id"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "models", "m", "model.json"), []byte(`{"model_id": "a/1", "model_architecture": "x"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"ls", "serve"} {
		cmd := newRegistryCmd()
		cmd.SetOut(io.Discard)
		cmd.SetArgs([]string{sub, "--root", root, "--listen", "127.0.0.1:0"}[:map[string]int{"ls": 3, "serve": 5}[sub]])
		err := cmd.ExecuteContext(context.Background())
		if err == nil || !strings.Contains(err.Error(), "bad-id") {
			t.Fatalf("%s: want a content error naming bad-id, got %v", sub, err)
		}
	}
	cmd := newRegistryCmd()
	cmd.SetArgs([]string{"ls"})
	if err := cmd.ExecuteContext(context.Background()); err == nil {
		t.Fatal("ls without --root accepted")
	}
}

func TestRegistryServeAndShutdown(t *testing.T) {
	pr, pw := io.Pipe()
	cmd := newRegistryCmd()
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	cmd.SetArgs([]string{"serve", "--root", exampleRegistry(t), "--listen", "127.0.0.1:0", "--log-format", "json"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("no address in %q", line)
	}
	base := strings.TrimSpace(line[i:])
	resp, err := http.Get(base + "/models/v1/external/weights?modelId=parcel-det")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"modelId": "acme-ws/parcel-detector/7"`) || !strings.Contains(string(body), base+"/files/") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// TestRegistryDocsListEveryServeFlag keeps docs/registry.md §6 and the flags in sync.
func TestRegistryDocsListEveryServeFlag(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(exampleRegistry(t)), "..", "docs", "registry.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "| `--") {
			name := strings.TrimPrefix(line, "| `--")
			name = name[:strings.IndexAny(name, " `")]
			documented[name] = true
		}
	}
	var serve = newRegistryCmd()
	for _, c := range serve.Commands() {
		if c.Name() != "serve" {
			continue
		}
		n := 0
		c.Flags().VisitAll(func(f *pflag.Flag) {
			n++
			if !documented[f.Name] {
				t.Errorf("flag --%s of registry serve is not documented in docs/registry.md", f.Name)
			}
			delete(documented, f.Name)
		})
		if n == 0 {
			t.Fatal("serve has no flags")
		}
	}
	for name := range documented {
		t.Errorf("docs/registry.md documents --%s, which registry serve does not have", name)
	}
}
