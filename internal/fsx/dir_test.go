//go:build linux || darwin || freebsd || netbsd || openbsd

package fsx

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"testing/fstest"
	"time"
)

// plantedTree is a directory "in" with a real subdirectory, a file, and
// symlinks leading to an "out" directory holding a secret file and a FIFO
// (opening the FIFO for reading would block: a method that follows a link
// hangs the test).
func plantedTree(t *testing.T) (in, out string) {
	t.Helper()
	base := t.TempDir()
	in, out = filepath.Join(base, "in"), filepath.Join(base, "out")
	for _, d := range []string{filepath.Join(in, "sub", "deep"), out} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(in, "file"), "inside")
	write(filepath.Join(in, "sub", "deep", "f"), "deep")
	write(filepath.Join(out, "secret"), "outside")
	if err := syscall.Mkfifo(filepath.Join(out, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"linkdir": out, "linkfile": filepath.Join(out, "secret"), "linkfifo": filepath.Join(out, "fifo")} {
		if err := os.Symlink(target, filepath.Join(in, name)); err != nil {
			t.Fatal(err)
		}
	}
	return in, out
}

func TestDirRefusesSymlinks(t *testing.T) {
	in, out := plantedTree(t)
	root, err := OpenRoot(in)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	if _, err := root.Sub("linkdir"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Sub(linkdir): %v, want ErrSymlink", err)
	}
	if _, err := root.Sub("file"); !errors.Is(err, ErrNotDir) {
		t.Errorf("Sub(file): %v, want ErrNotDir", err)
	}
	if _, err := root.Sub("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Sub(missing): %v", err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", "x\x00"} {
		if _, err := root.Sub(bad); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Sub(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := root.SubPath("linkdir/secret"); !errors.Is(err, ErrSymlink) {
		t.Errorf("SubPath through a link: %v", err)
	}
	for _, name := range []string{"linkfile", "linkfifo"} {
		if _, err := root.Open(name); !errors.Is(err, ErrSymlink) {
			t.Errorf("Open(%s): %v, want ErrSymlink", name, err)
		}
		if _, _, err := root.ReadFile(name, 100); !errors.Is(err, ErrSymlink) {
			t.Errorf("ReadFile(%s): %v", name, err)
		}
		if _, err := root.StableHash(context.Background(), name, md5.New(), nil); !errors.Is(err, ErrSymlink) {
			t.Errorf("StableHash(%s): %v", name, err)
		}
		if err := root.WriteFileAtomic(name, []byte("x"), 0o644); !errors.Is(err, ErrSymlink) {
			t.Errorf("WriteFileAtomic(%s): %v", name, err)
		}
		if _, err := root.Create(name, os.O_WRONLY, 0o644); !errors.Is(err, ErrSymlink) {
			t.Errorf("Create(%s): %v", name, err)
		}
	}
	if _, err := root.EnsureSub("linkdir", 0o755); !errors.Is(err, ErrSymlink) {
		t.Errorf("EnsureSub(linkdir): %v", err)
	}
	id, err := root.Lstat("linkfile")
	if err != nil || id.Mode&fs.ModeSymlink == 0 {
		t.Errorf("Lstat(linkfile) = %v, %v", id, err)
	}
	if text, err := root.Readlink("linkdir"); err != nil || text != out {
		t.Errorf("Readlink = %q, %v", text, err)
	}
	// RemoveAll of a link removes the link only; SetTimes never touches the target.
	before, _ := os.Lstat(filepath.Join(out, "secret"))
	if err := root.SetTimes("linkfile", time.Unix(1, 0)); err != nil {
		t.Errorf("SetTimes(linkfile): %v", err)
	}
	if err := root.RemoveAll("linkdir"); err != nil {
		t.Fatal(err)
	}
	after, err := os.Lstat(filepath.Join(out, "secret"))
	if err != nil || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("outside file touched: %v %v", after, err)
	}
	if _, err := os.Lstat(filepath.Join(in, "linkdir")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("link not removed: %v", err)
	}
}

func TestDirOperations(t *testing.T) {
	in, _ := plantedTree(t)
	root, err := OpenRoot(in)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	ents, err := root.Entries()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		kind := "file"
		switch {
		case e.IsDir():
			kind = "dir"
		case e.IsSymlink():
			kind = "link"
		}
		got = append(got, e.Name+":"+kind)
	}
	sort.Strings(got)
	want := "file:file linkdir:link linkfifo:link linkfile:link sub:dir"
	if s := join(got); s != want {
		t.Errorf("entries %s, want %s", s, want)
	}
	// A second listing starts over.
	if again, _ := root.Entries(); len(again) != len(ents) {
		t.Errorf("second listing: %d entries", len(again))
	}
	deep, err := root.SubPath("sub/deep")
	if err != nil {
		t.Fatal(err)
	}
	data, id, err := deep.ReadFile("f", 2)
	if err != nil || string(data) != "de" || id.Size != 4 {
		t.Errorf("ReadFile limit: %q %v %v", data, id, err)
	}
	data, _, err = deep.ReadFile("f", 1<<20)
	if err != nil || string(data) != "deep" {
		t.Errorf("ReadFile: %q %v", data, err)
	}
	if err := deep.WriteFileAtomic("new.json", []byte("{}"), 0o640); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(in, "sub", "deep", "new.json")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("written: %v %v", fi, err)
	}
	if err := deep.ReplaceSymlink("../../file", "l"); err != nil {
		t.Fatal(err)
	}
	if err := deep.ReplaceSymlink("../../sub", "l"); err != nil {
		t.Fatal(err)
	}
	if text, _ := deep.Readlink("l"); text != "../../sub" {
		t.Errorf("replaced link text %q", text)
	}
	// RenameNoReplace refuses an existing name of any type.
	if err := deep.RenameNoReplace("new.json", deep, "l"); !errors.Is(err, fs.ErrExist) {
		t.Errorf("RenameNoReplace over a link: %v", err)
	}
	if err := deep.RenameNoReplace("new.json", root, "moved.json"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Lstat("moved.json"); err != nil {
		t.Error(err)
	}
	var h bytesWriter
	if _, err := deep.StableHash(context.Background(), "f", &h, make([]byte, 3)); err != nil || h.String() != "deep" {
		t.Errorf("StableHash: %q %v", h.String(), err)
	}
	deep.Close()
	if err := root.RemoveAll("sub"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(in, "sub")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("sub still there: %v", err)
	}
	if err := root.RemoveAll("missing"); err != nil {
		t.Errorf("RemoveAll(missing): %v", err)
	}
	sub, err := root.EnsureSub("made", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if err := root.SetTimes("file", time.Unix(1000, 0)); err != nil {
		t.Fatal(err)
	}
	if id, _ := root.Lstat("file"); id.MtimeNS != 1000e9 {
		t.Errorf("SetTimes: mtime %d", id.MtimeNS)
	}
}

type bytesWriter struct{ bytes.Buffer }

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += " "
		}
		out += x
	}
	return out
}

// TestFileIDOf: the identity in an os.Stat result equals what LstatID reads;
// a FileInfo without a stat_t (an in-memory fs) has none.
func TestFileIDOf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := FileIDOf(fi)
	want, err := LstatID(p)
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if got != want || got.Ino == 0 {
		t.Fatalf("FileIDOf %v, LstatID %v", got, want)
	}
	mfi, err := fs.Stat(fstest.MapFS{"x": {Data: []byte("1")}}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := FileIDOf(mfi); ok || id != (FileID{}) {
		t.Fatalf("in-memory file: %v %v", id, ok)
	}
	sum := md5.Sum([]byte("x"))
	if s, _, _ := MD5File(context.Background(), p); s != hex.EncodeToString(sum[:]) {
		t.Fatal(s)
	}
}
