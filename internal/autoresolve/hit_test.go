package autoresolve

import (
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/layout"
)

func TestInHome(t *testing.T) {
	home, err := layout.NewHome("/new/H")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"/new/H/models-cache/v2-x/pkg/weights.onnx", "/new/H/models-cache/v2-x/pkg/weights.onnx", true},
		// A copied or moved cache: judged by its own files.
		{"/old/H/models-cache/v2-x/pkg/weights.onnx", "/new/H/models-cache/v2-x/pkg/weights.onnx", true},
		{"/old/H/shared-blobs/0123456789abcdef0123456789abcdef", "/new/H/shared-blobs/0123456789abcdef0123456789abcdef", true},
		{"/a/models-cache/b/models-cache/v2-x/p/f", "/new/H/models-cache/v2-x/p/f", true},
		{"/etc/passwd", "", false},
		{"/old/H/models-cache/../../etc/passwd", "", false},
		{"/old/models-cache/../../../etc/passwd", "", false},
	}
	for _, c := range cases {
		got, ok := inHome(home, c.in)
		if ok != c.ok || got != filepath.FromSlash(c.want) {
			t.Errorf("inHome(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
