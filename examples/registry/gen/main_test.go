package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// tree returns relative path -> bytes of every file below root, skipping
// the generator itself and documentation.
func tree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == "gen" {
				return filepath.SkipDir
			}
			return nil
		}
		if rel == "README.md" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRegenerationIsByteIdentical regenerates the example registry and
// compares it with the committed copy (examples/registry).
func TestRegenerationIsByteIdentical(t *testing.T) {
	out := t.TempDir()
	if err := generate(out); err != nil {
		t.Fatal(err)
	}
	got, want := tree(t, out), tree(t, "..")
	var names []string
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(want) == 0 {
		t.Fatal("committed example registry is empty")
	}
	for _, n := range names {
		if !bytes.Equal(got[n], want[n]) {
			t.Errorf("%s differs from a fresh generation (run: go run ./examples/registry/gen)", n)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s is generated but not committed", n)
		}
	}
	// Twice in a row: identical, and a second run replaces stale files.
	if err := os.WriteFile(filepath.Join(out, "models", "stale.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := generate(out); err != nil {
		t.Fatal(err)
	}
	again := tree(t, out)
	if len(again) != len(got) {
		t.Fatalf("second generation has %d files, first %d", len(again), len(got))
	}
	for n, b := range got {
		if !bytes.Equal(again[n], b) {
			t.Fatalf("%s not deterministic", n)
		}
	}
	// Files stay small.
	for n, b := range got {
		if len(b) > 16<<10 {
			t.Errorf("%s is %d bytes; example files must stay small", n, len(b))
		}
	}
}

func TestGenerateRefusesForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "registry.json"), []byte(`{"format": "something-else"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := generate(dir); err == nil {
		t.Fatal("generate overwrote a directory that is not a modelcache registry")
	}
}
