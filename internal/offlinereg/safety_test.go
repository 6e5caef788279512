package offlinereg

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
)

// snapshot lists every path under dir with its content, to prove a target
// was left untouched.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b) + "|" + fi.Mode().String()
		} else {
			out[rel] = fi.Mode().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, before, after map[string]string) {
	t.Helper()
	if len(before) != len(after) {
		t.Fatalf("target changed: %v -> %v", before, after)
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("target %s changed: %q -> %q", k, v, after[k])
		}
	}
}

func TestSymlinkedRegistryDirRefused(t *testing.T) {
	root := t.TempDir()
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "keep.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg, _ := newTestRegistry(t, root)
	if err := os.Symlink(target, reg.Dir()); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, target)
	ok, err := reg.RecordSuccessfulLoad(context.Background(), loadMeta("pkg1"), "alias", "pkg1", SourceWarmup, time.Now())
	var se *SymlinkError
	if ok || !errors.As(err, &se) || !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("got %v, %v; want a refused symlink", ok, err)
	}
	sameSnapshot(t, before, snapshot(t, target)) // not even a lock file

	// Readers refuse it too, without reading the target.
	if _, err := reg.Lookup(context.Background(), "race/model/1"); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Errorf("Lookup through a symlinked dir: %v", err)
	}
	if _, err := reg.List(context.Background()); !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Errorf("List through a symlinked dir: %v", err)
	}
}

func TestSymlinkedRecordRefused(t *testing.T) {
	root := t.TempDir()
	reg, _ := newTestRegistry(t, root)
	ctx := context.Background()
	// A valid record elsewhere, linked in as the record of our model.
	other := t.TempDir()
	otherReg, _ := newTestRegistry(t, other)
	if ok, err := otherReg.RecordSuccessfulLoad(ctx, loadMeta("pkg0"), "race/model/1", "pkg0", SourceWarmup, time.Now()); !ok || err != nil {
		t.Fatal(ok, err)
	}
	targetPath, _ := otherReg.RecordPath("race/model/1")
	before := snapshot(t, other)

	path, _ := reg.RecordPath("race/model/1")
	if err := os.MkdirAll(reg.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(targetPath, path); err != nil {
		t.Fatal(err)
	}
	ok, err := reg.RecordSuccessfulLoad(ctx, loadMeta("pkg1"), "alias", "pkg1", SourceWarmup, time.Now())
	if ok || !errors.Is(err, errdefs.ErrSymlinkRefused) {
		t.Fatalf("got %v, %v; want a refused symlink", ok, err)
	}
	sameSnapshot(t, before, snapshot(t, other))
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("link replaced: %v %v", fi, err)
	}
	// The reader skips the link (with a warning) rather than following it.
	reg2, logs := newTestRegistry(t, root)
	if m, err := reg2.LoadModelMetadata(ctx, "race/model/1"); m != nil || err != nil {
		t.Fatalf("read through a symlinked record: %v %v", m, err)
	}
	if !logs.Contains("symlink") {
		t.Errorf("no warning about the symlink:\n%s", logs)
	}
}

func writeRecordFile(t *testing.T, reg *Registry, name, text string) string {
	t.Helper()
	if err := os.MkdirAll(reg.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(reg.Dir(), name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const minimalRecord = `{"format_version": 1, "canonical_model_id": "%s", "requested_aliases": ["shared"],
 "model": {"model_architecture": "yolov8"},
 "packages": [{"package_id": "p1", "backend": "onnx", "artifacts": [{"file_handle": "w.onnx", "md5_hash": "0123456789abcdef0123456789abcdef"}]}],
 "proven": {}}`

func TestMalformedRecordsSkippedWithWarning(t *testing.T) {
	reg, logs := newTestRegistry(t, t.TempDir())
	ctx := context.Background()
	bad := map[string]string{
		"a-invalid.json":      `{"format_version": 1,`,
		"b-array.json":        `[1, 2]`,
		"c-string-fv.json":    `{"format_version": "1", "canonical_model_id": "x", "requested_aliases": ["shared"]}`,
		"d-bool-fv.json":      `{"format_version": true, "canonical_model_id": "x", "requested_aliases": ["shared"]}`,
		"e-newer.json":        `{"format_version": 2, "canonical_model_id": "x", "requested_aliases": ["shared"]}`,
		"f-missing-fv.json":   `{"canonical_model_id": "x", "requested_aliases": ["shared"]}`,
		"g-bom.json":          "\ufeff" + `{"format_version": 1}`,
		"h-not-utf8.json":     "{\"format_version\": 1, \"canonical_model_id\": \"\xff\"}",
		"i-float-fv.json":     `{"format_version": 1.0, "canonical_model_id": "x", "requested_aliases": ["shared"]}`,
		"j-no-canonical.json": `{"format_version": 1, "requested_aliases": ["other"], "packages": []}`,
	}
	for name, text := range bad {
		writeRecordFile(t, reg, name, text)
	}
	if err := os.Mkdir(filepath.Join(reg.Dir(), "k-dir.json"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeRecordFile(t, reg, ".hidden.json", `{"format_version": 1, "canonical_model_id": "x", "requested_aliases": ["shared"]}`)
	writeRecordFile(t, reg, "notes.txt", `{"format_version": 1, "canonical_model_id": "x", "requested_aliases": ["shared"]}`)
	writeRecordFile(t, reg, "z-good.json", sprintf(minimalRecord, "good/1"))

	recs, err := reg.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 { // j-no-canonical parses; only List skips it
		t.Fatalf("records: %d", len(recs))
	}
	m, err := reg.LoadModelMetadata(ctx, "shared")
	if err != nil || m == nil || m.ModelID != "good/1" {
		t.Fatalf("alias lookup past malformed records: %+v %v", m, err)
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 1 || list[0].CanonicalModelID != "good/1" {
		t.Fatalf("list: %+v %v", list, err)
	}
	for _, want := range []string{"a-invalid.json", "b-array.json", "c-string-fv.json", "d-bool-fv.json",
		"e-newer.json", "f-missing-fv.json", "g-bom.json", "h-not-utf8.json", "i-float-fv.json", "k-dir.json",
		"newer inference-models release", "without a valid canonical_model_id"} {
		if !logs.Contains(want) {
			t.Errorf("no warning mentioning %q", want)
		}
	}
	for _, never := range []string{".hidden.json", "notes.txt"} {
		if logs.Contains(never) {
			t.Errorf("%s was read", never)
		}
	}
}

func TestWriterReplacesUnreadableRecord(t *testing.T) {
	reg, logs := newTestRegistry(t, t.TempDir())
	ctx := context.Background()
	path, _ := reg.RecordPath("race/model/1")
	writeRecordFile(t, reg, filepath.Base(path), `{not json`)
	ok, err := reg.RecordSuccessfulLoad(ctx, loadMeta("pkg1"), "race/model/1", "pkg1", "", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if !ok || err != nil {
		t.Fatal(ok, err)
	}
	if !logs.Contains("replacing unreadable record") {
		t.Error("no warning")
	}
	rec, err := reg.Lookup(ctx, "race/model/1")
	if err != nil || rec == nil {
		t.Fatal(err)
	}
	if s, _ := rec.Source(); s != SourceWarmup {
		t.Errorf("empty source not defaulted: %q", s)
	}
}

func TestContextCancelled(t *testing.T) {
	reg, _ := newTestRegistry(t, t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if ok, err := reg.RecordSuccessfulLoad(ctx, loadMeta("pkg1"), "a", "pkg1", SourceWarmup, time.Now()); ok || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v %v", ok, err)
	}
}

func TestLockTimeout(t *testing.T) {
	root := t.TempDir()
	reg, _ := newTestRegistry(t, root)
	reg.lockTimeout = 150 * time.Millisecond
	ctx := context.Background()
	// Hold the record lock through a different Locker, as another process would.
	other, _ := newTestRegistry(t, root)
	if err := os.MkdirAll(reg.Dir(), 0o755); err != nil {
		t.Fatal(err)
	}
	lp, _ := reg.home.OfflineRecordLockPath("race/model/1")
	held, err := other.locker.Lock(ctx, lp)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	ok, err := reg.RecordSuccessfulLoad(ctx, loadMeta("pkg1"), "a", "pkg1", SourceWarmup, time.Now())
	if ok || !errors.Is(err, errdefs.ErrLockTimeout) {
		t.Fatalf("got %v %v, want a lock timeout", ok, err)
	}
	if p, _ := reg.RecordPath("race/model/1"); fileExists(p) {
		t.Error("record written without the lock")
	}
}

func fileExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
