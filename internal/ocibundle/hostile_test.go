package ocibundle_test

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/ocibundle"
)

// goodBundle exports parcel-det from a warm cache as a directory.
func goodBundle(t *testing.T) string {
	t.Helper()
	api := serveExamples(t)
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, true, "parcel-det")
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := graphOf(t, homeA, refsOf(pkgs)).WriteDir(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		return os.WriteFile(filepath.Join(dst, rel), readFile(t, p), 0o644)
	})
}

func index(t *testing.T, dir string) ocispec.Index {
	t.Helper()
	var idx ocispec.Index
	if err := json.Unmarshal(readFile(t, filepath.Join(dir, "index.json")), &idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", "sha256", d.Encoded())
}

// editManifest rewrites the (only) package manifest's JSON text and points
// index.json at the new blob, as a forger with write access would.
func editManifest(t *testing.T, dir string, edit func(string) string) {
	t.Helper()
	idx := index(t, dir)
	old := string(readFile(t, blobPath(dir, idx.Manifests[0].Digest)))
	nw := edit(old)
	if nw == old {
		t.Fatal("edit changed nothing")
	}
	d := digest.FromString(nw)
	if err := os.WriteFile(blobPath(dir, d), []byte(nw), 0o644); err != nil {
		t.Fatal(err)
	}
	idx.Manifests[0].Digest, idx.Manifests[0].Size = d, int64(len(nw))
	b, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func layers(t *testing.T, dir string) []ocispec.Descriptor {
	t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(readFile(t, blobPath(dir, index(t, dir).Manifests[0].Digest)), &m); err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

// tarOf writes dir as a tar, letting extra add or replace entries.
func tarOf(t *testing.T, dir, out string, extra func(tw *tar.Writer)) {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	var names []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if !fi.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b := readFile(t, filepath.Join(dir, n))
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	if extra != nil {
		extra(tw)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// assertNothingPublished: a refused import left no package, no blob, no
// record in home, and nothing changed outside it.
func assertNothingPublished(t *testing.T, home string) {
	t.Helper()
	for _, sub := range []string{"models-cache", "offline-weights-registry", "auto-resolution-cache"} {
		if entries, _ := os.ReadDir(filepath.Join(home, sub)); len(entries) > 0 {
			t.Errorf("%s is not empty after a refused import: %v", sub, entries)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(home, "shared-blobs"))
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("shared-blobs holds %s after a refused import", e.Name())
		}
	}
}

func TestHostileBundles(t *testing.T) {
	good := goodBundle(t)
	cases := []struct {
		name string
		// make returns the path to import, built in work from a copy of the good directory.
		make func(t *testing.T, work string) string
		want []error
	}{
		{"layer bytes differ from their digest", func(t *testing.T, work string) string {
			l := layers(t, work)[0]
			b := readFile(t, blobPath(work, l.Digest))
			b[len(b)/2] ^= 1
			os.WriteFile(blobPath(work, l.Digest), b, 0o644)
			return work
		}, []error{errdefs.ErrDigestMismatch}},
		{"title with ../", func(t *testing.T, work string) string {
			editManifest(t, work, func(s string) string {
				return strings.Replace(s, `"org.opencontainers.image.title":"weights.onnx"`, `"org.opencontainers.image.title":"../../outside/weights.onnx"`, 1)
			})
			return work
		}, []error{errdefs.ErrInsecureIdentifier}},
		{"provider MD5 lies about the bytes", func(t *testing.T, work string) string {
			md5 := layers(t, work)[0].Annotations[ocibundle.AnnotationMD5]
			editManifest(t, work, func(s string) string { return strings.ReplaceAll(s, md5, "0123456789abcdef0123456789abcdef") })
			return work
		}, []error{errdefs.ErrDigestMismatch}},
		{"manifest names a missing blob", func(t *testing.T, work string) string {
			os.Remove(blobPath(work, layers(t, work)[0].Digest))
			return work
		}, []error{ocibundle.ErrMissingBlob}},
		{"index names a missing manifest", func(t *testing.T, work string) string {
			os.Remove(blobPath(work, index(t, work).Manifests[0].Digest))
			return work
		}, []error{ocibundle.ErrMissingBlob}},
		{"symlink entry in the tar", func(t *testing.T, work string) string {
			l := layers(t, work)[0]
			os.Remove(blobPath(work, l.Digest))
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + l.Digest.Encoded(), Typeflag: tar.TypeSymlink, Linkname: "/etc/passwd"})
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"hard link entry in the tar", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + strings.Repeat("a", 64), Typeflag: tar.TypeLink, Linkname: "index.json"})
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"device entry in the tar", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "blobs/sha256/" + strings.Repeat("b", 64), Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3})
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"entry escaping with ../", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "../outside/evil", Typeflag: tar.TypeReg, Size: 1})
				tw.Write([]byte("x"))
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"absolute entry name", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "/tmp/evil", Typeflag: tar.TypeReg, Size: 1})
				tw.Write([]byte("x"))
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"unknown entry", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "README", Typeflag: tar.TypeReg, Size: 1})
				tw.Write([]byte("x"))
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"entry repeated", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, func(tw *tar.Writer) {
				tw.WriteHeader(&tar.Header{Name: "index.json", Typeflag: tar.TypeReg, Size: 2})
				tw.Write([]byte("{}"))
			})
			return out
		}, []error{ocibundle.ErrUnsafeEntry}},
		{"truncated tar", func(t *testing.T, work string) string {
			out := work + ".tar"
			tarOf(t, work, out, nil)
			b := readFile(t, out)
			// Cut inside the last member's data.
			os.WriteFile(out, b[:len(b)-1024-300], 0o644)
			return out
		}, []error{ocibundle.ErrTruncated}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := t.TempDir()
			work := filepath.Join(base, "bundle")
			copyTree(t, good, work)
			src := tc.make(t, work)
			outside := filepath.Join(base, "outside")
			os.MkdirAll(outside, 0o755)
			os.WriteFile(filepath.Join(outside, "sentinel"), []byte("keep"), 0o644)
			home := filepath.Join(base, "home")
			before := tree(t, outside)
			bundleBefore := tree(t, work)
			_, err := importBundle(t, home, src)
			if err == nil {
				t.Fatal("hostile bundle imported")
			}
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("error %q does not match %v", err, w)
				}
			}
			t.Logf("refused: %v", err)
			assertNothingPublished(t, home)
			sameTree(t, "outside the home", before, tree(t, outside))
			sameTree(t, "the bundle", bundleBefore, tree(t, work))
		})
	}
}

// Every cut of a bundle tar is refused with a typed error and publishes
// nothing.
func TestTruncatedTarAtEveryBoundary(t *testing.T) {
	good := goodBundle(t)
	full := filepath.Join(t.TempDir(), "full.tar")
	tarOf(t, good, full, nil)
	b := readFile(t, full)
	for _, cut := range []int{0, 100, 512, 700, 1536, len(b) / 3, len(b) / 2, len(b) - 2048, len(b) - 1025} {
		p := filepath.Join(t.TempDir(), "cut.tar")
		os.WriteFile(p, b[:cut], 0o644)
		home := filepath.Join(t.TempDir(), "home")
		_, err := importBundle(t, home, p)
		if !errors.Is(err, ocibundle.ErrTruncated) && !errors.Is(err, ocibundle.ErrInvalid) && !errors.Is(err, ocibundle.ErrMissingBlob) {
			t.Errorf("cut at %d of %d: %v", cut, len(b), err)
		}
		assertNothingPublished(t, home)
	}
}

func TestOversizedMetadataRefused(t *testing.T) {
	good := goodBundle(t)
	_, err := ocibundle.OpenBundle(good, ocibundle.Limits{MaxMetadataSize: 16})
	if !errors.Is(err, ocibundle.ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
}
