package layout

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/metadata"
)

// Fuzz targets for the path invariants. Seeds come from the golden vectors
// and the spec, so the plain `go test` run is quick.

func FuzzSlug(f *testing.F) {
	var slugs []struct {
		Hex string `json:"model_id_utf8_hex"`
	}
	if err := json.Unmarshal(compat.Section(f, "slug"), &slugs); err != nil {
		f.Fatal(err)
	}
	for _, r := range slugs {
		b, _ := hex.DecodeString(r.Hex)
		f.Add(string(b))
	}
	f.Add("\xff\xfe")
	home := Home{Root: "/srv/cache"}
	f.Fuzz(func(t *testing.T, id string) {
		s, err := Slug(id)
		if !utf8.ValidString(id) {
			if err == nil {
				t.Fatalf("Slug accepted invalid UTF-8 %q", id)
			}
			return
		}
		if err != nil {
			t.Fatalf("Slug(%q): %v", id, err)
		}
		if !slugShape.MatchString(s) || len(s) > len("v2-")+48+1+32 {
			t.Fatalf("Slug(%q) = %q", id, s)
		}
		p, err := home.ModelDir(id)
		if err != nil || p != home.Root+"/models-cache/"+s || !within(home.Root, p) {
			t.Fatalf("ModelDir(%q) = %q, %v", id, p, err)
		}
		if prefix, _ := Prefix(id); !strings.HasPrefix(s, "v2-"+prefix+"-") {
			t.Fatalf("Slug(%q) = %q does not embed Prefix %q", id, s, prefix)
		}
	})
}

func FuzzHandlePath(f *testing.F) {
	var handles []struct {
		Handle    string `json:"handle"`
		Artifacts []struct {
			FileHandle string `json:"file_handle"`
		} `json:"artefacts"`
	}
	if err := json.Unmarshal(compat.Section(f, "file_handle"), &handles); err != nil {
		f.Fatal(err)
	}
	for _, r := range handles {
		f.Add(r.Handle)
		for _, a := range r.Artifacts {
			f.Add(a.FileHandle)
		}
	}
	const pkg = "/srv/cache/models-cache/v2-m-00000000000000000000000000000000/pkg1"
	localMD5 := "0123456789abcdef0123456789abcdef"
	f.Fuzz(func(t *testing.T, h string) {
		p, err := HandlePath(pkg, h)
		l, lerr := HandleLockPath(pkg, h)
		if verr := ValidateHandle(h); verr != nil {
			if err == nil || lerr == nil || p != "" || l != "" {
				t.Fatalf("invalid handle %q (%v) gave %q, %q", h, verr, p, l)
			}
			return
		}
		if err != nil || lerr != nil {
			t.Fatalf("valid handle %q: %v / %v", h, err, lerr)
		}
		if !within(pkg, p) || !within(pkg, l) || p != pkg+"/"+h {
			t.Fatalf("handle %q escapes: %q, %q", h, p, l)
		}
		// A valid handle is printable ASCII without spaces and cannot take a
		// lock file's name.
		for i := 0; i < len(h); i++ {
			if h[i] <= ' ' || h[i] > '~' {
				t.Fatalf("valid handle %q contains byte %#x", h, h[i])
			}
		}
		base := h[strings.LastIndexByte(h, '/')+1:]
		if strings.HasPrefix(base, ".") && strings.HasSuffix(strings.ToLower(base), ".lock") {
			t.Fatalf("handle %q has a lock file's name", h)
		}
		// Declaring it alone must also succeed.
		if _, err := Declarations([]metadata.Artifact{{Local: true, FileHandle: h, MD5Hash: &localMD5}}); err != nil {
			t.Fatalf("Declarations(%q): %v", h, err)
		}
	})
}

func FuzzPackageID(f *testing.F) {
	var ids []struct {
		ID    string `json:"package_id"`
		Valid bool   `json:"valid"`
	}
	if err := json.Unmarshal(compat.Section(f, "package_id"), &ids); err != nil {
		f.Fatal(err)
	}
	for _, r := range ids {
		f.Add(r.ID)
	}
	home := Home{Root: "/srv/cache"}
	f.Fuzz(func(t *testing.T, id string) {
		err := ValidatePackageID(id)
		p, perr := home.PackageDir("ws/m/1", id)
		l, lerr := home.MaterializationLockPath("ws/m/1", id)
		if err != nil {
			if perr == nil || lerr == nil {
				t.Fatalf("invalid package id %q (%v) gave paths %q, %q", id, err, p, l)
			}
			return
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
				t.Fatalf("valid package id %q holds %q", id, c)
			}
		}
		if perr != nil || lerr != nil || !within(home.ModelsCache(), p) || !within(home.ModelsCache(), l) {
			t.Fatalf("package id %q: %q %v, %q %v", id, p, perr, l, lerr)
		}
	})
}
