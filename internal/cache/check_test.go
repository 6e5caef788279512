package cache

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// TestCheckPackageDir: a symlink at models-cache, shared-blobs, the model
// dir or the package dir makes the package unservable; real dirs (or
// missing ones) pass; a path outside models-cache is refused.
func TestCheckPackageDir(t *testing.T) {
	out := t.TempDir()
	os.MkdirAll(filepath.Join(out, "v2-m-00000000000000000000000000000000", "pkg"), 0o755)
	for _, tc := range []struct {
		name  string
		plant func(h layout.Home, pkg string)
		want  error
	}{
		{"clean", func(h layout.Home, pkg string) { os.MkdirAll(pkg, 0o755); os.MkdirAll(h.SharedBlobs(), 0o755) }, nil},
		{"missing", func(layout.Home, string) {}, nil},
		{"models-cache", func(h layout.Home, _ string) { os.MkdirAll(h.Root, 0o755); os.Symlink(out, h.ModelsCache()) }, fsx.ErrSymlink},
		{"shared-blobs", func(h layout.Home, _ string) { os.MkdirAll(h.Root, 0o755); os.Symlink(out, h.SharedBlobs()) }, fsx.ErrSymlink},
		{"model dir", func(h layout.Home, pkg string) {
			os.MkdirAll(h.ModelsCache(), 0o755)
			os.Symlink(filepath.Join(out, "v2-m-00000000000000000000000000000000"), filepath.Dir(pkg))
		}, fsx.ErrSymlink},
		{"package dir", func(h layout.Home, pkg string) {
			os.MkdirAll(filepath.Dir(pkg), 0o755)
			os.Symlink(filepath.Join(out, "v2-m-00000000000000000000000000000000", "pkg"), pkg)
		}, fsx.ErrSymlink},
		{"file", func(h layout.Home, pkg string) {
			os.MkdirAll(h.Root, 0o755)
			os.WriteFile(h.ModelsCache(), nil, 0o644)
		}, fsx.ErrNotDir},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := layout.NewHome(filepath.Join(t.TempDir(), "home"))
			pkg, _ := h.PackageDir("ws/m/1", "pkg")
			tc.plant(h, pkg)
			err := CheckPackageDir(h, pkg)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckPackageDir: %v, want %v", err, tc.want)
			}
			var ue *UnsafeLayoutError
			if tc.want != nil && !errors.As(err, &ue) {
				t.Fatalf("not an *UnsafeLayoutError: %T", err)
			}
			if tc.name != "clean" && tc.name != "missing" && tc.name != "model dir" && tc.name != "package dir" {
				if err := CheckTopLevel(h); !errors.Is(err, tc.want) {
					t.Fatalf("CheckTopLevel: %v", err)
				}
			}
		})
	}
	h, _ := layout.NewHome(t.TempDir())
	if err := CheckPackageDir(h, filepath.Join(h.Root, "shared-blobs", "x", "y")); err == nil {
		t.Error("a dir outside models-cache passed")
	}
	if err := CheckPackageDir(h, filepath.Join(h.Root, "models-cache", "..", "..", "x")); err == nil {
		t.Error("an escaping dir passed")
	}
}
