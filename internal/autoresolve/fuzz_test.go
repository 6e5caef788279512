package autoresolve

import (
	"bytes"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
)

// ParseEntry reads entries any process wrote: no panic, and an accepted
// entry written back is written identically the next time. (Written back,
// an entry is not always readable: like the reference's, our writer omits
// null fields and the reader requires some of them, e.g. task_type — the
// reference cannot read its own entries of models without a task type.)
func FuzzParseEntry(f *testing.F) {
	for _, sub := range []string{"read", "written"} {
		for _, b := range compat.FileTexts(f, "auto_resolution_entry", sub) {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseEntry(data)
		if err != nil {
			return
		}
		out, err := MarshalEntry(e)
		if err != nil {
			return // accepted on read, but not a shape we write (legacy fields)
		}
		e2, err := ParseEntry(out)
		if err != nil {
			return
		}
		out2, err := MarshalEntry(e2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("write is not stable: %v\n%s\n%s", err, out, out2)
		}
	})
}
