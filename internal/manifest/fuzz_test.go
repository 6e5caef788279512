package manifest

import (
	"bytes"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
)

// Parse reads model_config.json files written by anyone: it must never
// panic, and what it accepts must be stable (the same bytes, the same
// content hash) and describable (Spec).
func FuzzParse(f *testing.F) {
	for _, sub := range []string{"read", "written"} {
		for _, b := range compat.FileTexts(f, "manifest", sub) {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"offline_manifest_version": 4`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			if m != nil {
				t.Fatal("Parse returned a manifest with an error")
			}
			return
		}
		again, err := Parse(bytes.Clone(data))
		if err != nil || again.ContentHash() != m.ContentHash() {
			t.Fatalf("re-parse of accepted bytes: %v, hash %s vs %s", err, again.ContentHash(), m.ContentHash())
		}
		_ = m.Spec()
		_ = m.Complete()
	})
}
