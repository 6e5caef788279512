package compat

import (
	"encoding/hex"
	"encoding/json"
	"testing"
)

// FileTexts returns every recorded file text of a section's records (the
// "file_text" fields, or their exact bytes from "file_text_utf8_hex"), as
// seeds for the fuzz targets of the parsers that read those files. section
// may name a sub-list ("manifest/read").
func FileTexts(t testing.TB, section, sub string) [][]byte {
	t.Helper()
	raw := Section(t, section)
	if sub != "" {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("compat: section %s: %v", section, err)
		}
		raw = m[sub]
	}
	var recs []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &recs); err != nil {
		t.Fatalf("compat: section %s/%s: %v", section, sub, err)
	}
	var out [][]byte
	var collect func(map[string]json.RawMessage)
	collect = func(r map[string]json.RawMessage) {
		var hx string
		if json.Unmarshal(r["file_text_utf8_hex"], &hx) == nil && hx != "" {
			if b, err := hex.DecodeString(hx); err == nil {
				out = append(out, b)
				return
			}
		}
		var s string
		if json.Unmarshal(r["file_text"], &s) == nil && s != "" {
			out = append(out, []byte(s))
		}
		var steps []map[string]json.RawMessage
		if json.Unmarshal(r["steps"], &steps) == nil {
			for _, st := range steps {
				collect(st)
			}
		}
	}
	for _, r := range recs {
		collect(r)
	}
	if len(out) == 0 {
		t.Fatalf("compat: no file texts in %s/%s", section, sub)
	}
	return out
}
