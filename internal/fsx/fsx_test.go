//go:build unix

package fsx

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWriteFileAtomic: content lands under the final name with exactly the
// requested mode (also when replacing a file of another mode), and no temp
// is left behind.
func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "entry.json")
	if err := WriteFileAtomic(p, []byte(`{"a":1}`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o600)
	if err := WriteFileAtomic(p, []byte(`{"a":2}`), 0o664); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	fi, _ := os.Lstat(p)
	if string(got) != `{"a":2}` || fi.Mode().Perm() != 0o664 {
		t.Fatalf("got %q mode %v", got, fi.Mode())
	}
	if n := names(t, dir); len(n) != 1 {
		t.Fatalf("leftovers: %v", n)
	}
}

// TestWriteFileAtomicRefusesSymlink: a symlink (to a file, or dangling) or a
// directory at the final path is refused with *UnsafePathError; the target is
// untouched or not created, and no temp is left.
func TestWriteFileAtomicRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	os.WriteFile(target, []byte("keep"), 0o600)
	link := filepath.Join(dir, "entry.json")
	os.Symlink(target, link)
	err := WriteFileAtomic(link, []byte("x"), 0o644)
	var upe *UnsafePathError
	if !errors.Is(err, ErrSymlink) || !errors.As(err, &upe) || upe.Path != link {
		t.Fatalf("want ErrSymlink, got %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Fatal("wrote through the symlink")
	}
	dangling := filepath.Join(dir, "d.json")
	os.Symlink(filepath.Join(dir, "nothere"), dangling)
	if err := WriteFileAtomic(dangling, []byte("x"), 0o644); !errors.Is(err, ErrSymlink) {
		t.Fatalf("dangling: want ErrSymlink, got %v", err)
	}
	sub := filepath.Join(dir, "sub.json")
	os.Mkdir(sub, 0o755)
	if err := WriteFileAtomic(sub, []byte("x"), 0o644); !errors.Is(err, ErrNotRegular) {
		t.Fatalf("dir: want ErrNotRegular, got %v", err)
	}
	for _, n := range names(t, dir) {
		if _, ok := ParseAtomicTempName(n); ok || n == "nothere" {
			t.Fatalf("leftover %s", n)
		}
	}
}

// TestWriteFileAtomicNoTempOnFailure: a write that fails after the temp was
// created (EFBIG under RLIMIT_FSIZE, in a child process) removes the temp and
// leaves the old file intact; a temp name too long for the filesystem fails
// cleanly too.
func TestWriteFileAtomicNoTempOnFailure(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "entry.json")
	os.WriteFile(p, []byte("old"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "FSXTEST_CHILD=efbig", "FSXTEST_PATH="+p)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "file too large") {
		t.Fatalf("child did not hit EFBIG: %s", out)
	}
	if n := names(t, dir); len(n) != 1 {
		t.Fatalf("leftovers: %v", n)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("old content lost: %q", b)
	}

	long := strings.Repeat("a", 250) // the temp name exceeds NAME_MAX
	if err := WriteFileAtomic(filepath.Join(dir, long), []byte("x"), 0o644); err == nil {
		t.Fatal("expected ENAMETOOLONG for the temp name")
	}
	if n := names(t, dir); len(n) != 1 {
		t.Fatalf("leftovers: %v", n)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("FSXTEST_CHILD") == "efbig" {
		// Writes past 1 KiB fail with EFBIG instead of killing us.
		signal.Ignore(syscall.SIGXFSZ)
		if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &unix.Rlimit{Cur: 1024, Max: unix.RLIM_INFINITY}); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(1)
		}
		err := WriteFileAtomic(os.Getenv("FSXTEST_PATH"), make([]byte, 64<<10), 0o644)
		fmt.Println(err)
		if err == nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestTempNames: temp names follow ".<final>.<rand8>.tmp" with the
// reference alphabet and round-trip through ParseAtomicTempName.
func TestTempNames(t *testing.T) {
	re := regexp.MustCompile(`^\.entry\.json\.[a-z0-9_]{8}\.tmp$`)
	seen := map[string]bool{}
	for i := 0; i < 200; i++ {
		n, err := AtomicTempName("entry.json")
		if err != nil || !re.MatchString(n) {
			t.Fatalf("bad temp name %q (%v)", n, err)
		}
		seen[n] = true
		if final, ok := ParseAtomicTempName(n); !ok || final != "entry.json" {
			t.Fatalf("ParseAtomicTempName(%q) = %q, %v", n, final, ok)
		}
	}
	if len(seen) < 195 {
		t.Fatalf("temp names repeat: %d distinct of 200", len(seen))
	}
	for _, bad := range []string{"entry.json", ".entry.json.tmp", ".x.ABCDEFGH.tmp", "x.abcdefgh.tmp", ".x.abcdefg.tmp", ".x.abcdefgh.tmpx"} {
		if _, ok := ParseAtomicTempName(bad); ok {
			t.Errorf("ParseAtomicTempName(%q) accepted", bad)
		}
	}
	tok, err := HexToken()
	if err != nil || !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(tok) {
		t.Fatalf("HexToken = %q, %v", tok, err)
	}
}

// TestMD5File: the stable hash equals a plain hash over a multi-block file,
// and the returned identity is the file's.
func TestMD5File(t *testing.T) {
	p := filepath.Join(t.TempDir(), "blob")
	data := make([]byte, 3*BlockSize+123)
	rand.New(rand.NewSource(1)).Read(data)
	os.WriteFile(p, data, 0o644)
	sum, id, err := MD5File(context.Background(), p)
	want := md5.Sum(data)
	if err != nil || sum != hex.EncodeToString(want[:]) {
		t.Fatalf("MD5File = %s, %v", sum, err)
	}
	lid, _ := LstatID(p)
	if !id.Unchanged(lid) || id.Size != int64(len(data)) || !id.IsRegular() {
		t.Fatalf("identity %v vs %v", id, lid)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := MD5File(ctx, p); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

// changer modifies the file being hashed after the first block.
type changer struct {
	n   int
	act func()
}

func (c *changer) Write(p []byte) (int, error) {
	c.n++
	if c.n == 1 {
		c.act()
	}
	return len(p), nil
}

// TestStableHashDetectsChange: growth, same-size in-place rewrite and
// replacement by rename during the read all give *ChangedError.
func TestStableHashDetectsChange(t *testing.T) {
	data := make([]byte, 2*BlockSize+5)
	cases := map[string]func(p string){
		"append": func(p string) {
			f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			f.Write([]byte("more"))
			f.Close()
		},
		"rewrite-same-size": func(p string) {
			time.Sleep(20 * time.Millisecond) // let the coarse kernel clock tick
			f, _ := os.OpenFile(p, os.O_WRONLY, 0)
			f.WriteAt([]byte("X"), BlockSize+1)
			f.Close()
		},
		"replaced": func(p string) {
			os.WriteFile(p+".new", data, 0o644)
			os.Rename(p+".new", p)
		},
	}
	for name, act := range cases {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "blob")
			os.WriteFile(p, data, 0o644)
			_, err := StableHash(context.Background(), p, &changer{act: func() { act(p) }})
			var ce *ChangedError
			if !errors.Is(err, ErrChanged) || !errors.As(err, &ce) || ce.Path != p {
				t.Fatalf("want *ChangedError, got %v", err)
			}
		})
	}
}

// TestNoFollowOpeners: OpenNoFollow, StableHash and RegularNoFollow refuse a
// symlink (ErrSymlink) and a directory or FIFO (ErrNotRegular) without
// blocking; IsSymlink tells symlinks apart and is false for a missing path.
func TestNoFollowOpeners(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "reg")
	os.WriteFile(reg, []byte("x"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(reg, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)

	if f, err := OpenNoFollow(reg); err != nil {
		t.Fatal(err)
	} else {
		f.Close()
	}
	for p, kind := range map[string]error{link: ErrSymlink, fifo: ErrNotRegular, sub: ErrNotRegular} {
		if _, err := OpenNoFollow(p); !errors.Is(err, kind) {
			t.Errorf("OpenNoFollow(%s): want %v, got %v", filepath.Base(p), kind, err)
		}
		if _, err := StableHash(context.Background(), p, &bytes.Buffer{}); !errors.Is(err, kind) {
			t.Errorf("StableHash(%s): want %v, got %v", filepath.Base(p), kind, err)
		}
		if _, err := RegularNoFollow(p); !errors.Is(err, kind) {
			t.Errorf("RegularNoFollow(%s): want %v, got %v", filepath.Base(p), kind, err)
		}
	}
	if _, err := RegularNoFollow(filepath.Join(dir, "none")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("RegularNoFollow(missing): %v", err)
	}
	for p, want := range map[string]bool{link: true, reg: false, filepath.Join(dir, "none"): false} {
		if got, err := IsSymlink(p); got != want || err != nil {
			t.Errorf("IsSymlink(%s) = %v, %v", filepath.Base(p), got, err)
		}
	}
}

// TestEnsureDir: creates nested directories, accepts a symlinked ancestor
// (the cache root is used as written) and refuses a symlink or a file at the
// last component.
func TestEnsureDir(t *testing.T) {
	root := t.TempDir()
	if err := EnsureDir(filepath.Join(root, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(root, "a"), filepath.Join(root, "alias"))
	if err := EnsureDir(filepath.Join(root, "alias", "c"), 0o755); err != nil {
		t.Fatalf("symlinked ancestor: %v", err)
	}
	if err := EnsureDir(filepath.Join(root, "alias"), 0o755); !errors.Is(err, ErrSymlink) {
		t.Fatalf("symlink: want ErrSymlink, got %v", err)
	}
	os.WriteFile(filepath.Join(root, "f"), nil, 0o644)
	if err := EnsureDir(filepath.Join(root, "f"), 0o755); !errors.Is(err, ErrNotDir) {
		t.Fatalf("file: want ErrNotDir, got %v", err)
	}
	if err := SyncDir(root); err != nil {
		t.Fatal(err)
	}
}

// TestRenameNoReplace: renames into a free name; an existing file, symlink
// or dangling symlink at the target gives fs.ErrExist and nothing changes.
func TestRenameNoReplace(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte("new"), 0o644)
	if err := RenameNoReplace(src, filepath.Join(dir, "free")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(src, []byte("new"), 0o644)
	existing := filepath.Join(dir, "existing")
	os.WriteFile(existing, []byte("old"), 0o644)
	link := filepath.Join(dir, "link")
	os.Symlink(existing, link)
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "nowhere"), dangling)
	for _, dst := range []string{existing, link, dangling} {
		if err := RenameNoReplace(src, dst); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("%s: want ErrExist, got %v", filepath.Base(dst), err)
		}
	}
	if b, _ := os.ReadFile(existing); string(b) != "old" {
		t.Fatal("existing file replaced")
	}
	if b, _ := os.ReadFile(src); string(b) != "new" {
		t.Fatal("source lost")
	}
	if ok, _ := IsSymlink(link); !ok {
		t.Fatal("symlink replaced")
	}
}
