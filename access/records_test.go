package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

const childEnv = "MODELCACHE_ACCESS_TEST_CHILD_HOME"

// TestMain lets the test binary act as another process of one cache.
func TestMain(m *testing.M) {
	if home := os.Getenv(childEnv); home != "" {
		g, err := NewProviderGuard(Options{Home: home, Logger: slog.New(slog.DiscardHandler),
			Verifier: VerifierFunc(func(context.Context, string, *string) error { return nil })})
		if err != nil || g.recs == nil {
			fmt.Fprintln(os.Stderr, "child guard:", err)
			os.Exit(3)
		}
		// Record a verification so the parent can use it.
		g.Decide(context.Background(), "ws/child/"+os.Getenv("CHILD_N"), "", ptr(keyA))
		fmt.Println(g.Tenant(ptr(keyA)))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSaltSharedByProcesses: processes that create the cache's salt at the
// same time agree on it, so each reads the others' records.
func TestSaltSharedByProcesses(t *testing.T) {
	home := t.TempDir()
	const n = 6
	out := make([]string, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"="+home, fmt.Sprintf("CHILD_N=%d", i))
			b, err := cmd.Output()
			if err != nil {
				t.Errorf("child %d: %v", i, err)
			}
			out[i] = strings.TrimSpace(string(b))
		}(i)
	}
	wg.Wait()
	fp := &fakeProvider{down: errdefs.ErrOffline}
	g := newGuard(t, Options{Verifier: fp, Home: home, OfflineGrace: time.Hour})
	for i, id := range out {
		if id != g.Tenant(ptr(keyA)) {
			t.Errorf("child %d: tenant %q, parent %q", i, id, g.Tenant(ptr(keyA)))
		}
		if d := g.Decide(context.Background(), fmt.Sprintf("ws/child/%d", i), "", ptr(keyA)); !d.Allowed || d.Source != SourceRecord {
			t.Errorf("record of child %d not usable by another process: %+v", i, d)
		}
	}
	left, _ := filepath.Glob(filepath.Join(home, ".meta", "guard", ".*"))
	if len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// TestNoSymlinkFollowed: a symlink anywhere below H in the guard's paths is
// never followed for reading, writing or deleting; the guard then keeps
// nothing on disk and denies what it cannot verify.
func TestNoSymlinkFollowed(t *testing.T) {
	ctx := context.Background()
	for _, planted := range []string{".meta", ".meta/guard", ".meta/guard/verified", ".meta/guard/salt"} {
		t.Run(strings.ReplaceAll(planted, "/", "_"), func(t *testing.T) {
			home, outside := t.TempDir(), t.TempDir()
			// outside looks like a valid guard tree, with a salt and a record.
			fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}}
			donor := newGuard(t, Options{Verifier: fp, Home: outside})
			donor.Decide(ctx, "ws/x/1", "", ptr(keyA))
			target := filepath.Join(outside, planted)
			before := snapshot(t, outside)

			if err := os.MkdirAll(filepath.Dir(filepath.Join(home, planted)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(home, planted)); err != nil {
				t.Fatal(err)
			}
			g := newGuard(t, Options{Verifier: fp, Home: home, OfflineGrace: time.Hour})
			if g.recs != nil && planted != ".meta/guard/verified" {
				t.Errorf("the guard uses a salt through a symlink")
			}
			if !g.Decide(ctx, "ws/x/1", "", ptr(keyA)).Allowed {
				t.Errorf("online decision failed")
			}
			fp.set(func() { fp.allow[keyA] = nil })
			g.Forget(ptr(keyA), "")
			g.Decide(ctx, "ws/x/1", "", ptr(keyA)) // a refusal deletes the record, never through the link
			fp.set(func() { fp.allow[keyA] = []string{"ws/x/1"}; fp.down = errdefs.ErrOffline })
			g2 := newGuard(t, Options{Verifier: fp, Home: home, OfflineGrace: time.Hour})
			if d := g2.Decide(ctx, "ws/x/1", "", ptr(keyA)); d.Allowed {
				t.Errorf("a record read through a symlink allowed the load: %+v", d)
			}
			if after := snapshot(t, outside); after != before {
				t.Errorf("the tree outside H changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshot lists every file under dir with its content.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			c, _ := os.ReadFile(p)
			fmt.Fprintf(&b, "%s=%q;", strings.TrimPrefix(p, dir), c)
		}
		return nil
	})
	return b.String()
}

func TestCorruptSaltKept(t *testing.T) {
	home := t.TempDir()
	salt := filepath.Join(home, ".meta", "guard", "salt")
	if err := os.MkdirAll(filepath.Dir(salt), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(salt, []byte("not a salt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp, Home: home, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if g.recs != nil || !strings.Contains(logs.String(), "salt") || !strings.Contains(logs.String(), "remove it") {
		t.Errorf("corrupt salt: records %v, log %q", g.recs != nil, logs.String())
	}
	if !g.Decide(context.Background(), "ws/x/1", "", ptr(keyA)).Allowed {
		t.Error("online decisions must still work")
	}
	if b, _ := os.ReadFile(salt); string(b) != "not a salt\n" {
		t.Errorf("the corrupt salt was overwritten: %q", b)
	}
	if recs, _ := filepath.Glob(filepath.Join(home, ".meta", "guard", "verified", "*")); len(recs) != 0 {
		t.Errorf("records written under a process salt: %v", recs)
	}
}

// TestBadRecordsIgnored: a record that is not the pair's own (copied from
// another tenant), dated in the future, oversized or unparsable gives no grace.
func TestBadRecordsIgnored(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	home := t.TempDir()
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}, keyB: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now})
	g.Decide(ctx, "ws/x/1", "", ptr(keyB))
	bPath := g.recs.path(g.hash.tenant(ptr(keyB)), "ws/x/1")
	aPath := g.recs.path(g.hash.tenant(ptr(keyA)), "ws/x/1")
	bRec, err := os.ReadFile(bPath)
	if err != nil {
		t.Fatal(err)
	}
	future := fmt.Sprintf(`{"key_hash":%q,"model_id":"ws/x/1","verified_at":%q}`, g.hash.tenant(ptr(keyA)).hash, clk.now().Add(time.Hour).Format(time.RFC3339))
	for name, content := range map[string]string{
		"another tenant's": string(bRec),
		"future":           future,
		"oversized":        strings.Repeat(" ", maxRecord+1) + string(bRec),
		"unparsable":       "{",
	} {
		if err := fsx.WriteFileAtomic(aPath, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		fp.set(func() { fp.down = errdefs.ErrOffline })
		var logs strings.Builder
		g2 := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now, OfflineGrace: 24 * time.Hour, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if d := g2.Decide(ctx, "ws/x/1", "", ptr(keyA)); d.Allowed {
			t.Errorf("%s record allowed an offline load: %+v", name, d)
		}
		if !strings.Contains(logs.String(), "record") {
			t.Errorf("%s record: nothing logged", name)
		}
		fp.set(func() { fp.down = nil })
	}
	// The next online verification replaces the bad record.
	g.Forget(ptr(keyA), "")
	g.Decide(ctx, "ws/x/1", "", ptr(keyA))
	if _, ok, err := g.recs.read(g.hash.tenant(ptr(keyA)), "ws/x/1", clk.now()); !ok || err != nil {
		t.Errorf("record not replaced: %v", err)
	}
}

// TestUnusableGuardDirStillDecides: a file where H/.meta/guard belongs (as
// good as an unwritable directory, also for root) leaves online decisions
// working.
func TestUnusableGuardDirStillDecides(t *testing.T) {
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".meta"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, ".meta", "guard"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp, Home: home})
	if err := g.Check(context.Background(), "ws/x/1", "", ptr(keyA)); err != nil {
		t.Errorf("online check with an unusable guard dir: %v", err)
	}
	var ue *fsx.UnsafePathError
	h, _ := layout.NewHome(home)
	if _, err := cacheSalt(guardDirs{home: h}); !errors.As(err, &ue) {
		t.Errorf("salt under a file: %v, want UnsafePathError", err)
	}
}
