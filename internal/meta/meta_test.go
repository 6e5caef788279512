package meta

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

func testHome(t *testing.T) layout.Home {
	t.Helper()
	h, err := layout.NewHome(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func md5Of(i int) string {
	s := md5.Sum([]byte(fmt.Sprint(i)))
	return hex.EncodeToString(s[:])
}

func rec(i int) Verified {
	return Verified{MD5: md5Of(i), Size: int64(i), MtimeNS: int64(i) * 1000, Ino: uint64(i + 7), At: time.Unix(0, int64(i))}
}

// TestVerifiedLog: records appended in batches are found by a full load and
// by the backwards lookup (also across its 64 KiB blocks); the last line of
// an md5 wins, a tombstone forgets it, a torn last line is ignored; a record
// costs about 100 bytes on disk (one 4 KiB file per blob before).
func TestVerifiedLog(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	var batch []Verified
	for i := 0; i < 3000; i++ {
		batch = append(batch, rec(i))
	}
	if err := AppendVerified(h, true, batch...); err != nil {
		t.Fatal(err)
	}
	newer := rec(5)
	newer.Size, newer.SHA256 = 99, strings.Repeat("ab", 32)
	if err := AppendVerified(h, false, newer); err != nil {
		t.Fatal(err)
	}
	if err := ForgetVerified(h, md5Of(6)); err != nil {
		t.Fatal(err)
	}
	// A writer killed mid-line.
	f, err := os.OpenFile(filepath.Join(h.Meta(), VerifiedLog), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("v1 " + md5Of(7) + " 1 2")
	f.Close()

	set, err := LoadVerified(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2999 {
		t.Errorf("%d records, want 2999", set.Len())
	}
	if v, ok := set.Get(md5Of(5)); !ok || v.Size != 99 || v.SHA256 != newer.SHA256 {
		t.Errorf("md5 5: %+v %v", v, ok)
	}
	if _, ok := set.Get(md5Of(6)); ok {
		t.Error("forgotten record still there")
	}
	if v, ok := set.Get(md5Of(7)); !ok || v != rec(7) {
		t.Errorf("md5 7 after a torn line: %+v %v", v, ok)
	}
	for _, i := range []int{0, 1, 5, 6, 7, 1500, 2999} {
		v, ok, err := LookupVerified(h, md5Of(i))
		want, wantOK := set.Get(md5Of(i))
		if err != nil || ok != wantOK || (ok && v != want) {
			t.Errorf("lookup %d: %+v %v %v, want %+v %v", i, v, ok, err, want, wantOK)
		}
	}
	if _, ok, err := LookupVerified(h, md5Of(4000)); ok || err != nil {
		t.Errorf("lookup of an unknown md5: %v %v", ok, err)
	}
	if per := set.LogBytes / int64(set.LogLines); per > 120 {
		t.Errorf("%d bytes per record", per)
	}
	if _, err := rec(1).line(); err != nil {
		t.Fatal(err)
	}
	if err := AppendVerified(h, false, Verified{MD5: "../x"}); err == nil {
		t.Error("a bad md5 was written")
	}
}

// TestVerifiedCompactionAndMigration: records of older releases (one JSON
// file per blob) are read, folded into the log by a compaction and removed;
// a tombstone beats a legacy record; records keep rejects are dropped.
func TestVerifiedCompactionAndMigration(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	legacy := filepath.Join(h.Meta(), LegacyVerified)
	if err := os.MkdirAll(legacy, 0o755); err != nil {
		t.Fatal(err)
	}
	writeLegacy := func(i int, at string) {
		doc := fmt.Sprintf(`{"size":%d,"mtime_ns":%d,"ino":%d,"md5":%q,"sha256":%q,"verified_at":%q}`,
			i, i*1000, i+7, md5Of(i), strings.Repeat("cd", 32), at)
		if err := os.WriteFile(filepath.Join(legacy, md5Of(i)), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeLegacy(1, "2026-01-02T03:04:05.123456+00:00") // maintain's format
	writeLegacy(2, "2026-01-02T03:04:05.123456789Z")   // the downloader's format
	writeLegacy(3, "2026-01-02T03:04:05Z")
	if err := AppendVerified(h, false, rec(4), rec(5)); err != nil {
		t.Fatal(err)
	}
	if err := ForgetVerified(h, md5Of(3)); err != nil {
		t.Fatal(err)
	}
	set, err := LoadVerified(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 4 {
		t.Fatalf("%d records: %v", set.Len(), set.MD5s())
	}
	if v, ok := set.Get(md5Of(2)); !ok || !v.Matches(fsx.FileID{Size: 2, MtimeNS: 2000, Ino: 9}) || v.At.Nanosecond() != 123456789 {
		t.Errorf("legacy record: %+v %v", v, ok)
	}
	if v, ok, _ := LookupVerified(h, md5Of(1)); !ok || v.Size != 1 {
		t.Errorf("lookup of a legacy record: %+v %v", v, ok)
	}
	dry, err := CompactVerified(ctx, h, func(m string) bool { return m != md5Of(5) }, true)
	if err != nil || dry.Kept != 3 || dry.Dropped != 1 || dry.Migrated != 2 {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if _, err := os.Stat(filepath.Join(legacy, md5Of(1))); err != nil {
		t.Fatal("dry run removed a legacy record")
	}
	st, err := CompactVerified(ctx, h, func(m string) bool { return m != md5Of(5) }, false)
	if err != nil || st != dry || st.Reclaimed() <= 0 {
		t.Fatalf("compaction: %+v %v (dry %+v)", st, err, dry)
	}
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy dir left: %v", err)
	}
	set, err = LoadVerified(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 3 || set.LogLines != 3 || set.Legacy != 0 {
		t.Errorf("after compaction: %d records, %d lines, %d legacy", set.Len(), set.LogLines, set.Legacy)
	}
	if _, ok := set.Get(md5Of(3)); ok {
		t.Error("a forgotten legacy record came back")
	}
}

// TestVerifiedAppendDuringCompaction: appends racing with compactions (each
// through its own open file, as separate processes do) are never lost.
func TestVerifiedAppendDuringCompaction(t *testing.T) {
	ctx := context.Background()
	h := testHome(t)
	const writers, per = 4, 150
	var wg sync.WaitGroup
	stop := make(chan struct{})
	compactions := 0
	var cerr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := CompactVerified(ctx, h, nil, false); err != nil {
				cerr = err
				return
			}
			compactions++
		}
	}()
	var ww sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		ww.Add(1)
		go func(w int) {
			defer ww.Done()
			for i := 0; i < per; i++ {
				if err := AppendVerified(h, false, rec(w*per+i)); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	ww.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if cerr != nil {
		t.Fatal(cerr)
	}
	set, err := LoadVerified(ctx, h)
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != writers*per {
		t.Fatalf("%d of %d records survived %d compactions", set.Len(), writers*per, compactions)
	}
}

// TestLastUsed: touch creates, then moves the mtime; the stamp is read back.
func TestLastUsed(t *testing.T) {
	h := testHome(t)
	if _, ok, err := LastUsed(h, "ws/m/1", "pkg"); ok || err != nil {
		t.Fatalf("before: %v %v", ok, err)
	}
	if err := TouchLastUsed(h, "ws/m/1", "pkg"); err != nil {
		t.Fatal(err)
	}
	p, _ := LastUsedPath(h, "ws/m/1", "pkg")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(p, old, old)
	if err := TouchLastUsed(h, "ws/m/1", "pkg"); err != nil {
		t.Fatal(err)
	}
	at, ok, err := LastUsed(h, "ws/m/1", "pkg")
	if err != nil || !ok || time.Since(at) > time.Minute {
		t.Fatalf("after: %v %v %v", at, ok, err)
	}
	if err := TouchLastUsed(h, "ws/m/1", "bad-id"); err == nil {
		t.Error("invalid package id accepted")
	}
	slug, _ := layout.Slug("ws/m/1")
	if err := RemoveLastUsed(h, slug, "pkg"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := LastUsed(h, "ws/m/1", "pkg"); ok {
		t.Error("stamp not removed")
	}
}

// TestSymlinksRefused: a symlink at .meta, at a level below it or at a
// record name is refused by every writer and reader, and the outside target
// is left as it was.
func TestSymlinksRefused(t *testing.T) {
	out := t.TempDir()
	secret := filepath.Join(out, "secret")
	if err := os.WriteFile(secret, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Unix(1_000_000, 0)
	os.Chtimes(secret, old, old)
	snapshot := func() string {
		var b strings.Builder
		filepath.Walk(out, func(p string, fi os.FileInfo, err error) error {
			if err == nil {
				data, _ := os.ReadFile(p)
				fmt.Fprintf(&b, "%s %v %d %d %q\n", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), data)
			}
			return nil
		})
		return b.String()
	}
	before := snapshot()
	slug, _ := layout.Slug("ws/m/1")
	for name, plant := range map[string]func(h layout.Home){
		".meta": func(h layout.Home) { os.Symlink(out, h.Meta()) },
		"last-used": func(h layout.Home) {
			os.MkdirAll(h.Meta(), 0o755)
			os.Symlink(out, filepath.Join(h.Meta(), LastUsedDir))
		},
		"slug": func(h layout.Home) {
			os.MkdirAll(filepath.Join(h.Meta(), LastUsedDir), 0o755)
			os.Symlink(out, filepath.Join(h.Meta(), LastUsedDir, slug))
			os.Symlink(out, filepath.Join(h.Meta(), LeasesDir))
		},
		"records": func(h layout.Home) {
			os.MkdirAll(filepath.Join(h.Meta(), LastUsedDir, slug), 0o755)
			os.Symlink(secret, filepath.Join(h.Meta(), LastUsedDir, slug, "pkg"))
			os.Symlink(secret, filepath.Join(h.Meta(), VerifiedLog))
			os.MkdirAll(filepath.Join(h.Meta(), LegacyVerified), 0o755)
			os.Symlink(secret, filepath.Join(h.Meta(), LegacyVerified, md5Of(1)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			h := testHome(t)
			plant(h)
			if err := TouchLastUsed(h, "ws/m/1", "pkg"); !errors.Is(err, fsx.ErrSymlink) {
				t.Errorf("touch: %v", err)
			}
			if _, _, err := LastUsed(h, "ws/m/1", "pkg"); !errors.Is(err, fsx.ErrSymlink) {
				t.Errorf("last used: %v", err)
			}
			err := AppendVerified(h, true, rec(1))
			if name != "last-used" && name != "slug" && !errors.Is(err, fsx.ErrSymlink) {
				t.Errorf("append: %v", err)
			}
			set, err := LoadVerified(context.Background(), h)
			if err == nil && set.Len() > 1 {
				t.Errorf("records read through a link: %v", set.MD5s())
			}
			CompactVerified(context.Background(), h, nil, false)
			CreateLease(h, nil, []string{"ws/m/1/pkg"}, time.Hour)
			ReadLeases(context.Background(), h)
			if after := snapshot(); after != before {
				t.Fatalf("outside changed:\n%s\n%s", before, after)
			}
		})
	}
}

func TestLeases(t *testing.T) {
	h := testHome(t)
	release, err := CreateLease(h, []string{md5Of(1)}, []string{"ws/m/1/pkg"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CreateLease(h, []string{"nope"}, nil, time.Hour); err == nil {
		t.Error("bad md5 accepted")
	}
	os.WriteFile(filepath.Join(h.Meta(), LeasesDir, "junk.json"), []byte("{"), 0o644)
	ls, bad, err := ReadLeases(context.Background(), h)
	if err != nil || len(ls) != 1 || len(bad) != 1 || ls[0].Expired(time.Now()) || !ls[0].Expired(time.Now().Add(2*time.Hour)) {
		t.Fatalf("%+v %v %v", ls, bad, err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if ls, _, _ := ReadLeases(context.Background(), h); len(ls) != 0 {
		t.Fatalf("released lease still there: %+v", ls)
	}
}
