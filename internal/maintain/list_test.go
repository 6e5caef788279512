package maintain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/meta"
)

// Every size List reports equals what coreutils du -b counts for the same
// files: package dirs, model dirs, the blobs a package links to.
func TestListSizesMatchDu(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	// A partial package (no manifest) and a broken one.
	partial := s.Materialize(maintaintest.Package{ModelID: "ws/seg/1", PackageID: "inprogress",
		Files: map[string][]byte{"seg.bin": segB, "only.bin": maintaintest.Content("only", 1234)}, NoManifest: true})
	broken := filepath.Join(filepath.Dir(s.resS.PackageDir), "broken")
	maintaintest.WriteFile(t, filepath.Join(broken, "model_config.json"), []byte("{not json"))
	if err := meta.TouchLastUsed(s.C.Home, "ws/det/3", "onnxa"); err != nil {
		t.Fatal(err)
	}

	l, err := s.M.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Models) != 2 || l.Models[0].ModelID != "ws/det/3" || l.Models[1].ModelID != "ws/seg/1" {
		t.Fatalf("models: %+v", l.Models)
	}
	blob := func(b []byte) string { return s.BlobPath(b) }
	want := map[string]struct {
		state  cache.PackageState
		blobs  []string
		shared int64
	}{
		"onnxa":      {cache.StateComplete, []string{blob(weights), blob(classes), blob(keypts)}, int64(len(weights))},
		"onnxb":      {cache.StateComplete, []string{blob(weights), blob(otherB)}, int64(len(weights))},
		"segp":       {cache.StateComplete, []string{blob(weights), blob(segB)}, int64(len(weights) + len(segB))},
		"inprogress": {cache.StatePartial, []string{blob(segB), blob(maintaintest.Content("only", 1234))}, int64(len(segB))},
		"broken":     {cache.StateBroken, nil, 0},
	}
	var allDirs, allBlobs []string
	for _, m := range l.Models {
		if got, du := m.DirBytes, maintaintest.DuSB(t, m.Dir); got != du {
			t.Errorf("model %s: dir bytes %d, du -sb %d", m.ModelID, got, du)
		}
		allDirs = append(allDirs, m.Dir)
		for _, p := range m.Packages {
			w, ok := want[p.PackageID]
			if !ok {
				t.Fatalf("unexpected package %s", p.PackageID)
			}
			delete(want, p.PackageID)
			if p.State != w.state {
				t.Errorf("%s: state %s, want %s", p.PackageID, p.State, w.state)
			}
			if got, du := p.DirBytes, maintaintest.DuSB(t, p.Dir); got != du {
				t.Errorf("%s: dir bytes %d, du -sb %d", p.PackageID, got, du)
			}
			if got, du := p.BlobBytes, maintaintest.DuCB(t, w.blobs...); got != du {
				t.Errorf("%s: blob bytes %d, du -cb of its blobs %d", p.PackageID, got, du)
			}
			if p.SizeBytes != p.DirBytes+p.BlobBytes || p.SharedBytes != w.shared {
				t.Errorf("%s: size %d shared %d, want %d and %d", p.PackageID, p.SizeBytes, p.SharedBytes, p.DirBytes+p.BlobBytes, w.shared)
			}
			allBlobs = append(allBlobs, w.blobs...)
			if (p.LastUsed != nil) != (p.PackageID == "onnxa") {
				t.Errorf("%s: last used %v", p.PackageID, p.LastUsed)
			}
		}
	}
	if len(want) != 0 {
		t.Errorf("packages not listed: %v", want)
	}
	// The model totals count each blob once; so does du -cb over the same paths.
	if got, du := l.TotalBytes, maintaintest.DuCB(t, append(allDirs, allBlobs...)...); got != du {
		t.Errorf("total %d, du -cb %d", got, du)
	}
	// ws/seg/1 shares weights with ws/det/3 only.
	if seg := l.Models[1]; seg.SharedBytes != int64(len(weights)) {
		t.Errorf("ws/seg/1 shared bytes %d, want %d", seg.SharedBytes, len(weights))
	}
	_ = partial
}

// DiskUsage puts every byte under H in one category: the total equals
// du -sb H, the blob category du -cb of the blob files.
func TestDiskUsageMatchesDu(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	s.Register("det", s.resA)
	s.Record("ws/det/3", "", s.pkgA)
	orphan := maintaintest.Content("orphan", 4321)
	if _, err := s.C.Blobs.Put(ctx, maintaintest.MD5(orphan), strings.NewReader(string(orphan)), int64(len(orphan))); err != nil {
		t.Fatal(err)
	}
	partial := filepath.Join(s.C.Home.SharedBlobs(), "."+maintaintest.MD5(segB)+".partial-0123456789abcdef")
	maintaintest.WriteFile(t, partial, make([]byte, 999))
	if err := meta.TouchLastUsed(s.C.Home, "ws/det/3", "onnxa"); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(s.Home(), "stray-link")); err != nil {
		t.Fatal(err)
	}

	u, err := s.M.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if du := maintaintest.DuSB(t, s.Home()); u.TotalBytes != du {
		t.Errorf("total %d, du -sb H %d", u.TotalBytes, du)
	}
	sum := u.Blobs.Bytes + u.PackageFiles.Bytes + u.Entries.Bytes + u.Records.Bytes + u.Temps.Bytes + u.Locks.Bytes +
		u.Meta.Bytes + u.Directories.Bytes + u.Other.Bytes
	if sum != u.TotalBytes {
		t.Errorf("categories add up to %d, total %d", sum, u.TotalBytes)
	}
	blobs := []string{s.BlobPath(weights), s.BlobPath(classes), s.BlobPath(keypts), s.BlobPath(otherB), s.BlobPath(segB), s.BlobPath(orphan)}
	if du := maintaintest.DuCB(t, blobs...); u.Blobs.Bytes != du || u.Blobs.Count != 6 {
		t.Errorf("blobs %+v, du -cb %d over 6", u.Blobs, du)
	}
	if u.BlobsShared != (maintain.Usage{Count: 1, Bytes: int64(len(weights))}) ||
		u.BlobsOrphaned != (maintain.Usage{Count: 1, Bytes: int64(len(orphan))}) ||
		u.BlobsUnique.Count != 4 || u.SavedBytes != 2*int64(len(weights)) {
		t.Errorf("blob split: unique %+v shared %+v orphaned %+v saved %d", u.BlobsUnique, u.BlobsShared, u.BlobsOrphaned, u.SavedBytes)
	}
	if u.Temps != (maintain.Usage{Count: 1, Bytes: 999}) || u.Entries.Count != 1 || u.Records.Count != 1 {
		t.Errorf("temps %+v entries %+v records %+v", u.Temps, u.Entries, u.Records)
	}
	if u.Other.Count != 2 { // CACHEDIR.TAG and the stray link
		t.Errorf("other %+v", u.Other)
	}
}

func TestShow(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	key := s.Register("det-alias", s.resA)
	s.Record("ws/det/3", "det-alias", s.pkgA, s.pkgB)
	outside := filepath.Join(t.TempDir(), "secret")
	maintaintest.WriteFile(t, outside, []byte("outside"))
	symlink(t, outside, filepath.Join(s.resA.PackageDir, "planted"))

	d, err := s.M.Show(ctx, "ws/det/3")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Packages) != 2 || len(d.Entries) != 1 || d.Entries[0].Key != key || len(d.Offline) != 1 {
		t.Fatalf("show: %d packages, entries %+v, records %d", len(d.Packages), d.Entries, len(d.Offline))
	}
	files := map[string]maintain.FileDetail{}
	for _, f := range d.Packages[0].Files {
		files[f.Path] = f
	}
	w := files["weights.onnx"]
	if w.Kind != "link" || w.Blob != maintaintest.MD5(weights) || w.LinkState != "blob" || w.BlobBytes != int64(len(weights)) || !w.Declared {
		t.Errorf("weights.onnx: %+v", w)
	}
	if u := files["labels/u.txt"]; u.Kind != "file" || u.Storage != "package_file" || u.Size != int64(len(labels)) {
		t.Errorf("labels/u.txt: %+v", u)
	}
	if p := files["planted"]; p.Kind != "link" || p.LinkState != "outside-cache" || p.Declared {
		t.Errorf("planted: %+v", p)
	}
	if _, ok := files["model_config.json"]; !ok {
		t.Error("manifest not listed")
	}
	for _, p := range d.Offline[0].Packages {
		if p.Presence != "ok" {
			t.Errorf("offline package %v: %s", *p.PackageID, p.Presence)
		}
	}
	// The alias finds the record and, through it, the packages.
	if d, err := s.M.Show(ctx, "det-alias"); err != nil || len(d.Packages) != 2 || len(d.Entries) != 1 {
		t.Errorf("show alias: %v %+v", err, d)
	}
	var nf *maintain.NotFoundError
	if _, err := s.M.Show(ctx, "nobody/1"); !errors.As(err, &nf) {
		t.Errorf("unknown model: %v", err)
	}
	// A missing declared file is listed as missing.
	if err := os.Remove(filepath.Join(s.resB.PackageDir, "other.bin")); err != nil {
		t.Fatal(err)
	}
	d, _ = s.M.Show(ctx, "ws/det/3")
	found := false
	for _, f := range d.Packages[1].Files {
		found = found || (f.Path == "other.bin" && f.Kind == "missing")
	}
	if !found {
		t.Errorf("missing file not shown: %+v", d.Packages[1].Files)
	}
}

func TestTouchLastUsed(t *testing.T) {
	c := maintaintest.New(t)
	if _, ok, err := meta.LastUsed(c.C.Home, "a/1", "p1"); ok || err != nil {
		t.Fatalf("fresh: %v %v", ok, err)
	}
	if err := meta.TouchLastUsed(c.C.Home, "a/1", "p1"); err != nil {
		t.Fatal(err)
	}
	p, _ := meta.LastUsedPath(c.C.Home, "a/1", "p1")
	old := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(p, old, old); err != nil {
		t.Fatal(err)
	}
	if err := meta.TouchLastUsed(c.C.Home, "a/1", "p1"); err != nil {
		t.Fatal(err)
	}
	at, ok, err := meta.LastUsed(c.C.Home, "a/1", "p1")
	if !ok || err != nil || time.Since(at) > time.Minute {
		t.Fatalf("after touch: %v %v %v", at, ok, err)
	}
	// A planted symlink at the stamp is refused; its target keeps its mtime.
	target := filepath.Join(t.TempDir(), "target")
	maintaintest.WriteFile(t, target, []byte("x"))
	if err := os.Chtimes(target, old, old); err != nil {
		t.Fatal(err)
	}
	p2, _ := meta.LastUsedPath(c.C.Home, "a/1", "p2")
	symlink(t, target, p2)
	if err := meta.TouchLastUsed(c.C.Home, "a/1", "p2"); err == nil {
		t.Fatal("symlinked stamp accepted")
	}
	if fi, _ := os.Stat(target); !fi.ModTime().Equal(old) {
		t.Error("target of the planted link was touched")
	}
	if err := meta.TouchLastUsed(c.C.Home, "a/1", "bad/id"); err == nil {
		t.Error("invalid package id accepted")
	}
}

func TestLeases(t *testing.T) {
	ctx := context.Background()
	c := maintaintest.New(t)
	release, err := meta.CreateLease(c.C.Home, []string{maintaintest.MD5(weights)}, []string{"ws/det/3/onnxa"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leases, bad, err := meta.ReadLeases(ctx, c.C.Home)
	if err != nil || len(bad) != 0 || len(leases) != 1 {
		t.Fatalf("%v %v %v", leases, bad, err)
	}
	l := leases[0]
	if l.PID != os.Getpid() || l.Blobs[0] != maintaintest.MD5(weights) || l.Expired(time.Now()) || !l.Expired(time.Now().Add(2*time.Hour)) {
		t.Errorf("lease %+v", l)
	}
	if _, err := meta.CreateLease(c.C.Home, []string{"NOTMD5"}, nil, time.Hour); err == nil {
		t.Error("invalid md5 accepted")
	}
	if err := release(); err != nil || exists(l.Path) {
		t.Errorf("release: %v", err)
	}
}
