package maintain_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/meta"
)

func putBlob(t *testing.T, s *maintaintest.Cache, b []byte) string {
	t.Helper()
	p, err := s.C.Blobs.Put(context.Background(), maintaintest.MD5(b), strings.NewReader(string(b)), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func removedPaths(r *maintain.GCReport, kind string) []string {
	var out []string
	for _, it := range r.Removed {
		if kind == "" || it.Kind == kind {
			out = append(out, it.Path)
		}
	}
	sort.Strings(out)
	return out
}

// GC removes exactly the orphaned blobs: bytes reclaimed equal the bytes of
// the orphans (du -cb before), and every blob something names survives.
func TestGCCollectsOnlyOrphans(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)

	// Named only by an auto-resolution entry (its package dir is gone).
	entryOnly := maintaintest.Content("entry-only", 2_000)
	res := s.Materialize(maintaintest.Package{ModelID: "e/1", PackageID: "p", Files: map[string][]byte{"w": entryOnly}})
	s.Register("e/1", res)
	// Named only by an offline record.
	recordOnly := maintaintest.Content("record-only", 3_000)
	recPkg := maintaintest.Package{ModelID: "r/1", PackageID: "p", Files: map[string][]byte{"w": recordOnly}}
	res2 := s.Materialize(recPkg)
	s.Record("r/1", "", recPkg)
	for _, d := range []string{res.PackageDir, res2.PackageDir} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	// Named only by a lease.
	leased := maintaintest.Content("leased", 1_500)
	putBlob(t, s.Cache, leased)
	if _, err := meta.CreateLease(s.C.Home, []string{maintaintest.MD5(leased)}, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Linked only by an in-progress package and by a package whose manifest is broken.
	progress := maintaintest.Content("progress", 2_500)
	s.Materialize(maintaintest.Package{ModelID: "i/1", PackageID: "p", Files: map[string][]byte{"w": progress}, NoManifest: true})
	brokenB := maintaintest.Content("broken", 2_600)
	res3 := s.Materialize(maintaintest.Package{ModelID: "b/1", PackageID: "p", Files: map[string][]byte{"w": brokenB}})
	if err := os.WriteFile(filepath.Join(res3.PackageDir, "model_config.json"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Orphans: two old, one young, one old whose lock is held.
	o1, o2 := maintaintest.Content("o1", 11_111), maintaintest.Content("o2", 22_222)
	young, locked := maintaintest.Content("young", 333), maintaintest.Content("locked", 444)
	orphans := []string{putBlob(t, s.Cache, o1), putBlob(t, s.Cache, o2)}
	sort.Strings(orphans)
	putBlob(t, s.Cache, locked)
	s.AgeBlobs(2 * time.Hour)
	putBlob(t, s.Cache, young)
	held, err := s.C.Blobs.Lock(ctx, maintaintest.MD5(locked))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()

	want := maintaintest.DuCB(t, orphans...)
	dry, err := s.M.GC(ctx, maintain.GCOptions{DryRun: true, Grace: time.Hour, PartialGrace: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// The dry run cannot know about locks: it counts the locked orphan too.
	if dry.Blobs.Bytes != want+int64(len(locked)) || !exists(orphans[0]) {
		t.Fatalf("dry run: %+v (want %d)", dry.Blobs, want+int64(len(locked)))
	}
	rep, err := s.M.GC(ctx, maintain.GCOptions{Grace: time.Hour, PartialGrace: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Blobs.Bytes != want || rep.Blobs.Count != 2 || rep.ReclaimedBytes != want {
		t.Fatalf("reclaimed %+v (%d), want %d bytes of 2 orphans\n%+v", rep.Blobs, rep.ReclaimedBytes, want, rep.Removed)
	}
	if got := removedPaths(rep, "blob"); strings.Join(got, ",") != strings.Join(orphans, ",") {
		t.Errorf("removed %v, want %v", got, orphans)
	}
	for _, b := range [][]byte{weights, classes, keypts, otherB, segB, entryOnly, recordOnly, leased, progress, brokenB, young, locked} {
		if !exists(s.BlobPath(b)) {
			t.Errorf("blob %s was removed", maintaintest.MD5(b))
		}
	}
	reasons := map[string]string{}
	for _, it := range rep.Skipped {
		reasons[filepath.Base(it.Path)] = it.Reason
	}
	if !strings.Contains(reasons[maintaintest.MD5(young)], "grace") || !strings.Contains(reasons[maintaintest.MD5(locked)], "lock") {
		t.Errorf("skipped: %v", reasons)
	}
	if rep.MarkedBlobs != 10 {
		t.Errorf("marked %d, want 10", rep.MarkedBlobs)
	}
	if final, _ := s.M.Verify(ctx, maintain.VerifyOptions{ModelIDs: []string{"ws/det/3", "ws/seg/1"}, Full: true}); !final.OK {
		t.Errorf("packages damaged: %+v", final.Findings)
	}
}

// Stale temp files, partials and expired entries go; live ones stay.
func TestGCTempsPartialsAndEntries(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	sb := s.C.Home.SharedBlobs()
	md5 := maintaintest.MD5(maintaintest.Content("dl", 10))
	host, _ := os.Hostname()
	stat := mustRead(t, "/proc/self/stat")
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	myStart := fields[19]
	journal := func(pid int, start string, beat time.Time) []byte {
		b, _ := json.Marshal(map[string]any{"version": 1, "md5": md5, "owner": map[string]any{"host": host, "pid": pid, "start_time": start, "token": "t"},
			"heartbeat_at": beat.UTC().Format("2006-01-02T15:04:05.000000+00:00")})
		return b
	}
	old := s.Now().Add(-48 * time.Hour)
	files := map[string][]byte{
		// reference temp, old and young
		md5 + ".0f8fad5b-d9cb-469f-a165-70867728950e": make([]byte, 100),
		md5 + ".7c9e6679-7425-40de-944b-e07fc1f90ae7": make([]byte, 101),
		// journal-less partial, old
		"." + md5 + ".partial-0000000000000001": make([]byte, 102),
		// partial of a live owner (this process), old heartbeat
		"." + md5 + ".partial-0000000000000002":      make([]byte, 103),
		"." + md5 + ".partial-0000000000000002.json": journal(os.Getpid(), myStart, old),
		// partial of a dead owner (start time differs), old heartbeat
		"." + md5 + ".partial-0000000000000003":      make([]byte, 104),
		"." + md5 + ".partial-0000000000000003.json": journal(os.Getpid(), "1", old),
		// a corrupt blob left aside
		"." + md5 + ".corrupt-0000000000000004": make([]byte, 105),
	}
	for name, b := range files {
		maintaintest.WriteFile(t, filepath.Join(sb, name), b)
	}
	for name := range files {
		if !strings.HasPrefix(name, md5+".7c9e") {
			s.Age(48*time.Hour, filepath.Join(sb, name))
		}
	}
	// Temps elsewhere: an entry temp, a manifest temp, a link temp, a package-file partial.
	arc := s.C.Home.AutoResolutionCache()
	entryTmp := filepath.Join(arc, ".abc.json.k2j4h5g6.tmp")
	maintaintest.WriteFile(t, entryTmp, []byte("{}"))
	mfTmp := filepath.Join(s.resA.PackageDir, ".model_config.json.aaaabbbb.tmp")
	maintaintest.WriteFile(t, mfTmp, []byte("{}"))
	pkgPartial := filepath.Join(s.resA.PackageDir, "labels", ".u.txt.partial-00000000000000ff")
	maintaintest.WriteFile(t, pkgPartial, []byte("part"))
	linkTmp := filepath.Join(s.resA.PackageDir, ".weights.onnx.link-00000000000000aa")
	symlink(t, "../../../shared-blobs/"+maintaintest.MD5(weights), linkTmp)
	s.Age(2*time.Hour, entryTmp, mfTmp)
	s.Age(48*time.Hour, pkgPartial)
	// An entry created 25 h ago: expired under the default TTL (1440 min).
	s.Advance(-25 * time.Hour)
	key := s.Register("ws/seg/1", s.resS)
	s.Advance(25 * time.Hour)

	rep, err := s.M.GC(ctx, maintain.GCOptions{Grace: time.Hour, PartialGrace: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	gone := []string{
		filepath.Join(sb, md5+".0f8fad5b-d9cb-469f-a165-70867728950e"),
		filepath.Join(sb, "."+md5+".partial-0000000000000001"),
		filepath.Join(sb, "."+md5+".partial-0000000000000003"),
		filepath.Join(sb, "."+md5+".partial-0000000000000003.json"),
		filepath.Join(sb, "."+md5+".corrupt-0000000000000004"),
		entryTmp, mfTmp, pkgPartial, s.C.Resolutions.EntryPath(key),
	}
	for _, p := range gone {
		if exists(p) {
			t.Errorf("%s survived", p)
		}
	}
	youngRef := filepath.Join(sb, md5+".7c9e6679-7425-40de-944b-e07fc1f90ae7")
	live := []string{filepath.Join(sb, "."+md5+".partial-0000000000000002"), filepath.Join(sb, "."+md5+".partial-0000000000000002.json")}
	for _, p := range append([]string{youngRef, linkTmp}, live...) {
		if !exists(p) {
			t.Errorf("%s (young or live owner) was removed", p)
		}
	}
	if rep.Entries.Count != 1 {
		t.Errorf("entries removed %+v", rep.Entries)
	}
	var tempBytes int64
	for _, it := range rep.Removed {
		if it.Kind != "blob" && it.Kind != "entry" {
			tempBytes += it.Bytes
		}
	}
	if rep.Temps.Bytes != tempBytes || rep.Temps.Count != 8 {
		t.Errorf("temps %+v (items %d bytes)\n%+v", rep.Temps, tempBytes, rep.Removed)
	}
	// The entry's blobs were still linked by the package: nothing else went.
	if rep.Blobs.Count != 0 {
		t.Errorf("blobs removed: %v", removedPaths(rep, "blob"))
	}
	// Without grace the young temps go; a live owner's partial never does.
	rep, err = s.M.GC(ctx, maintain.GCOptions{PartialGrace: 0})
	if err != nil {
		t.Fatal(err)
	}
	if exists(youngRef) || exists(linkTmp) || !exists(live[0]) || !exists(live[1]) || rep.Temps.Count != 2 {
		t.Errorf("grace 0: %+v", rep.Removed)
	}
	if !exists(s.BlobPath(weights)) {
		t.Error("a linked blob was removed")
	}
}

// GC never removes a blob of a package that is complete or being
// materialized, while loads run concurrently (default grace).
func TestGCConcurrentWithMaterialize(t *testing.T) {
	ctx := context.Background()
	s := maintaintest.New(t)
	var loaders, collector sync.WaitGroup
	stop := make(chan struct{})
	var gcErr error
	runs := 0
	collector.Add(1)
	go func() {
		defer collector.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			runs++
			if _, err := s.M.GC(ctx, maintain.GCOptions{Grace: time.Hour, PartialGrace: 24 * time.Hour}); err != nil {
				gcErr = err
				return
			}
		}
	}()
	for i := 0; i < 4; i++ {
		loaders.Add(1)
		go func(i int) {
			defer loaders.Done()
			for j := 0; j < 5; j++ {
				s.Materialize(maintaintest.Package{ModelID: "c/" + strconv.Itoa(i), PackageID: fmt.Sprintf("p%d", j),
					Files: map[string][]byte{"w.bin": weights, "own.bin": maintaintest.Content(fmt.Sprint(i, j), 1000+i*10+j)}})
			}
		}(i)
	}
	loaders.Wait()
	close(stop)
	collector.Wait()
	if gcErr != nil || runs < 2 {
		t.Fatalf("gc runs %d: %v", runs, gcErr)
	}
	rep, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
	if err != nil || !rep.OK || rep.Packages != 20 {
		t.Fatalf("%v %+v", err, rep)
	}
}
