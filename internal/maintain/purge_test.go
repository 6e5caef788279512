package maintain_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/meta"
)

// tree lists every path under root with its size and mtime (not following
// links), to prove that a dry run changes nothing.
func tree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(root, p)
		b.WriteString(rel + " " + fi.Mode().String() + " " + fi.ModTime().String())
		if !fi.IsDir() {
			b.WriteString(" " + string(rune('0'+fi.Size()%10)))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func noDangling(t *testing.T, s *maintaintest.Cache) {
	t.Helper()
	ctx := context.Background()
	u, err := s.M.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if u.BlobsOrphaned.Count != 0 {
		t.Errorf("orphaned blobs left: %+v", u.BlobsOrphaned)
	}
	g, err := s.M.GC(ctx, maintain.GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range g.Problems {
		t.Errorf("after purge: %s %s", p.Kind, p.Path)
	}
	if g.Blobs.Count != 0 {
		t.Errorf("blobs still collectable: %+v", g.Removed)
	}
	v, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
	if err != nil || !v.OK {
		t.Errorf("verify after purge: %v %+v", err, v.Findings)
	}
}

// Purging a model removes its packages, the entries naming them and its
// offline record first, then collects the blobs only it used; the bytes
// reclaimed equal what du -b counted for exactly those files; the dry run
// predicts the same number and changes nothing.
func TestPurgeModel(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	kA := s.Register("ws/det/3", s.resA)
	kB := s.Register("det-alias", s.resB)
	kS := s.Register("ws/seg/1", s.resS)
	s.Record("ws/det/3", "det-alias", s.pkgA, s.pkgB)
	s.Record("ws/seg/1", "", s.pkgS)
	if err := meta.TouchLastUsed(s.C.Home, "ws/det/3", "onnxa"); err != nil {
		t.Fatal(err)
	}
	detRecord, _ := s.C.Registry.RecordPath("ws/det/3")
	segRecord, _ := s.C.Registry.RecordPath("ws/seg/1")
	want := maintaintest.DuSB(t, s.resA.PackageDir) + maintaintest.DuSB(t, s.resB.PackageDir) +
		maintaintest.DuCB(t, s.BlobPath(classes), s.BlobPath(keypts), s.BlobPath(otherB),
			s.C.Resolutions.EntryPath(kA), s.C.Resolutions.EntryPath(kB), detRecord)

	before := tree(t, s.Home())
	dry, err := s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"ws/det/3"}, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.ReclaimedBytes != want || tree(t, s.Home()) != before {
		t.Fatalf("dry run: %d reclaimable, want %d; tree changed: %v", dry.ReclaimedBytes, want, tree(t, s.Home()) != before)
	}
	rep, err := s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"ws/det/3"}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ReclaimedBytes != want {
		t.Errorf("reclaimed %d, want %d\n%+v", rep.ReclaimedBytes, want, rep)
	}
	if len(rep.Packages) != 2 || !rep.Packages[0].Removed || !rep.Packages[1].Removed || len(rep.Entries) != 2 ||
		len(rep.Records) != 1 || !rep.Records[0].Deleted || rep.GC.Blobs.Count != 3 {
		t.Errorf("report %+v, gc %+v", rep, rep.GC)
	}
	for _, p := range []string{s.resA.PackageDir, s.resB.PackageDir, s.C.Resolutions.EntryPath(kA), s.C.Resolutions.EntryPath(kB),
		detRecord, s.BlobPath(classes), s.BlobPath(keypts), s.BlobPath(otherB)} {
		if exists(p) {
			t.Errorf("%s survived", p)
		}
	}
	for _, p := range []string{s.resS.PackageDir, s.C.Resolutions.EntryPath(kS), segRecord, s.BlobPath(weights), s.BlobPath(segB)} {
		if !exists(p) {
			t.Errorf("%s was removed", p)
		}
	}
	if _, ok, _ := meta.LastUsed(s.C.Home, "ws/det/3", "onnxa"); ok {
		t.Error("last-used stamp survived")
	}
	noDangling(t, s.Cache)
}

func TestPurgeOptions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		opts  maintain.PurgeOptions
		check func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string)
	}{
		{"one package", maintain.PurgeOptions{ModelIDs: []string{"ws/det/3"}, PackageIDs: []string{"onnxb"}},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				if exists(s.resB.PackageDir) || !exists(s.resA.PackageDir) || exists(s.BlobPath(otherB)) || !exists(s.BlobPath(weights)) {
					t.Error("wrong package or blobs removed")
				}
				rec, err := s.C.Registry.Lookup(ctx, "ws/det/3")
				if err != nil || rec == nil {
					t.Fatalf("record gone: %v", err)
				}
				meta, _ := rec.ModelMetadata(nil)
				if len(meta.Packages) != 1 || meta.Packages[0].PackageID != "onnxa" {
					t.Errorf("record packages %+v", meta.Packages)
				}
				if pr, _ := rec.Doc.Get("proven"); strings.Contains(pr.(interface{ Keys() []string }).Keys()[0], "onnxb") {
					t.Error("proven still lists onnxb")
				}
				if len(r.Entries) != 1 || !exists(s.C.Resolutions.EntryPath(keys[0])) {
					t.Errorf("entries %+v", r.Entries)
				}
			}},
		{"resolution cache", maintain.PurgeOptions{ResolutionCache: true},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				for _, k := range keys {
					if exists(s.C.Resolutions.EntryPath(k)) {
						t.Errorf("entry %s survived", k)
					}
				}
				if len(r.Packages) != 0 || r.GC.Blobs.Count != 0 || !exists(s.resA.PackageDir) {
					t.Errorf("removed more than entries: %+v", r)
				}
			}},
		{"resolution cache of one model", maintain.PurgeOptions{ModelIDs: []string{"ws/seg/1"}, ResolutionCache: true},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				if !exists(s.C.Resolutions.EntryPath(keys[0])) || exists(s.C.Resolutions.EntryPath(keys[2])) {
					t.Error("wrong entries removed")
				}
			}},
		{"models", maintain.PurgeOptions{Models: true},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				ents, _ := os.ReadDir(s.C.Home.SharedBlobs())
				for _, e := range ents {
					if !strings.HasPrefix(e.Name(), ".") {
						t.Errorf("blob %s survived", e.Name())
					}
				}
				recs, _ := s.C.Registry.Records(ctx)
				if len(recs) != 0 || len(r.Packages) != 3 || r.GC.Blobs.Count != 5 {
					t.Errorf("records %d, report %+v", len(recs), r)
				}
			}},
		{"blobs", maintain.PurgeOptions{Blobs: true},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				if r.GC.Blobs.Count != 1 || exists(s.BlobPath(maintaintest.Content("young orphan", 77))) || len(r.Packages) != 0 {
					t.Errorf("blobs: %+v", r.GC.Removed)
				}
			}},
		{"all", maintain.PurgeOptions{All: true},
			func(t *testing.T, s *standard, r *maintain.PurgeReport, keys []string) {
				l, _ := s.M.List(ctx)
				u, _ := s.M.DiskUsage(ctx)
				recs, _ := s.C.Registry.Records(ctx)
				if len(l.Models) != 0 || u.Blobs.Count != 0 || u.Entries.Count != 0 || len(recs) != 0 || u.PackageFiles.Count != 0 {
					t.Errorf("left: %d models, usage %+v, %d records", len(l.Models), u, len(recs))
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStandard(t)
			keys := []string{s.Register("ws/det/3", s.resA), s.Register("ws/det/3", s.resB), s.Register("ws/seg/1", s.resS)}
			s.Record("ws/det/3", "", s.pkgA, s.pkgB)
			if tc.opts.Blobs {
				putBlob(t, s.Cache, maintaintest.Content("young orphan", 77))
			}
			tc.opts.Grace, tc.opts.PartialGrace = time.Hour, 24*time.Hour
			r, err := s.M.Purge(ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s, r, keys)
			noDangling(t, s.Cache)
		})
	}
}

func TestPurgeRefusals(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	// A lease protects onnxa; onnxb goes.
	if _, err := meta.CreateLease(s.C.Home, nil, []string{"ws/det/3/onnxa"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	r, err := s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"ws/det/3"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Packages[0].Skipped, "lease") || !r.Packages[1].Removed || !exists(s.resA.PackageDir) || !exists(s.BlobPath(classes)) {
		t.Errorf("lease: %+v", r.Packages)
	}
	// A dependency of a package that stays is kept.
	dep := s.Materialize(maintaintest.Package{ModelID: "enc/1", PackageID: "e", Files: map[string][]byte{"enc.bin": maintaintest.Content("enc", 99)}})
	parent := maintaintest.Package{ModelID: "par/1", PackageID: "p", Files: map[string][]byte{"w": maintaintest.Content("par", 98)},
		Deps: []materialize.Dependency{{Name: "enc", PackageDir: dep.PackageDir}}}
	s.Materialize(parent)
	r, err = s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"enc/1"}})
	if err != nil || !strings.Contains(r.Packages[0].Skipped, "dependency") || !exists(dep.PackageDir) {
		t.Errorf("dependency: %v %+v", err, r)
	}
	// Both together go.
	if r, err = s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"enc/1", "par/1"}}); err != nil || !r.Packages[0].Removed || !r.Packages[1].Removed {
		t.Errorf("dependency with parent: %v %+v", err, r)
	}
	// Nothing cached for an id: reported as gone, not an error (a rerun of
	// an interrupted purge must succeed).
	if r, err := s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"nobody/1"}}); err != nil ||
		len(r.Models) != 1 || r.Models[0].State != "gone" {
		t.Errorf("unknown model: %v %+v", err, r)
	}
	if _, err := s.M.Purge(ctx, maintain.PurgeOptions{}); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Errorf("no selection: %v", err)
	}
	if _, err := s.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: []string{"ws/seg/1"}, PackageIDs: []string{"../x"}}); err == nil {
		t.Error("hostile package id accepted")
	}
}

// Verify checks dependency links; repair re-points a wrong one at its
// recorded target.
func TestVerifyDependencyLink(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	dep := s.Materialize(maintaintest.Package{ModelID: "enc/1", PackageID: "e", Files: map[string][]byte{"enc.bin": maintaintest.Content("enc", 99)}})
	parent := s.Materialize(maintaintest.Package{ModelID: "par/1", PackageID: "p", Files: map[string][]byte{"w": maintaintest.Content("par", 98)},
		Deps: []materialize.Dependency{{Name: "enc", PackageDir: dep.PackageDir}}})
	if r, _ := s.M.Verify(ctx, maintain.VerifyOptions{}); !r.OK {
		t.Fatalf("clean: %+v", r.Findings)
	}
	link := filepath.Join(parent.PackageDir, "model_dependencies", "enc")
	os.Remove(link)
	symlink(t, s.resS.PackageDir, link)
	r, _ := s.M.Verify(ctx, maintain.VerifyOptions{ModelIDs: []string{"par/1"}})
	if got := kinds(r, false); len(got) != 1 || got[0] != maintain.FindDependency {
		t.Fatalf("findings %+v", r.Findings)
	}
	r, _ = s.M.Verify(ctx, maintain.VerifyOptions{ModelIDs: []string{"par/1"}, Repair: true})
	if !r.OK {
		t.Fatalf("repair: %+v", r.Findings)
	}
	if real, _ := filepath.EvalSymlinks(link); real != dep.PackageDir {
		if rd, _ := filepath.EvalSymlinks(dep.PackageDir); real != rd {
			t.Errorf("link resolves to %s", real)
		}
	}
}
