package manifest

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

func sp(s string) *string { return &s }
func bp(b bool) *bool     { return &b }

func quietOpts() WriteOptions {
	return WriteOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func sampleSpec() *Spec {
	one := int64(1)
	conf := 0.4
	return &Spec{
		ModelID: "ws/p/3", CanonicalModelID: "ws/p/3",
		ModelArchitecture: sp("yolov8"), TaskType: sp("object-detection"), BackendType: "onnx",
		ModelFeatures: pyjson.ObjectOf("nms_fused", pyjson.ObjectOf("max_detections", pyjson.NewInt(300))),
		TrustedSource: bp(true), RecommendedParameters: &metadata.RecommendedParameters{Confidence: &conf},
		Quantization: "fp32", DynamicBatchSizeSupported: bp(false), StaticBatchSize: &one,
		PackageArtifacts: []Artifact{
			{FileHandle: "class_names.txt", Unhashed: true, SHA256Hash: sp(strings.Repeat("1", 64)), SourceHash: sp(strings.Repeat("2", 64)), Storage: StoragePackageFile},
			{FileHandle: "weights.onnx", MD5Hash: sp(strings.Repeat("a", 32)), Storage: StorageSharedBlob},
		},
	}
}

func TestEncodeMatchesSpecExample(t *testing.T) {
	b, err := Encode(sampleSpec())
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"offline_manifest_version": 4, "model_architecture": "yolov8", "task_type": "object-detection", "backend_type": "onnx", "model_features": {"nms_fused": {"max_detections": 300}}, "trusted_source": true, "model_dependencies": [], "recommended_parameters": {"confidence": 0.4, "per_class_confidence": null}, "quantization": "fp32", "dynamic_batch_size_supported": false, "static_batch_size": 1, "canonical_model_id": "ws/p/3", "package_artifacts": [{"file_handle": "class_names.txt", "md5_hash": null, "unhashed": true, "sha256_hash": "1111111111111111111111111111111111111111111111111111111111111111", "source_hash": "2222222222222222222222222222222222222222222222222222222222222222", "storage": "package_file"}, {"file_handle": "weights.onnx", "md5_hash": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "unhashed": false, "sha256_hash": null, "source_hash": null, "storage": "shared_blob"}], "dependency_package_paths": [], "model_id": "ws/p/3"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestSpecValidation(t *testing.T) {
	cases := map[string]func(s *Spec){
		"blank owner (U+001F is Python whitespace)": func(s *Spec) { s.ModelID = " \x1f" },
		"bad backend":     func(s *Spec) { s.BackendType = "tensorrt" },
		"static batch 0":  func(s *Spec) { z := int64(0); s.StaticBatchSize = &z },
		"uppercase md5":   func(s *Spec) { s.PackageArtifacts[1].MD5Hash = sp(strings.Repeat("A", 32)) },
		"unhashed blob":   func(s *Spec) { s.PackageArtifacts[0].Storage = StorageSharedBlob },
		"hashed with sha": func(s *Spec) { s.PackageArtifacts[1].SHA256Hash = sp(strings.Repeat("1", 64)) },
		"bad handle":      func(s *Spec) { s.PackageArtifacts[1].FileHandle = "../weights.onnx" },
		"unsorted": func(s *Spec) {
			s.PackageArtifacts[0], s.PackageArtifacts[1] = s.PackageArtifacts[1], s.PackageArtifacts[0]
		},
		"case-ambiguous":    func(s *Spec) { s.PackageArtifacts[0].FileHandle = "WEIGHTS.ONNX" },
		"relative dep path": func(s *Spec) { s.DependencyPackagePaths = []DependencyPath{depPath("d", "rel/p")} },
		"dep pkg mismatch": func(s *Spec) {
			d := depPath("d", "/x/pkg")
			d.ModelPackageID = "other"
			s.DependencyPackagePaths = []DependencyPath{d}
		},
		"dep names collide": func(s *Spec) {
			s.DependencyPackagePaths = []DependencyPath{depPath("Enc", "/x/a"), depPath("enc", "/x/b")}
		},
	}
	for name, mutate := range cases {
		s := sampleSpec()
		mutate(s)
		if _, err := Encode(s); !errors.Is(err, errdefs.ErrCorruptPackage) {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
	s := sampleSpec()
	s.DependencyPackagePaths = []DependencyPath{depPath("d", "//x/p")} // POSIX normpath keeps "//"
	if _, err := Encode(s); err != nil {
		t.Errorf("//x/p rejected: %v", err)
	}
}

func depPath(name, target string) DependencyPath {
	return DependencyPath{Name: name, TargetPath: target, CacheModelID: "x/1", CanonicalModelID: "x/1",
		ModelPackageID: filepath.Base(target), PackageManifestHash: strings.Repeat("c", 64)}
}

func TestGoValuesCompareAsPython(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeV4(t, dir, sampleSpec())
	s := sampleSpec()
	s.ModelFeatures = map[string]any{"nms_fused": map[string]any{"max_detections": 300}}
	res, err := Write(ctx, dir, s, quietOpts())
	if err != nil || res.Written {
		t.Fatalf("Go map features: %+v %v", res, err)
	}
}

func TestArtifactFromDeclaration(t *testing.T) {
	md5 := strings.Repeat("a", 32)
	decls, err := layout.Declarations([]metadata.Artifact{
		{FileHandle: "weights.onnx", MD5Hash: &md5},
		{FileHandle: "class_names.txt", DownloadURL: "https://h/x?X-Amz-Signature=s"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var arts []Artifact
	for _, d := range decls {
		var sha *string
		if d.Unhashed {
			sha = sp(strings.Repeat("1", 64))
		}
		arts = append(arts, ArtifactFromDeclaration(d, sha))
	}
	s := sampleSpec()
	s.PackageArtifacts = arts
	if _, err := Encode(s); err != nil {
		t.Fatal(err)
	}
	if arts[0].FileHandle != "class_names.txt" || arts[0].Storage != StoragePackageFile || arts[1].Storage != StorageSharedBlob {
		t.Fatalf("%+v", arts)
	}
}

func TestSortArtifacts(t *testing.T) {
	arts := []Artifact{{FileHandle: "b.txt"}, {FileHandle: "B2.txt"}, {FileHandle: "a.txt"}, {FileHandle: "_x"}, {FileHandle: "Z.bin"}, {FileHandle: "c/D.bin"}, {FileHandle: "C1"}}
	SortArtifacts(arts)
	var got []string
	for _, a := range arts {
		got = append(got, a.FileHandle)
	}
	if strings.Join(got, " ") != "_x a.txt b.txt B2.txt c/D.bin C1 Z.bin" {
		t.Fatalf("order %v", got)
	}
}

func TestPyNormpath(t *testing.T) {
	for in, want := range map[string]string{"/a/../b": "/b", "//a": "//a", "///a//b/": "/a/b", "/..": "/", "a/../..": "..", "": ".", "/a/./b": "/a/b"} {
		if got := pyNormpath(in); got != want {
			t.Errorf("pyNormpath(%q) = %q, want %q", in, got, want)
		}
	}
}

// An existing v4 manifest equal under Python == (key order, 1 == 1.0 ==
// True) is not rewritten.
func TestWritePythonEquality(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := sampleSpec()
	doc := s.Document()
	// Reorder keys and change numeric kinds without changing Python values.
	re := pyjson.NewObject()
	keys := doc.Keys()
	for i := len(keys) - 1; i >= 0; i-- {
		v, _ := doc.Get(keys[i])
		re.Set(keys[i], v)
	}
	re.Set("static_batch_size", 1.0)
	re.Set("trusted_source", pyjson.NewInt(1))
	re.Set("offline_manifest_version", 4.0)
	b, _ := pyjson.MarshalIndent(re)
	if err := os.WriteFile(Path(dir), b, 0o600); err != nil {
		t.Fatal(err)
	}
	before, _ := fsx.LstatID(Path(dir))
	res, err := Write(ctx, dir, s, quietOpts())
	if err != nil {
		t.Fatal(err)
	}
	after, _ := fsx.LstatID(Path(dir))
	if res.Written || !before.Unchanged(after) || after.Mode.Perm() != 0o600 {
		t.Fatalf("rewritten: %+v %s %s", res, before, after)
	}
}

func writeV4(t *testing.T, dir string, s *Spec) {
	t.Helper()
	if _, err := Write(context.Background(), dir, s, quietOpts()); err != nil {
		t.Fatal(err)
	}
}

func TestRefusalMessages(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeV4(t, dir, sampleSpec())
	orig, _ := os.ReadFile(Path(dir))

	s := sampleSpec()
	s.PackageArtifacts[1].MD5Hash = sp(strings.Repeat("b", 32))
	_, err := Write(ctx, dir, s, quietOpts())
	var re *RefusalError
	if !errors.As(err, &re) || re.Kind != ProvenanceMismatch || re.Field != "package_artifacts" {
		t.Fatalf("got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`"package_artifacts"`, "rm -rf -- '" + dir + "'"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	s = sampleSpec()
	s.ModelID = "other/owner"
	_, err = Write(ctx, dir, s, quietOpts())
	if !errors.As(err, &re) || re.Kind != OwnerMismatch || !strings.Contains(err.Error(), `"model_id"`) {
		t.Fatalf("owner: %v", err)
	}
	if b, _ := os.ReadFile(Path(dir)); string(b) != string(orig) {
		t.Fatal("refused write changed the manifest")
	}
	if got := RemoveCommand("/a/it's"); got != `rm -rf -- '/a/it'\''s'` {
		t.Fatalf("quoting: %s", got)
	}
}

func TestGuard(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	want := sampleSpec()

	if res, err := Guard(ctx, dir, want, BeforeMaterialization); err != nil || res.Present {
		t.Fatalf("absent manifest: %+v %v", res, err)
	}

	// Legacy: ids only; null passes, a different owner does not.
	for text, ok := range map[string]bool{
		`{"model_id": null, "canonical_model_id": null, "trusted_source": false}`: true,
		`{"model_id": "ws/p/3"}`:            true,
		`{"model_id": "other/1"}`:           false,
		`{"canonical_model_id": "other/1"}`: false,
		`{"offline_manifest_version": 3}`:   true,
		`[1]`:                               false,
		`{`:                                 false,
	} {
		os.WriteFile(Path(dir), []byte(text), 0o644)
		res, err := Guard(ctx, dir, want, BeforeMaterialization)
		if (err == nil) != ok {
			t.Errorf("%s: err=%v", text, err)
		}
		if err == nil && (!res.Present || res.Complete) {
			t.Errorf("%s: %+v", text, res)
		}
		if err != nil && !errors.Is(err, errdefs.ErrCorruptPackage) {
			t.Errorf("%s: error kind %v", text, err)
		}
	}

	// v4: the sha256 of unhashed files counts only after materialization.
	os.Remove(Path(dir))
	writeV4(t, dir, want)
	changed := sampleSpec()
	changed.PackageArtifacts[0].SHA256Hash = sp(strings.Repeat("9", 64))
	if res, err := Guard(ctx, dir, changed, BeforeMaterialization); err != nil || !res.Complete {
		t.Fatalf("before: %+v %v", res, err)
	}
	_, err := Guard(ctx, dir, changed, AfterMaterialization)
	var re *RefusalError
	if !errors.As(err, &re) || re.Kind != Mutation || re.Field != "package_artifacts" {
		t.Fatalf("after: %v", err)
	}
	if !strings.Contains(err.Error(), "Refusing to mutate a current cached package") || !strings.Contains(err.Error(), "rm -rf -- ") {
		t.Errorf("message: %v", err)
	}
	for name, mutate := range map[string]func(s *Spec){
		"trusted_source": func(s *Spec) { s.TrustedSource = bp(false) },
		"model_features": func(s *Spec) { s.ModelFeatures = nil },
		"recommended_parameters": func(s *Spec) {
			c := 0.5
			s.RecommendedParameters.Confidence = &c
		},
		"dependency_package_paths": func(s *Spec) { s.DependencyPackagePaths = []DependencyPath{depPath("d", "/x/p")} },
		"quantization":             func(s *Spec) { s.Quantization = "fp16" },
	} {
		s := sampleSpec()
		mutate(s)
		_, err := Guard(ctx, dir, s, BeforeMaterialization)
		if !errors.As(err, &re) || re.Field != name {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A v4 manifest must carry both ids.
	doc := want.Document()
	doc.Set("canonical_model_id", nil)
	b, _ := pyjson.Marshal(doc)
	os.WriteFile(Path(dir), b, 0o644)
	if _, err := Guard(ctx, dir, want, BeforeMaterialization); !errors.As(err, &re) || re.Kind != CanonicalMismatch {
		t.Fatalf("v4 with null canonical id: %v", err)
	}
}

func TestSymlinksRefused(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	victim := filepath.Join(outside, "victim.json")
	os.WriteFile(victim, []byte(`{"model_id": "ws/p/3"}`), 0o644)
	snap := func() string {
		fi, _ := os.Lstat(victim)
		b, _ := os.ReadFile(victim)
		ents, _ := os.ReadDir(outside)
		return string(b) + fi.ModTime().String() + strings.Repeat("+", len(ents))
	}
	before := snap()

	// Symlinked package dir.
	parent := t.TempDir()
	linkedPkg := filepath.Join(parent, "pkg")
	os.Symlink(outside, linkedPkg)
	if _, err := Write(ctx, linkedPkg, sampleSpec(), quietOpts()); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("symlinked package dir: %v", err)
	}

	// Symlinked manifest.
	pkg := t.TempDir()
	os.Symlink(victim, Path(pkg))
	if _, err := Write(ctx, pkg, sampleSpec(), quietOpts()); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("symlinked manifest: %v", err)
	}
	if _, err := Guard(ctx, pkg, sampleSpec(), BeforeMaterialization); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("guard on symlinked manifest: %v", err)
	}
	if _, err := Read(ctx, pkg); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("read of symlinked manifest: %v", err)
	}

	// Symlinked lock, pointing at a file that does not exist yet.
	pkg2 := t.TempDir()
	os.Symlink(filepath.Join(outside, "created-through-link"), LockPath(pkg2))
	if _, err := Write(ctx, pkg2, sampleSpec(), quietOpts()); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("symlinked lock: %v", err)
	}
	if _, err := os.Lstat(Path(pkg2)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("manifest written despite the symlinked lock")
	}
	if after := snap(); after != before {
		t.Fatalf("outside directory changed: %q -> %q", before, after)
	}
}

func TestConcurrentWrite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	shared := lock.NewLocker(lock.Options{Logger: quietOpts().Logger})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	written := make(chan bool, 16)
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			opts := quietOpts()
			if i%2 == 0 {
				opts.Locker = shared
			}
			res, err := Write(ctx, dir, sampleSpec(), opts)
			errs <- err
			written <- res.Written
		}(i)
	}
	wg.Wait()
	close(errs)
	close(written)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for w := range written {
		if w {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d writers wrote; want exactly 1", n)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("directory: %v", ents)
	}
	m, err := Read(ctx, dir)
	if err != nil || !m.Complete() {
		t.Fatal(err)
	}
	fi, _ := os.Stat(Path(dir))
	if fi.Mode().Perm() != DefaultPerm {
		t.Fatalf("mode %v", fi.Mode())
	}
}
