package autoresolve

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/lock"
)

const (
	keyA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	keyB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
	keyC = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
)

func sp(s string) *string { return &s }

func sampleResolution(modelID, pkg string) Resolution {
	return Resolution{
		ModelID: modelID, CacheModelID: sp(modelID), CanonicalModelID: sp(modelID),
		ModelPackageID: pkg, ResolvedFiles: []string{"/x/a", "/x/b"},
		ModelArchitecture: sp("yolov8"), TaskType: sp("object-detection"), BackendType: sp("onnx"),
	}
}

// testClock is an adjustable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func newCache(t *testing.T, dir string, opts Options) *Cache {
	t.Helper()
	opts.Dir = dir
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// snapshot describes a directory tree (name -> kind, size, mtime, inode, content)
// so a test can prove nothing was created, changed or deleted.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v size=%d mtime=%d ino=%d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano(), st.Ino)
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			desc += " content=" + string(b)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			desc += " -> " + target
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameSnapshot(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s: %s changed:\n before %s\n after  %s", what, p, d, after[p])
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s: %s was created", what, p)
		}
	}
}

func TestTTLBoundary(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "auto-resolution-cache")
	created := time.Date(2026, 3, 4, 5, 6, 7, 123456000, time.Local)
	clk := &testClock{now: created}
	c := newCache(t, dir, Options{Clock: clk.Now, TTL: TTLMinutes(10)})
	if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg")); err != nil {
		t.Fatal(err)
	}
	// Exactly TTL old: (now - created)/60s == TTL is not > TTL -> still a hit.
	clk.Set(created.Add(10 * time.Minute))
	if _, ok, err := c.Retrieve(ctx, keyA); !ok || err != nil {
		t.Fatalf("at the TTL boundary: ok=%v err=%v", ok, err)
	}
	// Offline, long past the TTL: hit, nothing deleted.
	clk.Set(created.Add(1000 * time.Hour))
	off := newCache(t, dir, Options{Clock: clk.Now, TTL: TTLMinutes(10), Offline: true})
	if _, ok, err := off.Retrieve(ctx, keyA); !ok || err != nil {
		t.Fatalf("offline past TTL: ok=%v err=%v", ok, err)
	}
	if _, err := os.Stat(c.EntryPath(keyA)); err != nil {
		t.Fatalf("offline read removed the entry: %v", err)
	}
	// One microsecond past the TTL online: miss, and the entry is deleted.
	clk.Set(created.Add(10*time.Minute + time.Microsecond))
	if _, ok, err := c.Retrieve(ctx, keyA); ok || err != nil {
		t.Fatalf("past the TTL: ok=%v err=%v", ok, err)
	}
	if _, err := os.Lstat(c.EntryPath(keyA)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired entry not deleted: %v", err)
	}
	// The lock file stays (never unlinked, §9.4).
	if _, err := os.Lstat(c.LockPath(keyA)); err != nil {
		t.Fatalf("lock file: %v", err)
	}
}

func TestTTLZeroExpiresEverything(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.Local)
	for _, ttl := range []int64{0, -5} {
		c := newCache(t, dir, Options{Clock: func() time.Time { return now }, TTL: TTLMinutes(ttl)})
		if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg")); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := c.Retrieve(ctx, keyA); ok {
			t.Fatalf("TTL %d: fresh entry was a hit", ttl)
		}
		if _, err := os.Lstat(c.EntryPath(keyA)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("TTL %d: entry kept", ttl)
		}
	}
}

func TestCorruptEntryDeletedOnlineKeptOffline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, keyA+".json")
	corrupt := []byte(`{"model_id": "m/1", "model_package_id": null}`)
	if err := os.WriteFile(path, corrupt, 0o600); err != nil {
		t.Fatal(err)
	}
	off := newCache(t, dir, Options{Offline: true})
	if _, ok, err := off.Retrieve(ctx, keyA); ok || err != nil {
		t.Fatalf("offline: ok=%v err=%v", ok, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != string(corrupt) {
		t.Fatalf("offline read touched the corrupt entry: %v", err)
	}
	on := newCache(t, dir, Options{})
	if _, ok, err := on.Retrieve(ctx, keyA); ok || err != nil {
		t.Fatalf("online: ok=%v err=%v", ok, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt entry not deleted online: %v", err)
	}
}

func TestOfflineCreatesNothing(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	dir := filepath.Join(home, "auto-resolution-cache")

	// Missing directory: nothing may create it.
	off := newCache(t, dir, Options{Offline: true})
	before := snapshot(t, home)
	if err := off.Register(ctx, keyA, sampleResolution("m/1", "pkg")); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := off.Retrieve(ctx, keyA); ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := off.Invalidate(ctx, keyA); err != nil {
		t.Fatal(err)
	}
	if n, err := off.Purge(ctx); n != 0 || err != nil {
		t.Fatal(n, err)
	}
	if cs, err := off.Candidates(ctx, "m/1", nil); len(cs) != 0 || err != nil {
		t.Fatal(cs, err)
	}
	sameSnapshot(t, "offline, no cache dir", before, snapshot(t, home))

	// Populated directory (written online, then the lock files removed, as
	// after a copy): offline reads create no lock file and delete nothing,
	// not even expired or corrupt entries.
	clk := &testClock{now: time.Date(2020, 1, 1, 0, 0, 0, 0, time.Local)}
	on := newCache(t, dir, Options{Clock: clk.Now})
	for _, k := range []string{keyA, keyB} {
		if err := on.Register(ctx, k, sampleResolution("m/1", "pkg")); err != nil {
			t.Fatal(err)
		}
		os.Remove(on.LockPath(k))
	}
	if err := os.WriteFile(filepath.Join(dir, keyC+".json"), []byte("{broken"), 0o644); err != nil {
		t.Fatal(err)
	}
	clk.Set(time.Date(2030, 1, 1, 0, 0, 0, 0, time.Local))
	off = newCache(t, dir, Options{Offline: true, Clock: clk.Now, TTL: TTLMinutes(1)})
	before = snapshot(t, home)
	if e, ok, err := off.Retrieve(ctx, keyA); !ok || err != nil || e.ModelPackageID != "pkg" {
		t.Fatalf("offline hit expected: %v %v", ok, err)
	}
	if _, ok, _ := off.Retrieve(ctx, keyC); ok {
		t.Fatal("corrupt entry was a hit")
	}
	if cs, err := off.Candidates(ctx, "m/1", nil); len(cs) != 2 || err != nil {
		t.Fatalf("offline candidates: %d %v", len(cs), err)
	}
	if err := off.Register(ctx, keyC, sampleResolution("m/2", "pkg")); err != nil {
		t.Fatal(err)
	}
	if err := off.Invalidate(ctx, keyA); err != nil {
		t.Fatal(err)
	}
	if n, _ := off.Purge(ctx); n != 0 {
		t.Fatal("offline purge deleted entries")
	}
	sameSnapshot(t, "offline, populated", before, snapshot(t, home))
}

// outsideFile creates a file outside the cache whose content would be
// judged (valid but expired, or corrupt) if it were followed.
func outsideFile(t *testing.T, content string) (path string, snap func() map[string]string) {
	t.Helper()
	outside := t.TempDir()
	path = filepath.Join(outside, "victim.json")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, func() map[string]string { return snapshot(t, outside) }
}

func expiredEntryText(t *testing.T) string {
	t.Helper()
	e := NewEntry(sampleResolution("m/1", "pkg"), time.Date(2000, 1, 1, 0, 0, 0, 0, time.Local))
	b, err := MarshalEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSymlinkedCacheDirRefused(t *testing.T) {
	ctx := context.Background()
	for _, content := range []string{"{corrupt", expiredEntryText(t)} {
		outside := t.TempDir()
		if err := os.WriteFile(filepath.Join(outside, keyA+".json"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		home := t.TempDir()
		dir := filepath.Join(home, "auto-resolution-cache")
		if err := os.Symlink(outside, dir); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, outside)
		c := newCache(t, dir, Options{})
		if _, ok, err := c.Retrieve(ctx, keyA); ok || err != nil {
			t.Fatalf("retrieve through symlinked dir: ok=%v err=%v", ok, err)
		}
		if err := c.Register(ctx, keyB, sampleResolution("m/1", "pkg")); !errors.Is(err, errdefs.ErrSymlinkRefused) {
			t.Fatalf("register through symlinked dir: %v", err)
		}
		if err := c.Invalidate(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		if n, err := c.Purge(ctx); n != 0 || err == nil {
			t.Fatalf("purge through symlinked dir: %d %v", n, err)
		}
		if cs, _ := c.Candidates(ctx, "m/1", nil); len(cs) != 0 {
			t.Fatal("candidates through symlinked dir")
		}
		off := newCache(t, dir, Options{Offline: true})
		if _, ok, _ := off.Retrieve(ctx, keyA); ok {
			t.Fatal("offline retrieve through symlinked dir")
		}
		sameSnapshot(t, "symlinked dir target", before, snapshot(t, outside))
	}
}

func TestSymlinkedEntryRefused(t *testing.T) {
	ctx := context.Background()
	for _, content := range []string{"{corrupt", expiredEntryText(t)} {
		victim, snap := outsideFile(t, content)
		dir := t.TempDir()
		c := newCache(t, dir, Options{})
		if err := os.Symlink(victim, c.EntryPath(keyA)); err != nil {
			t.Fatal(err)
		}
		before := snap()
		if _, ok, err := c.Retrieve(ctx, keyA); ok || err != nil {
			t.Fatalf("retrieve of symlinked entry: ok=%v err=%v", ok, err)
		}
		off := newCache(t, dir, Options{Offline: true})
		if _, ok, _ := off.Retrieve(ctx, keyA); ok {
			t.Fatal("offline retrieve followed the symlink")
		}
		if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg")); !errors.Is(err, errdefs.ErrSymlinkRefused) {
			t.Fatalf("register over symlinked entry: %v", err)
		}
		if err := c.Invalidate(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if cs, _ := c.Candidates(ctx, "m/1", nil); len(cs) != 0 {
			t.Fatal("candidate through symlinked entry")
		}
		if fi, err := os.Lstat(c.EntryPath(keyA)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Fatalf("the symlink itself was replaced or removed: %v", err)
		}
		sameSnapshot(t, "symlinked entry target", before, snap())
	}
}

func TestSymlinkedLockRefused(t *testing.T) {
	ctx := context.Background()
	for _, dangling := range []bool{false, true} {
		victim, snap := outsideFile(t, "precious")
		target := victim
		if dangling {
			target = filepath.Join(filepath.Dir(victim), "would-be-created")
		}
		dir := t.TempDir()
		clk := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)}
		c := newCache(t, dir, Options{Clock: clk.Now, TTL: TTLMinutes(1)})
		if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg")); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(c.LockPath(keyA)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, c.LockPath(keyA)); err != nil {
			t.Fatal(err)
		}
		before := snap()
		entryBefore := snapshot(t, c.EntryPath(keyA))
		// Expired: a reader that locked through the symlink would delete it.
		clk.Set(clk.Now().Add(time.Hour))
		if _, ok, err := c.Retrieve(ctx, keyA); ok || err != nil {
			t.Fatalf("retrieve with symlinked lock: ok=%v err=%v", ok, err)
		}
		if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg2")); !errors.Is(err, errdefs.ErrSymlinkRefused) {
			t.Fatalf("register with symlinked lock: %v", err)
		}
		if err := c.Invalidate(ctx, keyA); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		sameSnapshot(t, "entry with symlinked lock", entryBefore, snapshot(t, c.EntryPath(keyA)))
		sameSnapshot(t, "symlinked lock target", before, snap())
	}
}

func TestConcurrentRegister(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "auto-resolution-cache")
	shared := sharedLocker()
	var wg sync.WaitGroup
	const n = 24
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			locker := shared
			if i%2 == 1 {
				// A separate Locker: exclusion then rests on flock alone.
				locker = lock.NewLocker(lock.Options{Logger: quietLogger()})
			}
			c, err := New(Options{Dir: dir, Locker: locker, Logger: quietLogger()})
			if err != nil {
				errs <- err
				return
			}
			errs <- c.Register(ctx, keyA, sampleResolution("m/1", fmt.Sprintf("pkg%d", i)))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range names {
		got = append(got, e.Name())
	}
	sort.Strings(got)
	want := []string{"." + keyA + ".json.lock", keyA + ".json"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("directory holds %v, want %v (no temp files)", got, want)
	}
	c := newCache(t, dir, Options{})
	e, ok, err := c.Retrieve(ctx, keyA)
	if !ok || err != nil || !strings.HasPrefix(e.ModelPackageID, "pkg") {
		t.Fatalf("final entry: %v %v %+v", ok, err, e)
	}
}

func TestCandidatesOrderAndFilters(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clk := &testClock{}
	c := newCache(t, dir, Options{Clock: clk.Now})
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.Local)
	keys := []string{keyA, keyB, keyC}
	for i, k := range keys {
		clk.Set(base.Add(time.Duration(i) * time.Minute))
		r := sampleResolution("m/1", fmt.Sprintf("pkg%d", i))
		if i == 2 {
			r.APIKey = sp("secret")
		}
		if err := c.Register(ctx, k, r); err != nil {
			t.Fatal(err)
		}
	}
	other := strings.Repeat("d", 64)
	if err := c.Register(ctx, other, sampleResolution("m/2", "pkgX")); err != nil {
		t.Fatal(err)
	}
	corrupt := strings.Repeat("e", 64)
	os.WriteFile(filepath.Join(dir, corrupt+".json"), []byte("nope"), 0o644)
	os.WriteFile(filepath.Join(dir, "not-a-key.json"), []byte("nope"), 0o644)

	clk.Set(base.Add(10 * time.Minute))
	cs, err := c.Candidates(ctx, "m/1", nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, cand := range cs {
		order = append(order, cand.Entry.ModelPackageID)
	}
	if strings.Join(order, ",") != "pkg2,pkg1,pkg0" {
		t.Fatalf("order %v, want newest first", order)
	}
	anon := CredentialHash(nil)
	cs, _ = c.Candidates(ctx, "m/1", &anon)
	if len(cs) != 2 {
		t.Fatalf("credential filter kept %d", len(cs))
	}
	// Online scans delete invalid entries of any key, and only those.
	if _, err := os.Lstat(filepath.Join(dir, corrupt+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("corrupt candidate not deleted")
	}
	if _, err := os.Lstat(filepath.Join(dir, "not-a-key.json")); err != nil {
		t.Fatal("a non-entry file was touched")
	}
	n, err := c.Purge(ctx)
	if err != nil || n != 4 {
		t.Fatalf("purge: %d %v", n, err)
	}
}

func TestInvalidKeyAndLockTimeout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c := newCache(t, dir, Options{})
	for _, k := range []string{"", "../x", "a/b", "a.b"} {
		if _, _, err := c.Retrieve(ctx, k); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("key %q accepted: %v", k, err)
		}
	}
	if err := c.Register(ctx, keyA, sampleResolution("m/1", "pkg")); err != nil {
		t.Fatal(err)
	}
	holder := lock.NewLocker(lock.Options{Logger: quietLogger()})
	h, err := holder.Lock(ctx, c.LockPath(keyA))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	impatient := newCache(t, dir, Options{Locker: lock.NewLocker(lock.Options{Timeout: 150 * time.Millisecond, Logger: quietLogger()})})
	if _, _, err := impatient.Retrieve(ctx, keyA); !errors.Is(err, errdefs.ErrLockTimeout) {
		t.Fatalf("want lock timeout, got %v", err)
	}
	// Offline reads never wait for the lock.
	off := newCache(t, dir, Options{Offline: true})
	if _, ok, err := off.Retrieve(ctx, keyA); !ok || err != nil {
		t.Fatalf("offline read blocked by a held lock: %v %v", ok, err)
	}
}

// On a cache the process cannot write (offline.md §7), an online read falls
// back to the lock-free rules: a hit without creating a lock, nothing deleted.
func TestReadOnlyCacheOnline(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root ignores directory permissions: run this very test as uid
		// 65534 in a child process, from a copy of the binary it can execute.
		runAsNobody(t, "^TestReadOnlyCacheOnline$")
		return
	}
	ctx := context.Background()
	dir := t.TempDir()
	clk := &testClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)}
	c := newCache(t, dir, Options{Clock: clk.Now, TTL: TTLMinutes(60)})
	for _, k := range []string{keyA, keyB} {
		if err := c.Register(ctx, k, sampleResolution("m/1", "pkg")); err != nil {
			t.Fatal(err)
		}
		os.Remove(c.LockPath(k))
	}
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	before := snapshot(t, dir)
	if _, ok, err := c.Retrieve(ctx, keyA); !ok || err != nil {
		t.Fatalf("read-only hit: %v %v", ok, err)
	}
	clk.Set(clk.Now().Add(2 * time.Hour))
	if _, ok, err := c.Retrieve(ctx, keyB); ok || err != nil {
		t.Fatalf("read-only expired: %v %v", ok, err)
	}
	sameSnapshot(t, "read-only cache", before, snapshot(t, dir))
}

// runAsNobody re-runs the test named by pattern as uid/gid 65534 and fails
// unless it passes there.
func runAsNobody(t *testing.T, pattern string) {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's per-test parent
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o1777)
	bin := filepath.Join(dir, "autoresolve.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run="+pattern, "-test.count=1", "-test.v")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "TMPDIR=" + tmp, "HOME=" + tmp}
	cmd.Dir = tmp
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+strings.Trim(pattern, "^$")) {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
}
