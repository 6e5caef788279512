//go:build unix

package blobfs

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func randBytes(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

func newStore(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	home := filepath.Join(t.TempDir(), "home")
	s, err := Open(home, lock.NewLocker(lock.Options{Timeout: 5 * time.Second, PollInterval: 5 * time.Millisecond}), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s, home
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names
}

// countingReader counts how many bytes were pulled from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func umask(t *testing.T) os.FileMode {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			if err == nil {
				return os.FileMode(m)
			}
		}
	}
	t.Skip("umask not reported")
	return 0
}

// TestPutGood: a verified blob is published under its MD5 with mode
// 0666 &^ umask, Has/Stat/Verify agree, and only the blob and its lock file
// remain in shared-blobs.
func TestPutGood(t *testing.T) {
	s, home := newStore(t)
	data := randBytes(1, 3<<20+17)
	sum := md5hex(data)
	p, err := s.Put(context.Background(), sum, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if p != filepath.Join(home, "shared-blobs", sum) {
		t.Fatalf("path %s", p)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
	fi, err := s.Stat(sum)
	if err != nil || fi.Mode().Perm() != 0o666&^umask(t) {
		t.Fatalf("stat: %v, mode %v", err, fi.Mode())
	}
	if ok, err := s.Has(sum); !ok || err != nil {
		t.Fatalf("Has = %v, %v", ok, err)
	}
	if err := s.Verify(context.Background(), sum); err != nil {
		t.Fatal(err)
	}
	if names := listDir(t, s.Dir()); strings.Join(names, ",") != "."+sum+".lock,"+sum {
		t.Fatalf("leftovers: %v", names)
	}
	// Unknown size works too.
	data2 := randBytes(2, 1000)
	if _, err := s.Put(context.Background(), md5hex(data2), bytes.NewReader(data2), -1); err != nil {
		t.Fatal(err)
	}
}

// TestPutDigestMismatch: wrong bytes give *blobstore.DigestMismatchError with both
// hashes; nothing is published and no temp is left.
func TestPutDigestMismatch(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(3, 100000)
	want := md5hex([]byte("something else"))
	_, err := s.Put(context.Background(), want, bytes.NewReader(data), int64(len(data)))
	var dm *blobstore.DigestMismatchError
	if !errors.As(err, &dm) || dm.Expected != want || dm.Actual != md5hex(data) || dm.Size != int64(len(data)) {
		t.Fatalf("want *blobstore.DigestMismatchError, got %v", err)
	}
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), md5hex(data)) {
		t.Fatalf("message lacks the hashes: %v", err)
	}
	if ok, _ := s.Has(want); ok {
		t.Fatal("mismatching blob published")
	}
	if names := listDir(t, s.Dir()); len(names) != 0 {
		t.Fatalf("leftovers: %v", names)
	}
}

// TestPutSizeMismatch: short and long streams give *blobstore.SizeMismatchError, a long
// stream is not drained (at most size+1 bytes read), nothing is published.
func TestPutSizeMismatch(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(4, 5000)
	sum := md5hex(data)
	_, err := s.Put(context.Background(), sum, bytes.NewReader(data[:4000]), 5000)
	var sm *blobstore.SizeMismatchError
	if !errors.As(err, &sm) || sm.Expected != 5000 || sm.Actual != 4000 || sm.AtLeast {
		t.Fatalf("short: got %v", err)
	}
	cr := &countingReader{r: bytes.NewReader(randBytes(5, 10<<20))}
	_, err = s.Put(context.Background(), sum, cr, 5000)
	if !errors.As(err, &sm) || !sm.AtLeast || cr.n > 5001 {
		t.Fatalf("long: got %v after reading %d bytes", err, cr.n)
	}
	if names := listDir(t, s.Dir()); len(names) != 0 {
		t.Fatalf("leftovers: %v", names)
	}
}

// TestPutExistingSkipped: an existing regular blob is returned without
// reading the stream and without hashing (as the reference does).
func TestPutExistingSkipped(t *testing.T) {
	s, _ := newStore(t)
	sum := md5hex([]byte("real"))
	p, _ := s.Path(sum)
	os.WriteFile(p, []byte("stale bytes, deliberately wrong"), 0o644)
	cr := &countingReader{r: strings.NewReader("real")}
	got, err := s.Put(context.Background(), sum, cr, 4)
	if err != nil || got != p || cr.n != 0 {
		t.Fatalf("Put = %s, %v; read %d bytes", got, err, cr.n)
	}
	if b, _ := os.ReadFile(p); string(b) != "stale bytes, deliberately wrong" {
		t.Fatal("existing blob was touched")
	}
}

// TestEmptyBlob: a zero-byte result is accepted only for the MD5 of nothing.
func TestEmptyBlob(t *testing.T) {
	s, _ := newStore(t)
	const empty = "d41d8cd98f00b204e9800998ecf8427e"
	if _, err := s.Put(context.Background(), empty, strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
	var dm *blobstore.DigestMismatchError
	if _, err := s.Put(context.Background(), md5hex([]byte("x")), strings.NewReader(""), -1); !errors.As(err, &dm) {
		t.Fatalf("empty body for a non-empty MD5: %v", err)
	}
}

// TestHostileMD5: malformed digests are rejected with *blobstore.InvalidDigestError by
// every entry point before any path work; nothing appears anywhere.
func TestHostileMD5(t *testing.T) {
	s, home := newStore(t)
	parent := filepath.Dir(home)
	before := listDir(t, parent)
	hostile := []string{
		"../x", "../../etc/passwd", "", strings.Repeat("a", 31), strings.Repeat("a", 33),
		strings.ToUpper(md5hex([]byte("x"))), "0123456789abcdef0123456789abcde/",
		"0123456789abcdef0123456789abcdeg", " " + md5hex([]byte("x"))[1:], md5hex([]byte("x")) + "\n",
	}
	for _, h := range hostile {
		var ide *blobstore.InvalidDigestError
		check := func(what string, err error) {
			t.Helper()
			if !errors.As(err, &ide) {
				t.Errorf("%s(%q): want *blobstore.InvalidDigestError, got %v", what, h, err)
			}
		}
		cr := &countingReader{r: strings.NewReader("data")}
		_, err := s.Put(context.Background(), h, cr, 4)
		check("Put", err)
		if cr.n != 0 {
			t.Errorf("Put(%q) read the stream", h)
		}
		_, err = s.Path(h)
		check("Path", err)
		_, err = s.LockPath(h)
		check("LockPath", err)
		_, err = s.Stat(h)
		check("Stat", err)
		_, err = s.Has(h)
		check("Has", err)
		check("Verify", s.Verify(context.Background(), h))
		_, err = s.Repair(context.Background(), h)
		check("Repair", err)
		_, err = s.Lock(context.Background(), h)
		check("Lock", err)
	}
	if names := listDir(t, s.Dir()); len(names) != 0 {
		t.Fatalf("shared-blobs not empty: %v", names)
	}
	if after := listDir(t, parent); strings.Join(after, ",") != strings.Join(before, ",") {
		t.Fatalf("files appeared next to H: %v -> %v", before, after)
	}
}

// TestSymlinkedDirRefused: a symlinked shared-blobs is refused by Open, and
// by Put/Stat/Verify if it is swapped in later; its target stays empty.
func TestSymlinkedDirRefused(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	elsewhere := filepath.Join(root, "elsewhere")
	os.MkdirAll(home, 0o755)
	os.MkdirAll(elsewhere, 0o755)
	os.Symlink(elsewhere, filepath.Join(home, DirName))
	if _, err := Open(home, nil); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Open: want ErrSymlink, got %v", err)
	}

	home2 := filepath.Join(root, "home2")
	s, err := Open(home2, nil)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(s.Dir())
	os.Symlink(elsewhere, s.Dir())
	data := []byte("payload")
	sum := md5hex(data)
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), -1); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Put: want ErrSymlink, got %v", err)
	}
	if _, err := s.Stat(sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Stat: want ErrSymlink, got %v", err)
	}
	if err := s.Verify(context.Background(), sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Verify: want ErrSymlink, got %v", err)
	}
	if _, err := s.Repair(context.Background(), sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Repair: want ErrSymlink, got %v", err)
	}
	if names := listDir(t, elsewhere); len(names) != 0 {
		t.Fatalf("wrote through the symlinked dir: %v", names)
	}
}

// TestSymlinkAtBlobPath: a symlink (to a file, or dangling) or a directory
// squatting at shared-blobs/<md5> is never followed, written through or
// replaced, including when it appears while Put is streaming.
func TestSymlinkAtBlobPath(t *testing.T) {
	s, home := newStore(t)
	target := filepath.Join(filepath.Dir(home), "precious")
	os.WriteFile(target, []byte("keep me"), 0o600)
	data := []byte("payload")
	sum := md5hex(data)
	p, _ := s.Path(sum)

	assertTarget := func() {
		t.Helper()
		if b, err := os.ReadFile(target); err != nil || string(b) != "keep me" {
			t.Fatalf("symlink target touched: %q %v", b, err)
		}
		if fi, _ := os.Lstat(target); fi.Mode().Perm() != 0o600 {
			t.Fatalf("target mode changed: %v", fi.Mode())
		}
	}
	noPartials := func() {
		t.Helper()
		for _, n := range listDir(t, s.Dir()) {
			if k, _ := Classify(n); k == KindPartial || k == KindCorrupt {
				t.Fatalf("leftover %s", n)
			}
		}
	}

	os.Symlink(target, p)
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), -1); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Put: want ErrSymlink, got %v", err)
	}
	if _, err := s.Has(sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Has: want ErrSymlink, got %v", err)
	}
	if err := s.Verify(context.Background(), sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Verify: want ErrSymlink, got %v", err)
	}
	if _, err := s.Repair(context.Background(), sum); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Repair: want ErrSymlink, got %v", err)
	}
	assertTarget()
	noPartials()
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatal("the symlink itself was replaced or removed")
	}

	// Appears while streaming: the publish step must refuse, not replace it.
	os.Remove(p)
	r := io.MultiReader(bytes.NewReader(data), readerFunc(func([]byte) (int, error) {
		os.Symlink(target, p)
		return 0, io.EOF
	}))
	if _, err := s.Put(context.Background(), sum, r, -1); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Put (late symlink): want ErrSymlink, got %v", err)
	}
	assertTarget()
	noPartials()

	// Dangling symlink: nothing gets created at its target.
	os.Remove(p)
	missing := filepath.Join(filepath.Dir(home), "missing")
	os.Symlink(missing, p)
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), -1); !errors.Is(err, fsx.ErrSymlink) {
		t.Fatalf("Put (dangling): want ErrSymlink, got %v", err)
	}
	if _, err := os.Lstat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("created the dangling symlink's target")
	}

	// Directory at the blob name.
	os.Remove(p)
	os.Mkdir(p, 0o755)
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), -1); !errors.Is(err, fsx.ErrNotRegular) {
		t.Fatalf("Put (dir): want ErrNotRegular, got %v", err)
	}
	if err := s.Verify(context.Background(), sum); !errors.Is(err, fsx.ErrNotRegular) {
		t.Fatalf("Verify (dir): want ErrNotRegular, got %v", err)
	}
	noPartials()
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestVerifyAndRepair: a blob corrupted in place fails Verify with
// *blobstore.DigestMismatchError; Repair removes it (no .corrupt- file left), after
// which Put publishes the good bytes again. Repair leaves good and missing
// blobs alone.
func TestVerifyAndRepair(t *testing.T) {
	var logs bytes.Buffer
	s, _ := newStore(t, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	data := randBytes(6, 2<<20)
	sum := md5hex(data)
	p, err := s.Put(context.Background(), sum, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Repair(context.Background(), sum); removed || err != nil {
		t.Fatalf("Repair of a good blob = %v, %v", removed, err)
	}
	bad := append([]byte(nil), data...)
	bad[12345] ^= 0xff // same size: a size check alone would pass (I4)
	os.WriteFile(p, bad, 0o644)
	var dm *blobstore.DigestMismatchError
	if err := s.Verify(context.Background(), sum); !errors.As(err, &dm) || dm.Actual != md5hex(bad) {
		t.Fatalf("Verify: want *blobstore.DigestMismatchError, got %v", err)
	}
	removed, err := s.Repair(context.Background(), sum)
	if !removed || err != nil {
		t.Fatalf("Repair = %v, %v", removed, err)
	}
	if ok, _ := s.Has(sum); ok {
		t.Fatal("corrupt blob still present")
	}
	for _, n := range listDir(t, s.Dir()) {
		if k, _ := Classify(n); k != KindLock {
			t.Fatalf("leftover %s", n)
		}
	}
	if !strings.Contains(logs.String(), "removed corrupt blob") {
		t.Fatalf("no log line:\n%s", logs.String())
	}
	if removed, err := s.Repair(context.Background(), sum); removed || err != nil {
		t.Fatalf("Repair of a missing blob = %v, %v", removed, err)
	}
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), sum); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentGoroutines: 16 goroutines publish the same blob through one
// Store (and 16 through a lock-free Store): all succeed, one file, no temps.
func TestConcurrentGoroutines(t *testing.T) {
	for _, noLock := range []bool{false, true} {
		s, _ := newStore(t)
		s.noLock = noLock
		data := randBytes(7, 1<<20)
		sum := md5hex(data)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Put(context.Background(), sum, bytes.NewReader(data), int64(len(data)))
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("noLock=%v: %v", noLock, err)
			}
		}
		for _, n := range listDir(t, s.Dir()) {
			if k, _ := Classify(n); k != KindBlob && k != KindLock {
				t.Fatalf("noLock=%v: leftover %s", noLock, n)
			}
		}
		if err := s.Verify(context.Background(), sum); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPutWithHeldLock: a caller holding the blob lock can Put without
// deadlocking; a foreign held lock is rejected.
func TestPutWithHeldLock(t *testing.T) {
	s, _ := newStore(t)
	data := []byte("held")
	sum := md5hex(data)
	h, err := s.Lock(context.Background(), sum)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	other := md5hex([]byte("other"))
	if _, err := s.Put(context.Background(), other, strings.NewReader("other"), 5, WithHeldLock(h)); err == nil {
		t.Fatal("Put accepted a lock of another blob")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, sum, bytes.NewReader(data), 4, WithHeldLock(h)); err != nil {
		t.Fatal(err)
	}
	bad := []byte("corrupt")
	p, _ := s.Path(sum)
	os.Remove(p)
	os.WriteFile(p, bad, 0o644)
	if removed, err := s.Repair(ctx, sum, WithHeldLock(h)); !removed || err != nil {
		t.Fatalf("Repair with held lock = %v, %v", removed, err)
	}
}

// TestPutLockTimeoutFallback: if the blob lock is held elsewhere past the
// timeout (e.g. a reference process downloading the same blob), Put still
// publishes, because correctness never depends on the lock.
func TestPutLockTimeoutFallback(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	var logs bytes.Buffer
	s, err := Open(home, lock.NewLocker(lock.Options{Timeout: 150 * time.Millisecond, PollInterval: 5 * time.Millisecond}),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("contended")
	sum := md5hex(data)
	lp, _ := s.LockPath(sum)
	h, err := lock.NewLocker(lock.Options{}).Lock(context.Background(), lp) // a different "process"
	if err != nil {
		t.Fatal(err)
	}
	defer h.Unlock()
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), -1); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), sum); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "without its lock") {
		t.Fatalf("no warning logged:\n%s", logs.String())
	}
	// Repair deletes, so it must not proceed without the lock.
	var te *lock.TimeoutError
	if _, err := s.Repair(context.Background(), sum); !errors.As(err, &te) {
		t.Fatalf("Repair without lock: want *lock.TimeoutError, got %v", err)
	}
}

// TestPutCancel: cancelling ctx mid-stream fails Put and removes its temp.
func TestPutCancel(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	r := readerFunc(func(p []byte) (int, error) {
		n++
		if n == 3 {
			cancel()
		}
		return copy(p, make([]byte, 64<<10)), nil
	})
	if _, err := s.Put(ctx, md5hex([]byte("x")), r, -1); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	if names := listDir(t, s.Dir()); len(names) != 0 {
		t.Fatalf("leftovers: %v", names)
	}
}

// TestReadOnlyBlobs: the option publishes 0444 blobs.
func TestReadOnlyBlobs(t *testing.T) {
	s, _ := newStore(t, WithReadOnlyBlobs())
	data := []byte("ro")
	sum := md5hex(data)
	if _, err := s.Put(context.Background(), sum, bytes.NewReader(data), 2); err != nil {
		t.Fatal(err)
	}
	if fi, _ := s.Stat(sum); fi.Mode().Perm() != 0o444 {
		t.Fatalf("mode %v", fi.Mode())
	}
}

// TestClassify: every name the store (or the reference) leaves in
// shared-blobs is recognised, and foreign names are not.
func TestClassify(t *testing.T) {
	m := md5hex([]byte("x"))
	cases := map[string]Kind{
		m:                                     KindBlob,
		"." + m + ".lock":                     KindLock,
		"." + m + ".partial-0123456789abcdef": KindPartial,
		"." + m + ".partial-0123456789abcdef.json":               KindJournal,
		"." + m + ".corrupt-0123456789abcdef":                    KindCorrupt,
		m + ".1b4e28ba-2fa1-4d2b-883f-0016d3cca427":              KindReferenceTemp,
		".." + m + ".partial-0123456789abcdef.json.ab_9xyz0.tmp": KindAtomicTemp,
		strings.ToUpper(m):                                       KindUnknown,
		"." + m + ".partial-0123":                                KindUnknown,
		"README":                                                 KindUnknown,
		m + ".1B4E28BA-2FA1-4D2B-883F-0016D3CCA427":              KindUnknown,
		"." + m + ".lock.extra":                                  KindUnknown,
	}
	for name, want := range cases {
		k, got := Classify(name)
		if k != want {
			t.Errorf("Classify(%q) = %v, want %v", name, k, want)
		}
		if want != KindUnknown && got != m {
			t.Errorf("Classify(%q) md5 = %q", name, got)
		}
	}
}

// TestPutDetailed: the result reports publication, size, SHA-256 and the
// blob's identity; a second Put reports the existing blob as not published.
func TestPutDetailed(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(8, 300000)
	sum := md5hex(data)
	res, err := s.PutDetailed(context.Background(), sum, bytes.NewReader(data), -1)
	if err != nil {
		t.Fatal(err)
	}
	sha := sha256.Sum256(data)
	id, _ := fsx.LstatID(res.Path)
	if !res.Published || res.Size != int64(len(data)) || res.SHA256 != hex.EncodeToString(sha[:]) || !res.File.Unchanged(id) {
		t.Fatalf("bad result %+v", res)
	}
	res2, err := s.PutDetailed(context.Background(), sum, bytes.NewReader(data), -1)
	if err != nil || res2.Published || res2.Path != res.Path {
		t.Fatalf("second put: %+v, %v", res2, err)
	}
}

// TestCommitPartial: a partial written by the caller (ranged-download
// style) is verified and published by Commit, with caller digests or a
// stable re-read; a mismatch removes it; foreign names are refused untouched.
func TestCommitPartial(t *testing.T) {
	s, _ := newStore(t)
	data := randBytes(9, 2<<20)
	sum := md5hex(data)
	write := func() *os.File {
		t.Helper()
		f, err := s.CreatePartial(sum)
		if err != nil {
			t.Fatal(err)
		}
		if k, m := Classify(filepath.Base(f.Name())); k != KindPartial || m != sum {
			t.Fatalf("partial name %s", f.Name())
		}
		// Out of order, as ranged downloads write.
		half := len(data) / 2
		f.WriteAt(data[half:], int64(half))
		f.WriteAt(data[:half], 0)
		f.Close()
		return f
	}

	f := write()
	res, err := s.Commit(context.Background(), sum, f.Name(), int64(len(data)), nil)
	if err != nil || !res.Published || res.Size != int64(len(data)) || res.SHA256 == "" {
		t.Fatalf("Commit (re-hash) = %+v, %v", res, err)
	}
	if err := s.Verify(context.Background(), sum); err != nil {
		t.Fatal(err)
	}

	// Another writer's partial for the same blob: blob exists, ours is dropped.
	f = write()
	res, err = s.Commit(context.Background(), sum, f.Name(), int64(len(data)), &Digests{MD5: sum})
	if err != nil || res.Published {
		t.Fatalf("Commit (existing) = %+v, %v", res, err)
	}
	if _, err := os.Lstat(f.Name()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("losing partial not removed")
	}

	// Caller digests that disagree with the expected MD5.
	p, _ := s.Path(sum)
	os.Remove(p)
	f = write()
	var dm *blobstore.DigestMismatchError
	if _, err := s.Commit(context.Background(), sum, f.Name(), -1, &Digests{MD5: md5hex(nil)}); !errors.As(err, &dm) {
		t.Fatalf("want *blobstore.DigestMismatchError, got %v", err)
	}
	if ok, _ := s.Has(sum); ok {
		t.Fatal("published despite mismatch")
	}

	// Names that are not this blob's partial in this store are refused.
	outside := filepath.Join(t.TempDir(), "."+sum+".partial-0123456789abcdef")
	os.WriteFile(outside, data, 0o644)
	other := md5hex([]byte("other"))
	g, _ := s.CreatePartial(other)
	g.Close()
	for _, bad := range []string{outside, g.Name(), filepath.Join(s.Dir(), sum)} {
		if _, err := s.Commit(context.Background(), sum, bad, -1, nil); err == nil {
			t.Fatalf("Commit accepted %s", bad)
		}
	}
	if _, err := os.Lstat(outside); err != nil {
		t.Fatal("refused partial was touched")
	}
	os.Remove(g.Name())
	for _, n := range listDir(t, s.Dir()) {
		if k, _ := Classify(n); k == KindPartial {
			t.Fatalf("leftover %s", n)
		}
	}
}

// TestPutRecreatesDir: shared-blobs removed after Open is recreated by Put.
func TestPutRecreatesDir(t *testing.T) {
	s, _ := newStore(t)
	os.RemoveAll(s.Dir())
	if ok, err := s.Has(md5hex(nil)); ok || err != nil {
		t.Fatalf("Has on a missing store dir = %v, %v", ok, err)
	}
	if _, err := s.Put(context.Background(), md5hex(nil), strings.NewReader(""), 0); err != nil {
		t.Fatal(err)
	}
}
