//go:build unix && !aix

package lock

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
)

func fastLocker(o Options) *Locker {
	if o.PollInterval == 0 {
		o.PollInterval = 5 * time.Millisecond
	}
	return NewLocker(o)
}

// TestTimeoutAcrossProcesses: a lock held by another process makes Lock fail
// after the per-call timeout with a *TimeoutError that names the file and
// says how to find the holder; after release Lock succeeds.
func TestTimeoutAcrossProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".abc.lock")
	peer := startRaw(t, path, nil, "")
	peer.do("lock")

	l := fastLocker(Options{Timeout: time.Hour})
	start := time.Now()
	_, err := l.Lock(context.Background(), path, WithTimeout(300*time.Millisecond))
	var te *TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("want *TimeoutError, got %v", err)
	}
	if te.Path != path || te.InProcess || te.Waited < 300*time.Millisecond || time.Since(start) > 5*time.Second {
		t.Fatalf("bad TimeoutError %+v", te)
	}
	for _, want := range []string{path, "fuser", "lsof", "INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT", "another process"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if h, ok, err := l.TryLock(context.Background(), path); ok || err != nil || h != nil {
		t.Fatalf("TryLock on a busy lock = %v, %v, %v", h, ok, err)
	}

	peer.do("unlock")
	h, err := l.Lock(context.Background(), path, WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); err != nil { // idempotent
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("lock file must stay after release by default: %v", err)
	}
}

// TestTimeoutInProcess: the per-path mutex times out the same way and the
// error says the holder is in this process; the holder's release lets the
// next goroutine in.
func TestTimeoutInProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	l := fastLocker(Options{Timeout: 200 * time.Millisecond})
	h, err := l.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Lock(context.Background(), path)
	var te *TimeoutError
	if !errors.As(err, &te) || !te.InProcess || !strings.Contains(err.Error(), "this process") {
		t.Fatalf("want in-process *TimeoutError, got %v", err)
	}
	ch := lockAsync(l, path, WithTimeout(5*time.Second))
	expectPending(t, ch, 50*time.Millisecond)
	h.Unlock()
	expectAcquired(t, ch).Unlock()
	if n := len(l.slots); n != 0 {
		t.Fatalf("slot table leaked %d entries", n)
	}
}

// TestContextCancel: cancelling ctx ends the wait with ctx's error, not a timeout.
func TestContextCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	l := fastLocker(Options{Timeout: time.Hour})
	other := fastLocker(Options{}) // separate Locker: exclusion comes from flock alone
	h, err := other.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err = l.Lock(ctx, path)
	var te *TimeoutError
	if !errors.Is(err, context.DeadlineExceeded) || errors.As(err, &te) {
		t.Fatalf("want context.DeadlineExceeded, got %v", err)
	}
}

// TestGoroutineExclusion: goroutines sharing a Locker, and goroutines of two
// Lockers in one process (flock between descriptors), never overlap.
func TestGoroutineExclusion(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	lockers := []*Locker{fastLocker(Options{PollInterval: time.Millisecond}), fastLocker(Options{PollInterval: time.Millisecond})}
	var inside, maxInside atomic.Int32
	counter := 0 // unsynchronised on purpose: -race flags any overlap
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(l *Locker) {
			defer wg.Done()
			for i := 0; i < 40; i++ {
				h, err := l.Lock(context.Background(), path, WithTimeout(30*time.Second))
				if err != nil {
					t.Error(err)
					return
				}
				if n := inside.Add(1); n > maxInside.Load() {
					maxInside.Store(n)
				}
				counter++
				inside.Add(-1)
				h.Unlock()
			}
		}(lockers[g%2])
	}
	wg.Wait()
	if maxInside.Load() != 1 || counter != 16*40 {
		t.Fatalf("max holders %d, counter %d", maxInside.Load(), counter)
	}
}

// TestProcessExclusion: 6 real processes, half of them unlinking the lock file
// on release (§9.4), take the lock 40 times each; an O_EXCL marker proves
// that no two were ever inside at once.
func TestProcessExclusion(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".shared.lock")
	start := filepath.Join(dir, "start")
	var cmds []*exec.Cmd
	for i := 0; i < 6; i++ {
		cmd := childCmd(t, "exclusion", "LOCKTEST_PATH="+path, "LOCKTEST_ITER=40",
			"LOCKTEST_START="+start, fmt.Sprintf("LOCKTEST_UNLINK=%d", i%2))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i, err)
		}
	}
}

// TestUnlinkRecheck: a filelock >= 3.21 style peer unlinks (or renames away)
// the lock file while holding it and another peer locks a fresh file at the
// same path. Our waiter, which had the old inode open, wins flock on that
// orphan and must notice (nlink == 0, or a different inode at path), drop it
// and wait for the fresh file, so that the two never hold "the" lock at once.
func TestUnlinkRecheck(t *testing.T) {
	for _, mode := range []string{"unlinked", "replaced"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, ".blob.lock")
			p1 := startRaw(t, path, nil, "")
			p2 := startRaw(t, path, nil, "")
			p1.do("lock")
			ino1 := inode(t, path)

			l := fastLocker(Options{})
			var once sync.Once
			swapped := make(chan struct{})
			l.testHookAfterOpen = func() {
				// We hold an fd on ino1 and have not called flock yet.
				once.Do(func() {
					if mode == "unlinked" {
						p1.do("unlink")
					} else {
						p1.do("rename " + path + ".old")
					}
					p2.do("lock") // creates and locks a fresh inode at path
					p1.do("unlock")
					close(swapped)
				})
			}
			ch := lockAsync(l, path, WithTimeout(60*time.Second))
			// Wait for the peers to finish the swap (however slow the
			// machine), then our waiter must still be waiting: it won flock
			// on the orphan at most, which it must not keep.
			select {
			case <-swapped:
			case <-time.After(60 * time.Second):
				t.Fatal("the peers did not swap the lock file within 60 s")
			}
			select {
			case r := <-ch:
				if r.h != nil {
					r.h.Unlock()
				}
				t.Fatalf("Lock returned while a peer held the fresh lock file (err=%v)", r.err)
			default:
			}
			ino2 := inode(t, path)
			if ino2 == ino1 {
				t.Fatal("peer did not create a fresh lock file")
			}
			p2.do("unlock")
			h := expectAcquired(t, ch)
			defer h.Unlock()
			if h.fl.ino != ino2 || inode(t, path) != ino2 {
				t.Fatalf("holding ino %d, path has %d, want %d", h.fl.ino, inode(t, path), ino2)
			}
		})
	}
}

// TestSymlinkRefused: a symlink at the lock path (to a file, dangling, or to
// a directory) and a directory at the lock path are refused with typed
// errors; the symlink target is neither created nor modified.
func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	os.Chtimes(target, old, old)
	before, _ := os.Lstat(target)

	l := fastLocker(Options{Timeout: time.Second})
	link := filepath.Join(dir, ".a.lock")
	os.Symlink(target, link)
	if _, err := l.Lock(context.Background(), link); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("symlink to file: want ErrSymlink, got %v", err)
	}
	var upe *fsx.UnsafePathError
	if _, err := l.Lock(context.Background(), link); !errors.As(err, &upe) || upe.Path != link {
		t.Fatalf("want *fsx.UnsafePathError for %s, got %v", link, err)
	}
	after, _ := os.Lstat(target)
	got, _ := os.ReadFile(target)
	if string(got) != "keep me" || after.Mode() != before.Mode() || !after.ModTime().Equal(before.ModTime()) {
		t.Fatalf("symlink target touched: %q %v %v", got, after.Mode(), after.ModTime())
	}

	dangling := filepath.Join(dir, ".b.lock")
	missing := filepath.Join(dir, "should-not-exist")
	os.Symlink(missing, dangling)
	if _, err := l.Lock(context.Background(), dangling); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("dangling symlink: want ErrSymlink, got %v", err)
	}
	if _, err := os.Lstat(missing); !os.IsNotExist(err) {
		t.Fatalf("lock created a file through a dangling symlink")
	}

	os.Mkdir(filepath.Join(dir, "d"), 0o755)
	dirlink := filepath.Join(dir, ".c.lock")
	os.Symlink(filepath.Join(dir, "d"), dirlink)
	if _, err := l.Lock(context.Background(), dirlink); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("symlink to dir: want ErrSymlink, got %v", err)
	}
	realdir := filepath.Join(dir, ".d.lock")
	os.Mkdir(realdir, 0o755)
	if _, err := l.Lock(context.Background(), realdir); !errors.Is(err, fsx.ErrNotRegular) {
		t.Fatalf("directory: want ErrNotRegular, got %v", err)
	}
	if len(l.slots) != 0 {
		t.Fatalf("slot table leaked after errors")
	}
}

// TestUnlinkOnRelease: with the option the file is gone after Unlock.
func TestUnlinkOnRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	l := fastLocker(Options{UnlinkOnRelease: true})
	h, err := l.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatal(err)
	}
	if err := h.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("lock file still present: %v", err)
	}
}

// TestModeWidening: lock files are created 0644 and a too-narrow file we own
// is widened to the configured mode (as the reference's fchmod), never narrowed.
func TestModeWidening(t *testing.T) {
	dir := t.TempDir()
	l := fastLocker(Options{Mode: 0o664})
	narrow := filepath.Join(dir, ".n.lock")
	os.WriteFile(narrow, nil, 0o600)
	os.Chmod(narrow, 0o600)
	wide := filepath.Join(dir, ".w.lock")
	os.WriteFile(wide, nil, 0o666)
	os.Chmod(wide, 0o666)
	for p, want := range map[string]os.FileMode{narrow: 0o664, wide: 0o666} {
		h, err := l.Lock(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		h.Unlock()
		if fi, _ := os.Lstat(p); fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(p), fi.Mode().Perm(), want)
		}
	}
	fresh := filepath.Join(dir, ".f.lock")
	h, err := fastLocker(Options{}).Lock(context.Background(), fresh)
	if err != nil {
		t.Fatal(err)
	}
	h.Unlock()
	if fi, _ := os.Lstat(fresh); fi.Mode().Perm() != 0o644 {
		t.Errorf("fresh lock file mode %v, want 0644", fi.Mode().Perm())
	}
}

// TestWaitReports: a waiter reports "still waiting for <lock>" through slog
// and OnWait at the configured interval, with the in-process holder's age.
func TestWaitReports(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	var buf bytes.Buffer
	var mu sync.Mutex
	var reports []WaitStatus
	l := fastLocker(Options{
		Logger:          slog.New(slog.NewTextHandler(&syncWriter{w: &buf, mu: &mu}, nil)),
		WaitLogInterval: 40 * time.Millisecond,
		OnWait: func(s WaitStatus) {
			mu.Lock()
			reports = append(reports, s)
			mu.Unlock()
		},
	})
	h, err := l.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	ch := lockAsync(l, path)
	// Hold the lock until the waiter has reported twice (however long that
	// takes on a busy machine), then let it through.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		mu.Lock()
		n := len(reports)
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d wait reports in 30 s, want >= 2", n)
		}
	}
	h.Unlock()
	expectAcquired(t, ch).Unlock()
	mu.Lock()
	defer mu.Unlock()
	r := reports[len(reports)-1]
	if r.Path != path || r.Waited <= 0 || !r.HeldInProcess || r.Held <= 0 {
		t.Fatalf("bad report %+v", r)
	}
	if !strings.Contains(buf.String(), "still waiting for "+path) {
		t.Fatalf("log lacks the waiting line:\n%s", buf.String())
	}
}

type syncWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// TestProgressExtendsWait: while the progress function keeps changing the
// wait outlives the timeout; once it stalls, the timeout applies again.
func TestProgressExtendsWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), ".x.lock")
	holder := fastLocker(Options{})
	l := fastLocker(Options{Timeout: 100 * time.Millisecond})
	h, err := holder.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	ch := lockAsync(l, path, WithProgress(func() int64 { return n.Add(1) }))
	expectPending(t, ch, 400*time.Millisecond) // 4x the timeout
	h.Unlock()
	expectAcquired(t, ch).Unlock()

	h, _ = holder.Lock(context.Background(), path)
	defer h.Unlock()
	start := time.Now()
	_, err = l.Lock(context.Background(), path, WithProgress(func() int64 { return 7 }))
	var te *TimeoutError
	if !errors.As(err, &te) || time.Since(start) > 2*time.Second {
		t.Fatalf("stalled progress: want timeout, got %v after %v", err, time.Since(start))
	}
}

// TestReadOnlyFallback: a lock file the caller cannot open read-write (owned
// by another user, 0644) is opened read-only and still excludes. As root the
// roles are reversed: a child running as "nobody" locks the root-owned file.
func TestReadOnlyFallback(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, ".ro.lock")
	if os.Geteuid() != 0 {
		os.WriteFile(path, nil, 0o444)
		os.Chmod(path, 0o444)
		l := fastLocker(Options{})
		h, err := l.Lock(context.Background(), path)
		if err != nil {
			t.Fatalf("read-only lock file: %v", err)
		}
		defer h.Unlock()
		if _, ok, _ := fastLocker(Options{}).TryLock(context.Background(), path); ok {
			t.Fatal("read-only flock did not exclude")
		}
		return
	}
	// Root: run the raw child as uid/gid 65534 from a copy of the test binary
	// it can execute, on a root-owned 0644 lock file in a 0755 directory.
	bin := filepath.Join(dir, "lock.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir's per-test parent
	os.WriteFile(path, nil, 0o644)
	l := fastLocker(Options{})
	h, err := l.Lock(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	h.Unlock()
	peer := startRaw(t, path, &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}, bin)
	// The child's O_RDWR open fails with EACCES; its Locker must fall back
	// to a read-only descriptor, and that flock must still exclude us.
	peer.do("glock")
	if _, ok, err := l.TryLock(context.Background(), path); ok || err != nil {
		t.Fatalf("read-only holder did not exclude (ok=%v err=%v)", ok, err)
	}
	peer.do("gunlock")
	h, ok, err := l.TryLock(context.Background(), path)
	if !ok || err != nil {
		t.Fatalf("lock not free after the child's release (ok=%v err=%v)", ok, err)
	}
	h.Unlock()
	if fi, _ := os.Lstat(path); fi.Mode().Perm() != 0o644 {
		t.Fatalf("mode changed to %v", fi.Mode().Perm())
	}
}
