package maintain_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/meta"
)

func kinds(r *maintain.VerifyReport, repaired bool) []string {
	var out []string
	for _, f := range r.Findings {
		if f.Repaired == repaired {
			out = append(out, f.Kind)
		}
	}
	sort.Strings(out)
	return out
}

func overwrite(t *testing.T, p string, b []byte) {
	t.Helper()
	// Keep the mtime so that only a hash can tell (stamps are not used: Full).
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func replaceWithFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	maintaintest.WriteFile(t, p, b)
}

func TestVerifyFindsAndRepairs(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, s *standard)
		want    []string // unrepaired findings without --repair
		left    []string // findings still unrepaired after --repair
		// healed: a fresh materialization restores a clean cache afterwards.
		healed bool
	}{
		{name: "clean", breakIt: func(*testing.T, *standard) {}},
		{name: "corrupt blob", breakIt: func(t *testing.T, s *standard) {
			overwrite(t, s.BlobPath(classes), maintaintest.Content("bad", len(classes)))
		}, want: []string{maintain.FindBlobCorrupt}, left: []string{maintain.FindMissingBlob}, healed: true},
		{name: "file in link position, right bytes", breakIt: func(t *testing.T, s *standard) {
			replaceWithFile(t, filepath.Join(s.resB.PackageDir, "other.bin"), otherB)
		}, want: []string{maintain.FindFileInLinkPlace}},
		{name: "file in link position, blob gone too", breakIt: func(t *testing.T, s *standard) {
			replaceWithFile(t, filepath.Join(s.resB.PackageDir, "other.bin"), otherB)
			if err := os.Remove(s.BlobPath(otherB)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{maintain.FindFileInLinkPlace}},
		{name: "file in link position, wrong bytes", breakIt: func(t *testing.T, s *standard) {
			replaceWithFile(t, filepath.Join(s.resB.PackageDir, "other.bin"), []byte("garbage"))
		}, want: []string{maintain.FindFileInLinkPlace}, left: []string{maintain.FindMissingFile}, healed: true},
		{name: "dangling link", breakIt: func(t *testing.T, s *standard) {
			if err := os.Remove(s.BlobPath(segB)); err != nil {
				t.Fatal(err)
			}
		}, want: []string{maintain.FindMissingBlob}, left: []string{maintain.FindMissingBlob}, healed: true},
		{name: "wrong link", breakIt: func(t *testing.T, s *standard) {
			p := filepath.Join(s.resB.PackageDir, "other.bin")
			os.Remove(p)
			symlink(t, s.BlobPath(segB), p)
		}, want: []string{maintain.FindWrongLink}},
		{name: "unhashed file changed", breakIt: func(t *testing.T, s *standard) {
			overwrite(t, filepath.Join(s.resA.PackageDir, "labels/u.txt"), maintaintest.Content("x", len(labels)))
		}, want: []string{maintain.FindFileMismatch}, left: []string{maintain.FindMissingFile}, healed: true},
		{name: "declared file missing", breakIt: func(t *testing.T, s *standard) {
			if err := os.Remove(filepath.Join(s.resA.PackageDir, "extras/kp.json")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{maintain.FindMissingFile}, left: []string{maintain.FindMissingFile}, healed: true},
		{name: "broken manifest", breakIt: func(t *testing.T, s *standard) {
			p := filepath.Join(s.resS.PackageDir, "model_config.json")
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, []byte("[]"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: []string{maintain.FindManifestBroken}, left: []string{maintain.FindManifestBroken}},
		{name: "offline record of a removed package", breakIt: func(t *testing.T, s *standard) {
			s.Record("ws/seg/1", "", s.pkgS)
			if err := os.RemoveAll(s.resS.PackageDir); err != nil {
				t.Fatal(err)
			}
		}, want: []string{maintain.FindOfflinePackage}, left: []string{maintain.FindOfflinePackage}, healed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStandard(t)
			tc.breakIt(t, s)
			r, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(r, false); strings.Join(got, ",") != strings.Join(tc.want, ",") || r.OK != (len(tc.want) == 0) {
				t.Fatalf("findings %v (ok=%v), want %v\n%+v", got, r.OK, tc.want, r.Findings)
			}
			if r.Problems != len(tc.want) || r.Packages < 2 || r.Blobs == 0 {
				t.Errorf("counts: %+v", r)
			}
			if len(tc.want) == 0 {
				return
			}
			r, err = s.M.Verify(ctx, maintain.VerifyOptions{Full: true, Repair: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(kinds(r, true)) == 0 && len(tc.left) == 0 {
				t.Errorf("nothing repaired: %+v", r.Findings)
			}
			after, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			if got := kinds(after, false); strings.Join(got, ",") != strings.Join(tc.left, ",") {
				t.Fatalf("after repair: %v, want %v\n%+v", got, tc.left, after.Findings)
			}
			if tc.healed {
				// The next online load re-downloads what repair removed.
				for _, p := range []maintaintest.Package{s.pkgA, s.pkgB, s.pkgS} {
					s.Materialize(p)
				}
				if final, _ := s.M.Verify(ctx, maintain.VerifyOptions{Full: true}); !final.OK {
					t.Fatalf("after re-materialization: %+v", final.Findings)
				}
			}
		})
	}
}

// A regular file in a link's place with the right bytes becomes the blob:
// renamed into shared-blobs (same inode), and the handle a link.
func TestRepairMovesFileIntoSharedBlobs(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	p := filepath.Join(s.resB.PackageDir, "other.bin")
	replaceWithFile(t, p, otherB)
	if err := os.Remove(s.BlobPath(otherB)); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Lstat(p)
	r, err := s.M.Verify(ctx, maintain.VerifyOptions{Repair: true})
	if err != nil || !r.OK {
		t.Fatalf("%v %+v", err, r)
	}
	if r.Findings[0].Action != "moved into shared-blobs and linked" {
		t.Errorf("action %q", r.Findings[0].Action)
	}
	fi, _ := os.Lstat(p)
	blob, err := os.Lstat(s.BlobPath(otherB))
	if err != nil || fi.Mode()&os.ModeSymlink == 0 || !os.SameFile(before, blob) {
		t.Fatalf("handle %v, blob %v (%v)", fi.Mode(), blob, err)
	}
	if target, _ := os.Readlink(p); target != "../../../shared-blobs/"+maintaintest.MD5(otherB) {
		t.Errorf("link text %q", target)
	}
}

// Incremental verify: blobs whose stamp matches are not read again; --full
// reads them all; a changed mtime invalidates one stamp.
func TestVerifyIncrementalStamps(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	r1, err := s.M.Verify(ctx, maintain.VerifyOptions{})
	if err != nil || !r1.OK || r1.BlobsHashed != 5 || r1.BlobsStamped != 0 {
		t.Fatalf("first: %v %+v", err, r1)
	}
	st, ok, err := meta.LookupVerified(s.C.Home, maintaintest.MD5(weights))
	if !ok || err != nil || st.Size != int64(len(weights)) || st.At.IsZero() {
		t.Fatalf("record %+v %v %v", st, ok, err)
	}
	// One record per blob, in one file: no per-blob files.
	if _, err := os.Stat(filepath.Join(s.Home(), ".meta", "verified")); !os.IsNotExist(err) {
		t.Errorf("per-blob records written: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(s.Home(), ".meta", "verified.log")); err != nil || fi.Size() > 5*120 {
		t.Errorf("verified log: %v %v", fi, err)
	}
	r2, _ := s.M.Verify(ctx, maintain.VerifyOptions{})
	if r2.BlobsHashed != 0 || r2.BlobsStamped != 5 || r2.BytesHashed != int64(len(labels)) {
		t.Errorf("second: hashed %d stamped %d bytes %d", r2.BlobsHashed, r2.BlobsStamped, r2.BytesHashed)
	}
	r3, _ := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
	if r3.BlobsHashed != 5 {
		t.Errorf("--full hashed %d", r3.BlobsHashed)
	}
	later := time.Now().Add(time.Minute)
	os.Chtimes(s.BlobPath(segB), later, later)
	r4, _ := s.M.Verify(ctx, maintain.VerifyOptions{})
	if r4.BlobsHashed != 1 {
		t.Errorf("after touching one blob: hashed %d", r4.BlobsHashed)
	}
	// With a model filter only its blobs are looked at.
	r5, _ := s.M.Verify(ctx, maintain.VerifyOptions{ModelIDs: []string{"ws/seg/1"}, Full: true})
	if r5.Blobs != 2 || r5.Packages != 1 || !r5.OK {
		t.Errorf("filtered: %+v", r5)
	}
	r6, _ := s.M.Verify(ctx, maintain.VerifyOptions{ModelIDs: []string{"nobody/1"}})
	if r6.OK || kinds(r6, false)[0] != maintain.FindModelNotFound {
		t.Errorf("unknown model: %+v", r6)
	}
}

// Offline, nothing is written: no stamps; repairs, GC and purge refuse.
func TestOfflineWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	oc := openOffline(t, s.Config)
	r, err := oc.Verify(ctx, maintain.VerifyOptions{})
	if err != nil || !r.OK || r.BlobsHashed != 5 {
		t.Fatalf("%v %+v", err, r)
	}
	if exists(filepath.Join(s.Home(), ".meta", "verified")) {
		t.Error("offline verify wrote stamps")
	}
	if _, err := oc.Verify(ctx, maintain.VerifyOptions{Repair: true}); !errors.Is(err, errdefs.ErrOffline) {
		t.Errorf("repair offline: %v", err)
	}
	if _, err := oc.GC(ctx, maintain.GCOptions{}); !errors.Is(err, errdefs.ErrOffline) {
		t.Errorf("gc offline: %v", err)
	}
	if _, err := oc.Purge(ctx, maintain.PurgeOptions{All: true}); !errors.Is(err, errdefs.ErrOffline) {
		t.Errorf("purge offline: %v", err)
	}
	if rep, err := oc.GC(ctx, maintain.GCOptions{DryRun: true}); err != nil || len(rep.Removed) != 0 {
		t.Errorf("gc --dry-run offline: %v %+v", err, rep)
	}
}

func openOffline(t *testing.T, cfg config.Config) *maintain.Maintainer {
	t.Helper()
	cfg.Offline = true
	oc, err := cache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return maintain.New(oc)
}
