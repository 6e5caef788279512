package compat

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Tree is python-cache/tree.json: a cache written by the reference, described.
type Tree struct {
	Placeholder       string                     `json:"inference_home_placeholder"`
	Environment       TreeEnvironment            `json:"environment"`
	ProviderResponses map[string]json.RawMessage `json:"provider_responses"`
	ServedArtefacts   map[string]ServedArtefact  `json:"served_artefacts"`
	Loads             []TreeLoad                 `json:"loads"`
	Entries           []TreeEntry                `json:"tree"`
}

// TreeEnvironment is the reference process's fixed environment.
type TreeEnvironment struct {
	APIKey               string          `json:"api_key"`
	RuntimeCompatibility json.RawMessage `json:"runtime_compatibility"`
	RuntimeXRay          json.RawMessage `json:"runtime_x_ray"`
	ClockCoreCreatedAt   []string        `json:"clock_core_created_at"`
}

// ServedArtefact is a file the reference downloaded.
type ServedArtefact struct {
	Label string `json:"label"`
	Size  int    `json:"size"`
	URL   string `json:"url"`
	MD5   string `json:"md5"`
}

// TreeLoad is one from_pretrained call of the reference.
type TreeLoad struct {
	ModelID            string                     `json:"model_id"`
	Arguments          map[string]json.RawMessage `json:"arguments"`
	PackageDir         string                     `json:"package_dir"`
	AutoResolutionKeys []struct {
		ModelID            string  `json:"model_id"`
		RequestedPackageID *string `json:"requested_package_id"`
		Hash               string  `json:"hash"`
		ContentJSON        string  `json:"content_json"`
	} `json:"auto_resolution_keys"`
}

// TreeEntry is one walked path.
type TreeEntry struct {
	Path       string `json:"path"`
	Kind       string `json:"kind"` // file | dir | symlink
	Mode       string `json:"mode"`
	Size       int    `json:"size"`
	MD5        string `json:"md5"`
	Content    string `json:"content"`
	ContentB64 string `json:"content_b64"`
	Templated  bool   `json:"templated"`
	Target     string `json:"target"`
	TargetForm string `json:"target_form"`
	TargetKind string `json:"target_kind"`
}

// LoadTree reads python-cache/tree.json.
func LoadTree(t testing.TB) *Tree {
	t.Helper()
	var tr Tree
	Load(t, filepath.Join("python-cache", "tree.json"), &tr)
	if len(tr.Entries) == 0 {
		t.Fatal("tree.json has no entries")
	}
	return &tr
}

// Expand replaces the placeholder with home.
func (tr *Tree) Expand(s, home string) string {
	return strings.ReplaceAll(s, tr.Placeholder, home)
}

// Build recreates the tree under home (an absolute path): files with their
// bytes and modes, directories, and symlinks whose absolute targets are
// re-rooted at home, as if the reference had run with INFERENCE_HOME=home.
func (tr *Tree) Build(t testing.TB, home string) {
	t.Helper()
	entries := append([]TreeEntry(nil), tr.Entries...)
	// Parents before children.
	sort.SliceStable(entries, func(i, j int) bool {
		return strings.Count(entries[i].Path, "/") < strings.Count(entries[j].Path, "/")
	})
	for _, e := range entries {
		p := filepath.Join(home, filepath.FromSlash(e.Path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch e.Kind {
		case "dir":
			if err := os.MkdirAll(p, mode(t, e.Mode)); err != nil {
				t.Fatal(err)
			}
		case "file":
			var data []byte
			if e.ContentB64 != "" || e.Content == "" {
				b, err := base64.StdEncoding.DecodeString(e.ContentB64)
				if err != nil {
					t.Fatalf("%s: %v", e.Path, err)
				}
				data = b
			} else {
				data = []byte(tr.Expand(e.Content, home))
			}
			if err := os.WriteFile(p, data, mode(t, e.Mode)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode(t, e.Mode)); err != nil {
				t.Fatal(err)
			}
		case "symlink":
			target := filepath.FromSlash(e.Target)
			if e.TargetForm == "absolute" {
				target = filepath.Join(home, target)
			}
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: unknown kind %q", e.Path, e.Kind)
		}
	}
}

func mode(t testing.TB, s string) os.FileMode {
	t.Helper()
	m, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil {
		t.Fatalf("bad mode %q", s)
	}
	return os.FileMode(m)
}
