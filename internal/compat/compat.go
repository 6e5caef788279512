// Package compat loads the golden data recorded from the reference
// (../shared/compat beside the repository) for tests, and decodes its typed
// Python values ("pyv") into the pyjson value model.
package compat

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// EnvDir overrides where the golden data lives (a directory holding vectors.json).
const EnvDir = "MODELCACHE_COMPAT_DIR"

// Dir returns the golden-data directory: $MODELCACHE_COMPAT_DIR, else
// <repo root>/../shared/compat. It fails the test when the data is missing:
// a compatibility suite that silently skips proves nothing.
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			d := filepath.Join(dir, "..", "shared", "compat")
			if _, err := os.Stat(filepath.Join(d, "vectors.json")); err != nil {
				t.Fatalf("golden data not found at %s (set %s): %v", d, EnvDir, err)
			}
			return d
		}
		if filepath.Dir(dir) == dir {
			t.Fatalf("no go.mod above %s", wd)
		}
	}
}

// Load decodes the JSON file name (relative to Dir) into out.
func Load(t testing.TB, name string, out any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Dir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// Section returns the raw records of one vectors.json section.
func Section(t testing.TB, name string) json.RawMessage {
	t.Helper()
	var all map[string]json.RawMessage
	Load(t, "vectors.json", &all)
	s, ok := all[name]
	if !ok {
		t.Fatalf("vectors.json has no section %q", name)
	}
	return s
}

type pyv struct {
	T    string          `json:"t"`
	V    json.RawMessage `json:"v"`
	Enum string          `json:"enum"`
}

// Value decodes a pyv document into the pyjson value model.
func Value(raw json.RawMessage) (any, error) {
	var p pyv
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	switch p.T {
	case "none":
		return nil, nil
	case "bool":
		var b bool
		err := json.Unmarshal(p.V, &b)
		return b, err
	case "int":
		var s string
		if err := json.Unmarshal(p.V, &s); err != nil {
			return nil, err
		}
		return pyjson.ParseInt(s)
	case "float":
		var s string
		if err := json.Unmarshal(p.V, &s); err != nil {
			return nil, err
		}
		switch s {
		case "inf":
			return math.Inf(1), nil
		case "-inf":
			return math.Inf(-1), nil
		case "nan":
			return math.NaN(), nil
		}
		return strconv.ParseFloat(s, 64)
	case "str", "path":
		var s string
		if err := json.Unmarshal(p.V, &s); err != nil {
			return nil, err
		}
		if p.T == "path" {
			return pyjson.Path(s), nil
		}
		return s, nil
	case "enum":
		var s string
		if err := json.Unmarshal(p.V, &s); err != nil {
			return nil, err
		}
		return pyjson.Enum{Class: p.Enum, Value: s}, nil
	case "list", "tuple", "set":
		var items []json.RawMessage
		if err := json.Unmarshal(p.V, &items); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		for _, it := range items {
			v, err := Value(it)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		switch p.T {
		case "tuple":
			return pyjson.Tuple(out), nil
		case "set":
			return pyjson.Set(out), nil
		}
		return out, nil
	case "dict":
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(p.V, &pairs); err != nil {
			return nil, err
		}
		o := pyjson.NewObject()
		for _, kv := range pairs {
			var k string
			if err := json.Unmarshal(kv[0], &k); err != nil {
				return nil, err
			}
			v, err := Value(kv[1])
			if err != nil {
				return nil, err
			}
			o.Set(k, v)
		}
		return o, nil
	}
	return nil, fmt.Errorf("compat: unknown pyv type %q", p.T)
}

// MustValue is Value for tests.
func MustValue(t testing.TB, raw json.RawMessage) any {
	t.Helper()
	v, err := Value(raw)
	if err != nil {
		t.Fatalf("pyv %s: %v", raw, err)
	}
	return v
}
