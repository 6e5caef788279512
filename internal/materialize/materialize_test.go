package materialize_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/metadata"
)

// content returns deterministic bytes for a label.
func content(label string, size int) []byte {
	var out bytes.Buffer
	for i := 0; out.Len() < size; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s:%d", label, i)))
		out.Write(s[:])
	}
	return out.Bytes()[:size]
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// fixture is a package whose bytes are served from memory.
type fixture struct {
	files   map[string][]byte // by handle
	fetches atomic.Int64
}

func newFixture() *fixture {
	return &fixture{files: map[string][]byte{
		"weights.onnx":          content("weights", 300_000),
		"class_names.txt":       content("classes", 900),
		"extras/keypoints.json": content("kp", 700),
		"labels/unhashed.txt":   content("unhashed", 640),
		"deep/er/nested.json":   content("nested", 100),
	}}
}

func (f *fixture) artifacts(unhashed bool) []metadata.Artifact {
	var out []metadata.Artifact
	for h, b := range f.files {
		a := metadata.Artifact{FileHandle: h, DownloadURL: "http://127.0.0.1:1/files/" + h + "?X-Amz-Signature=s"}
		if strings.HasPrefix(h, "labels/") {
			if !unhashed {
				continue
			}
		} else {
			a.MD5Hash = strp(md5hex(b))
		}
		out = append(out, a)
	}
	return out
}

func (f *fixture) fetch(ctx context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
	f.fetches.Add(1)
	b, ok := f.files[a.FileHandle]
	if !ok {
		return nil, 0, fmt.Errorf("no file %q", a.FileHandle)
	}
	return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
}

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

func request(f *fixture, unhashed bool) materialize.Request {
	return materialize.Request{
		CacheOwner: "ws/det/3", CanonicalModelID: "ws/det/3", PackageID: "onnxpkg",
		Artifacts: f.artifacts(unhashed), DownloadFilesWithoutHash: unhashed,
		Manifest: manifest.Spec{
			ModelArchitecture: strp("yolov8"), TaskType: strp("object-detection"), BackendType: "onnx",
			TrustedSource: boolp(true), Quantization: "fp32", DynamicBatchSizeSupported: boolp(false),
		},
	}
}

type env struct {
	home  layout.Home
	locks *lock.Locker
	blobs *blobfs.Store
	store *materialize.Store
}

func newEnv(t testing.TB, root string) *env {
	t.Helper()
	home, err := layout.NewHome(root)
	if err != nil {
		t.Fatal(err)
	}
	locks := lock.NewLocker(lock.Options{Timeout: 30 * time.Second})
	blobs, err := blobfs.Open(home.Root, locks)
	if err != nil {
		t.Fatal(err)
	}
	return &env{home: home, locks: locks, blobs: blobs, store: materialize.New(home, locks, blobs)}
}

func TestMaterializeFreshPackage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	res, err := e.store.Materialize(ctx, request(f, true), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
	if res.PackageDir != want {
		t.Fatalf("package dir %s, want %s", res.PackageDir, want)
	}
	for h, b := range f.files {
		p := filepath.Join(res.PackageDir, h)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: content differs (%v)", h, err)
		}
		fi, _ := os.Lstat(p)
		if strings.HasPrefix(h, "labels/") {
			if !fi.Mode().IsRegular() {
				t.Errorf("%s: unhashed artefact must be a regular file, is %v", h, fi.Mode())
			}
			continue
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("%s is not a symlink", h)
		}
		target, _ := os.Readlink(p)
		wantRel := strings.Repeat("../", 3+strings.Count(h, "/")) + "shared-blobs/" + md5hex(b)
		if target != wantRel {
			t.Errorf("%s -> %s, want relative %s", h, target, wantRel)
		}
	}
	m, err := manifest.Read(ctx, res.PackageDir)
	if err != nil || !m.Complete() {
		t.Fatalf("manifest: %v complete=%v", err, m != nil && m.Complete())
	}
	for _, a := range m.PackageArtifacts {
		if a.Unhashed {
			sum := sha256.Sum256(f.files[a.FileHandle])
			if a.SHA256Hash == nil || *a.SHA256Hash != hex.EncodeToString(sum[:]) {
				t.Errorf("sha256 of %s not recorded", a.FileHandle)
			}
			if a.SourceHash == nil || *a.SourceHash != layout.SourceHash("http://127.0.0.1:1/files/labels/unhashed.txt") {
				t.Errorf("source hash of %s wrong: the signature must be stripped", a.FileHandle)
			}
		}
	}
	// resolved_files: manifest, every handle, every blob; all exist.
	hashed := 0
	for h := range f.files {
		if !strings.HasPrefix(h, "labels/") {
			hashed++
		}
	}
	if len(res.ResolvedFiles) != 1+len(f.files)+hashed {
		t.Errorf("resolved files: %d: %v", len(res.ResolvedFiles), res.ResolvedFiles)
	}
	for _, p := range res.ResolvedFiles {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("resolved file %s: %v", p, err)
		}
	}

	// A second run changes nothing and downloads nothing.
	before, _ := os.Stat(manifest.Path(res.PackageDir))
	n := f.fetches.Load()
	res2, err := e.store.Materialize(ctx, request(f, true), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Manifest.Written {
		t.Error("identical manifest rewritten")
	}
	after, _ := os.Stat(manifest.Path(res.PackageDir))
	if !os.SameFile(before, after) || !before.ModTime().Equal(after.ModTime()) {
		t.Error("manifest inode or mtime changed")
	}
	// The unhashed file is re-fetched only if the package was unpublished; here it was published.
	if f.fetches.Load() != n {
		t.Errorf("second materialization fetched %d files", f.fetches.Load()-n)
	}
}

// The reference verifies a blob link by comparing real paths
// (os.path.realpath(handle) == os.path.realpath(blob)); our relative links
// must pass that check. We run it in CPython when it is installed, and in Go
// (EvalSymlinks is realpath) always.
func TestRelativeLinksPassReferenceCheck(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	e := newEnv(t, root)
	f := newFixture()
	res, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	for h, b := range f.files {
		if strings.HasPrefix(h, "labels/") {
			continue
		}
		handle := filepath.Join(res.PackageDir, h)
		blob, _ := e.home.BlobPath(md5hex(b))
		rh, err1 := filepath.EvalSymlinks(handle)
		rb, err2 := filepath.EvalSymlinks(blob)
		if err1 != nil || err2 != nil || rh != rb {
			t.Errorf("%s: realpath %s != %s (%v %v)", h, rh, rb, err1, err2)
		}
		pairs = append(pairs, handle, blob)
	}
	// Moving the whole cache keeps relative links valid (absolute ones would dangle).
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	for h := range f.files {
		if strings.HasPrefix(h, "labels/") {
			continue
		}
		rel, _ := filepath.Rel(root, filepath.Join(res.PackageDir, h))
		if _, err := os.Stat(filepath.Join(moved, rel)); err != nil {
			t.Errorf("%s dangles after moving the cache: %v", h, err)
		}
	}
	if err := os.Rename(moved, root); err != nil {
		t.Fatal(err)
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Log("python3 not installed: the CPython realpath check did not run (the Go check above did)")
		return
	}
	script := `import os, sys
a = sys.argv[1:]
bad = [a[i] for i in range(0, len(a), 2) if not (os.path.islink(a[i]) and os.path.isfile(a[i+1]) and not os.path.islink(a[i+1]) and os.path.realpath(a[i]) == os.path.realpath(a[i+1]))]
print("BAD", bad) if bad else print("OK")
sys.exit(1 if bad else 0)`
	out, err := exec.Command(py, append([]string{"-c", script}, pairs...)...).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "OK" {
		t.Fatalf("CPython realpath check failed: %v: %s", err, out)
	}
}

func TestUntrustedFileRefusedBeforeDiskWork(t *testing.T) {
	root := t.TempDir()
	e := newEnv(t, root)
	f := newFixture()
	req := request(f, true)
	req.DownloadFilesWithoutHash = false
	_, err := e.store.Materialize(context.Background(), req, materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if !errors.Is(err, errdefs.ErrUntrustedFile) {
		t.Fatalf("want ErrUntrustedFile, got %v", err)
	}
	if _, err := os.Stat(e.home.ModelsCache()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("models-cache created before refusing: %v", err)
	}
	if f.fetches.Load() != 0 {
		t.Error("fetched before refusing")
	}
}

func TestCorruptBlobIsRepaired(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	sum := md5hex(f.files["weights.onnx"])
	blob, _ := e.home.BlobPath(sum)
	// A zero-filled blob under its final name (power loss in the reference).
	if err := os.WriteFile(blob, make([]byte, len(f.files["weights.onnx"])), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(blob)
	if md5hex(got) != sum {
		t.Fatal("corrupt blob not repaired")
	}
}

func TestPublishedPackageIsImmutable(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	if _, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{}); err != nil {
		t.Fatal(err)
	}
	f.files["weights.onnx"] = content("weights-v2", 1000)
	_, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if !errors.Is(err, errdefs.ErrCorruptPackage) {
		t.Fatalf("want refusal, got %v", err)
	}
	if !strings.Contains(err.Error(), "package_artifacts") || !strings.Contains(err.Error(), "rm -rf") {
		t.Errorf("refusal must name the field and the remove command: %v", err)
	}
}

func TestFailedConstructionLeavesNoManifest(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	boom := errors.New("model class failed")
	_, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{
		Construct: func(context.Context, string) error { return boom },
	})
	if !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
	if _, err := os.Lstat(manifest.Path(dir)); !errors.Is(err, fs.ErrNotExist) {
		t.Error("manifest written although construction failed")
	}
	// Files stay: the next attempt downloads nothing.
	n := f.fetches.Load()
	if _, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{}); err != nil {
		t.Fatal(err)
	}
	if f.fetches.Load() != n {
		t.Error("blobs were downloaded again")
	}
}

func TestDependencyLinkAndIdentity(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	dep, err := e.store.Materialize(ctx, request(f, false), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	parent := request(f, false)
	parent.CacheOwner, parent.CanonicalModelID, parent.PackageID = "ws/seg/7", "ws/seg/7", "segpkg"
	parent.Manifest.ModelDependencies = []metadata.ModelDependency{{Name: "detector", ModelID: "ws/det/3", ModelPackageID: strp("onnxpkg")}}
	parent.Dependencies = []materialize.Dependency{{Name: "detector", PackageDir: dep.PackageDir}}
	res, err := e.store.Materialize(ctx, parent, materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(res.PackageDir, "model_dependencies", "detector")
	if got, _ := os.Readlink(link); got != dep.PackageDir {
		t.Errorf("dependency link -> %s, want %s", got, dep.PackageDir)
	}
	depM, _ := manifest.Read(ctx, dep.PackageDir)
	m, _ := manifest.Read(ctx, res.PackageDir)
	if len(m.DependencyPackagePaths) != 1 || m.DependencyPackagePaths[0].PackageManifestHash != depM.ContentHash() {
		t.Fatalf("dependency identity: %+v", m.DependencyPackagePaths)
	}
	// resolved files include the link, the dependency's files and, for its
	// links, the absolute blob paths.
	blob, _ := e.home.BlobPath(md5hex(f.files["weights.onnx"]))
	found := map[string]bool{}
	for _, p := range res.ResolvedFiles {
		found[p] = true
		if !filepath.IsAbs(p) {
			t.Errorf("relative resolved file %s", p)
		}
	}
	for _, p := range []string{link, filepath.Join(dep.PackageDir, "weights.onnx"), blob} {
		if !found[p] {
			t.Errorf("resolved files lack %s", p)
		}
	}
}

// Hostile layouts: a symlink planted inside the cache must never lead a write
// outside INFERENCE_HOME.
func TestSymlinksNeverLeadOutside(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, e *env, outside string)
	}{
		{"model cache root", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.ModelDir("ws/det/3")
			mkdirAll(t, filepath.Dir(dir))
			symlink(t, outside, dir)
		}},
		{"package dir", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
			mkdirAll(t, filepath.Dir(dir))
			symlink(t, outside, dir)
		}},
		{"materialization lock", func(t *testing.T, e *env, outside string) {
			lp, _ := e.home.MaterializationLockPath("ws/det/3", "onnxpkg")
			mkdirAll(t, filepath.Dir(lp))
			symlink(t, filepath.Join(outside, "victim"), lp)
		}},
		{"nested handle dir", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
			mkdirAll(t, dir)
			symlink(t, outside, filepath.Join(dir, "extras"))
		}},
		{"deeper handle dir", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
			mkdirAll(t, dir)
			symlink(t, outside, filepath.Join(dir, "deep"))
		}},
		{"unhashed handle", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
			mkdirAll(t, filepath.Join(dir, "labels"))
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(dir, "labels", "unhashed.txt"))
		}},
		{"manifest", func(t *testing.T, e *env, outside string) {
			dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
			mkdirAll(t, dir)
			symlink(t, filepath.Join(outside, "victim"), filepath.Join(dir, "model_config.json"))
		}},
		{"shared-blobs", func(t *testing.T, e *env, outside string) {
			os.Remove(e.home.SharedBlobs())
			symlink(t, outside, e.home.SharedBlobs())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, t.TempDir())
			outside := t.TempDir()
			victim := filepath.Join(outside, "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, e, outside)
			f := newFixture()
			_, err := e.store.Materialize(ctx, request(f, true), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
			if err == nil {
				t.Fatal("materialization through a planted symlink succeeded")
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 {
				var names []string
				for _, e := range entries {
					names = append(names, e.Name())
				}
				t.Errorf("files appeared outside the cache: %v", names)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Error("file outside the cache modified")
			}
			t.Logf("refused: %v", err)
		})
	}
}

func mkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyPackage(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	res, err := e.store.Materialize(ctx, request(f, true), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.VerifyPackage(ctx, res.PackageDir); err != nil {
		t.Fatalf("fresh package does not verify: %v", err)
	}
	// Each kind of damage is reported.
	unhashed := filepath.Join(res.PackageDir, "labels", "unhashed.txt")
	os.WriteFile(unhashed, []byte("changed"), 0o644)
	if _, err := e.store.VerifyPackage(ctx, res.PackageDir); !errors.Is(err, errdefs.ErrCorruptPackage) {
		t.Errorf("changed unhashed file: %v", err)
	}
	os.WriteFile(unhashed, f.files["labels/unhashed.txt"], 0o644)
	blob, _ := e.home.BlobPath(md5hex(f.files["class_names.txt"]))
	os.Remove(blob)
	if _, err := e.store.VerifyPackage(ctx, res.PackageDir); err == nil {
		t.Error("missing blob not reported")
	}
}

// A Source gets every missing blob in one EnsureBlobs call (the download
// engine fetches them in parallel); present blobs are not handed over.
func TestEnsureBlobsOnce(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t.TempDir())
	f := newFixture()
	var calls [][]string
	ensure := func(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error) {
		var names []string
		for _, a := range missing {
			names = append(names, a.FileHandle)
			if _, err := e.blobs.Put(ctx, a.MD5(), bytes.NewReader(f.files[a.FileHandle]), int64(len(f.files[a.FileHandle]))); err != nil {
				return nil, err
			}
		}
		calls = append(calls, names)
		return nil, nil
	}
	src := funcSource{ensure: ensure, stream: materialize.StreamSource(e.blobs, f.fetch)}
	res, err := e.store.Materialize(ctx, request(f, true), src, materialize.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 || len(calls[0]) != 4 {
		t.Fatalf("EnsureBlobs calls: %v, want one call with the 4 hashed files", calls)
	}
	if f.fetches.Load() != 1 { // only the unhashed file streams through FetchFile
		t.Errorf("FetchFile used %d times", f.fetches.Load())
	}
	if _, err := e.store.VerifyPackage(ctx, res.PackageDir); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Materialize(ctx, request(f, true), src, materialize.Hooks{}); err != nil {
		t.Fatal(err)
	}
	if len(calls) != 1 {
		t.Errorf("EnsureBlobs called again although every blob is present: %v", calls)
	}
}

// Blobs this load's download verified and published are not read again in
// step 6 while their identity is unchanged; one that changed after the
// download (here: overwritten with zeros) is re-hashed, found corrupt and
// repaired.
func TestVerifiedBlobsAreNotReadAgain(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		t.Run(fmt.Sprintf("tamper=%v", tamper), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, t.TempDir())
			var logs syncBuffer
			store := materialize.New(e.home, e.locks, e.blobs, materialize.WithLogger(
				slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
			f := newFixture()
			weights := md5hex(f.files["weights.onnx"])
			tampered := false
			ensure := func(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error) {
				verified := map[string]fsx.FileID{}
				for _, a := range missing {
					b := f.files[a.FileHandle]
					r, err := e.blobs.PutDetailed(ctx, a.MD5(), bytes.NewReader(b), int64(len(b)))
					if err != nil {
						return nil, err
					}
					verified[a.MD5()] = r.File
					if tamper && !tampered && a.MD5() == weights {
						tampered = true
						time.Sleep(10 * time.Millisecond) // a later mtime even on coarse clocks
						_ = os.Chmod(r.Path, 0o644)
						if err := os.WriteFile(r.Path, make([]byte, len(b)), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				return verified, nil
			}
			src := funcSource{ensure: ensure, stream: materialize.StreamSource(e.blobs, f.fetch)}
			res, err := store.Materialize(ctx, request(f, false), src, materialize.Hooks{})
			if err != nil {
				t.Fatalf("%v\n%s", err, logs.String())
			}
			skipped := strings.Count(logs.String(), "not read again")
			repaired := strings.Contains(logs.String(), "blob failed verification; repairing")
			switch {
			case !tamper && (skipped != 4 || repaired):
				t.Errorf("skipped %d of 4 fresh blobs, repaired %v", skipped, repaired)
			case tamper && !repaired:
				t.Errorf("a blob changed after its download was trusted without re-hashing:\n%s", logs.String())
			}
			if _, err := store.VerifyPackage(ctx, res.PackageDir); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// funcSource is a Source whose EnsureBlobs is a test's function.
type funcSource struct {
	ensure func(context.Context, []metadata.Artifact) (map[string]fsx.FileID, error)
	stream materialize.Source
}

func (s funcSource) EnsureBlobs(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error) {
	return s.ensure(ctx, missing)
}

func (s funcSource) FetchFile(ctx context.Context, a metadata.Artifact, dest string) error {
	return s.stream.FetchFile(ctx, a, dest)
}
