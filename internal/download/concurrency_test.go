package download

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/lock"
)

// TestSingleFlightGoroutines: 8 goroutines want the same blob; one download
// serves them all (download.md §4 scenario 1).
func TestSingleFlightGoroutines(t *testing.T) {
	srv := newFaultServer(t)
	srv.throttle(32<<10, time.Millisecond)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.MinSplit = 1 << 62 })
	data := randomBytes(11, 3<<20)
	u := srv.add("/sf", data)
	var wg sync.WaitGroup
	results := make([]Result, 8)
	errs := make([]error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.EnsureBlob(context.Background(), Item{URL: u, MD5: md5hex(data)})
		}()
	}
	wg.Wait()
	shared := 0
	for i := range 8 {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].Shared {
			shared++
		}
	}
	if got := srv.Served(); got != int64(len(data)) {
		t.Errorf("served %d bytes for a %d-byte blob", got, len(data))
	}
	if shared != 7 {
		t.Errorf("%d callers shared the download, want 7", shared)
	}
	assertStore(t, env, data, true, false)
}

// TestTwoEnginesOneDownload: two engines with separate lockers (as two
// processes would be) download a blob once: the second waits on the blob
// lock and uses the first one's result.
func TestTwoEnginesOneDownload(t *testing.T) {
	srv := newFaultServer(t)
	srv.throttle(32<<10, time.Millisecond)
	home := t.TempDir()
	env1, env2 := newEnv(t, home), newEnv(t, home)
	e1 := env1.engine(t, func(t *Tuning) { t.MinSplit = 1 << 62 })
	e2 := env2.engine(t, func(t *Tuning) { t.MinSplit = 1 << 62 })
	data := randomBytes(12, 2<<20)
	u := srv.add("/two", data)
	var wg sync.WaitGroup
	var r1, r2 Result
	var err1, err2 error
	wg.Add(2)
	go func() {
		defer wg.Done()
		r1, err1 = e1.EnsureBlob(context.Background(), Item{URL: u, MD5: md5hex(data)})
	}()
	go func() {
		defer wg.Done()
		r2, err2 = e2.EnsureBlob(context.Background(), Item{URL: u, MD5: md5hex(data)})
	}()
	wg.Wait()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if r1.Path != r2.Path {
		t.Errorf("paths differ: %s %s", r1.Path, r2.Path)
	}
	if got := srv.Served(); got != int64(len(data)) {
		t.Errorf("served %d bytes for a %d-byte blob", got, len(data))
	}
	assertStore(t, env1, data, true, false)
}

// TestWaiterOutlastsTimeoutThenTakesOver: a waiter keeps waiting past the
// lock timeout while the holder (a child process) makes progress, logs
// "still waiting … (N MB of M)", and when the holder is killed takes over
// its partial instead of starting again.
func TestWaiterOutlastsTimeoutThenTakesOver(t *testing.T) {
	const size, partSize = 12 << 20, 512 << 10
	srv := newFaultServer(t)
	srv.throttle(8<<10, 10*time.Millisecond) // ~3 MB/s over 4 streams
	data := randomBytes(13, size)
	sum := md5hex(data)
	u := srv.add("/held", data)
	home := t.TempDir()
	env := newEnv(t, home)

	cmd := childCmd(t, childSpec{Home: home, Fast: true, PartSize: partSize, Streams: 4, NoSplit: true,
		Items: []Item{{Name: "held.bin", URL: u, MD5: sum}}})
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	// Wait until the child holds the lock and has journaled progress.
	deadline := time.Now().Add(time.Minute)
	for journaledBytesAny(env, sum) < 256<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("child made no progress\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}

	const lockTimeout, logEvery = 500 * time.Millisecond, 25 * time.Millisecond
	e := env.engine(t, func(t *Tuning) {
		t.LockTimeout = lockTimeout
		t.WaitLogInterval = logEvery
		t.MinPart, t.MaxPart, t.MinSplit = partSize, partSize, 1<<62
	})
	type out struct {
		r   Result
		err error
	}
	done := make(chan out, 1)
	start := time.Now()
	go func() {
		r, err := e.EnsureBlob(context.Background(), Item{Name: "held.bin", URL: u, MD5: sum})
		done <- out{r, err}
	}()
	// Wait, by the waiter's own reports, until it has waited through more
	// than two lock timeouts: "still waiting" lines every logEvery.
	deadline = time.Now().Add(time.Minute)
	for strings.Count(env.logs.String(), "still waiting for held.bin (") < 2*int(lockTimeout/logEvery)+10 {
		select {
		case o := <-done:
			t.Fatalf("waiter returned after %v while the holder was alive and progressing: %+v %v", time.Since(start), o.r, o.err)
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter logged no progress-aware waiting")
		}
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	killed = true
	// Counted now, so late bytes of the dead child's responses count
	// against the waiter: stricter, never looser.
	servedAtKill := srv.Served()
	journaled := journaledBytesAny(env, sum)
	var o out
	select {
	case o = <-done:
	case <-time.After(time.Minute):
		t.Fatal("waiter did not take over")
	}
	if o.err != nil {
		t.Fatalf("waiter: %v\n%s", o.err, env.logs.String())
	}
	if o.r.ReusedBytes == 0 || o.r.ReusedBytes < journaled {
		t.Errorf("took over without reusing the holder's %d journaled bytes: %+v", journaled, o.r)
	}
	after := srv.Served() - servedAtKill
	if missing := int64(size) - journaled; after > missing+partSize {
		t.Errorf("fetched %d bytes after the takeover; %d were missing", after, missing)
	}
	logs := env.logs.String()
	if !strings.Contains(logs, "still waiting for held.bin (") || !strings.Contains(logs, " MB of 12 MB") {
		t.Errorf("no progress-aware wait log:\n%s", logs)
	}
	assertStore(t, env, data, true, false)
}

func journaledBytesAny(env *testEnv, md5 string) int64 {
	paths, _ := filepath.Glob(filepath.Join(env.blobs.Dir(), "."+md5+".partial-*.json"))
	var best int64
	for _, p := range paths {
		if j, err := journal.Read(p); err == nil {
			best = max(best, j.DoneBytes())
		}
	}
	return best
}

// TestWaiterGivesUpWithoutProgress: a lock held with no visible progress
// fails the waiter after the lock timeout, with a typed error naming the
// lock and the variable to raise.
func TestWaiterGivesUpWithoutProgress(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	data := randomBytes(14, 100<<10)
	u := srv.add("/stuck", data)
	lp, _ := env.blobs.LockPath(md5hex(data))
	other := lock.NewLocker(lock.Options{WaitLogInterval: -1}) // a second "process"
	h, err := other.Lock(context.Background(), lp)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	e := env.engine(t, func(t *Tuning) { t.LockTimeout = 200 * time.Millisecond })
	start := time.Now()
	_, err = e.EnsureBlob(context.Background(), Item{URL: u, MD5: md5hex(data)})
	var we *WaitTimeoutError
	if !errors.As(err, &we) || !errors.Is(err, errdefs.ErrLockTimeout) {
		t.Fatalf("want WaitTimeoutError, got %v", err)
	}
	// At least the lock timeout; the upper bound only catches a hang (a
	// loaded machine may be slow to notice).
	if el := time.Since(start); el < 200*time.Millisecond || el > 30*time.Second {
		t.Errorf("gave up after %v", el)
	}
	if !strings.Contains(err.Error(), lp) || !strings.Contains(err.Error(), "INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT") {
		t.Errorf("message: %v", err)
	}
	if srv.GETs()+srv.HEADs() != 0 {
		t.Errorf("the waiter sent requests")
	}
}

// TestCancelKeepsResumablePartial: a cancelled download keeps its partial
// and journal; the next call in the same process adopts them.
func TestCancelKeepsResumablePartial(t *testing.T) {
	const size = 4 << 20
	srv := newFaultServer(t)
	srv.throttle(16<<10, 4*time.Millisecond)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.MinSplit = 1 << 62 })
	data := randomBytes(15, size)
	u := srv.add("/cancel", data)
	// Cancelled from the engine's own write path once 1 MiB is written (no
	// race with the clock); the final checkpoint then records it.
	ctx, cancel := context.WithCancel(context.Background())
	e.hooks.afterWrite = cancelAfter(1<<20, cancel)
	_, err := e.EnsureBlob(ctx, Item{URL: u, MD5: md5hex(data)})
	e.hooks.afterWrite = nil
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancellation, got %v", err)
	}
	kept := journaledBytesAny(env, md5hex(data))
	if kept < 1<<20 {
		t.Fatalf("journal kept %d bytes", kept)
	}
	srv.quiesce(t)
	before := srv.Served()
	r, err := e.EnsureBlob(context.Background(), Item{URL: u, MD5: md5hex(data)})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReusedBytes < kept {
		t.Errorf("reused %d of %d kept bytes", r.ReusedBytes, kept)
	}
	if after := srv.Served() - before; after > size-kept {
		t.Errorf("fetched %d bytes; only %d were missing", after, size-kept)
	}
	assertStore(t, env, data, true, false)
}

// TestAdoptionRefetchesCorruptRange: a journaled range whose bytes changed
// on disk (as after a power loss) is fetched again; the rest is reused.
func TestAdoptionRefetchesCorruptRange(t *testing.T) {
	const size = 4 << 20
	srv := newFaultServer(t)
	srv.throttle(16<<10, 4*time.Millisecond)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.MinSplit = 1 << 62 })
	data := randomBytes(16, size)
	sum := md5hex(data)
	u := srv.add("/corrupt", data)
	ctx, cancel := context.WithCancel(context.Background())
	e.hooks.afterWrite = cancelAfter(2<<20, cancel)
	if _, err := e.EnsureBlob(ctx, Item{URL: u, MD5: sum}); !errors.Is(err, context.Canceled) {
		t.Fatalf("want cancellation, got %v", err)
	}
	e.hooks.afterWrite = nil
	paths, _ := filepath.Glob(filepath.Join(env.blobs.Dir(), "."+sum+".partial-*.json"))
	if len(paths) != 1 {
		t.Fatalf("journals: %v", paths)
	}
	j, err := journal.Read(paths[0])
	if err != nil || len(j.RangesDone) == 0 {
		t.Fatal(err, j)
	}
	bad := j.RangesDone[0]
	f, err := os.OpenFile(strings.TrimSuffix(paths[0], ".json"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, 4096), bad.First+10); err != nil { // zero-filled page
		t.Fatal(err)
	}
	f.Close()
	kept := j.DoneBytes()
	srv.quiesce(t)
	before := srv.Served()
	r, err := e.EnsureBlob(context.Background(), Item{URL: u, MD5: sum})
	if err != nil {
		t.Fatal(err)
	}
	badLen := bad.Last - bad.First + 1
	if r.ReusedBytes != kept-badLen {
		t.Errorf("reused %d bytes, want %d (kept %d minus the bad range %d)", r.ReusedBytes, kept-badLen, kept, badLen)
	}
	if after := srv.Served() - before; after > size-kept+badLen {
		t.Errorf("fetched %d bytes, at most %d expected", after, size-kept+badLen)
	}
	if !strings.Contains(env.logs.String(), "does not match its recorded hash") {
		t.Error("corrupt range not reported")
	}
	assertStore(t, env, data, true, false)
}

// cancelAfter is an afterWrite hook that cancels once n bytes are written.
func cancelAfter(n int64, cancel func()) func(int64) {
	var mu sync.Mutex
	var total int64
	return func(k int64) {
		mu.Lock()
		defer mu.Unlock()
		if total += k; total >= n {
			cancel()
		}
	}
}
