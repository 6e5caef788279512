package offlinereg

import (
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
)

// ParseRecord reads offline-weights records any process wrote: no panic;
// an accepted record's packages decode or are reported, never crash.
func FuzzParseRecord(f *testing.F) {
	for _, b := range compat.FileTexts(f, "offline_record", "") {
		f.Add(b)
	}
	f.Add([]byte(`{"format_version": 1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil && r != nil {
			t.Fatal("ParseRecord returned a record with an error")
		}
	})
}
