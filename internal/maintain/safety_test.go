package maintain_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
)

// snapshot records every path under root with type, size, mtime and the
// SHA-256 of regular files (read here, by the test, not by the code).
func snapshot(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			sum := sha256.Sum256(mustRead(t, p))
			b.WriteString(" " + hex.EncodeToString(sum[:]))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// Symlinks planted everywhere in the cache lead to files outside it, one of
// them a FIFO: opening it for reading would block, so a command that reads
// through a link hangs and the test fails on its deadline. After verify,
// verify --repair, gc without grace and purge --all, the outside tree is
// byte-for-byte and mtime-for-mtime what it was.
func TestPlantedSymlinksNeverLeadOutside(t *testing.T) {
	ctx := context.Background()
	s := newStandard(t)
	out := t.TempDir()
	secret := filepath.Join(out, "secret")
	maintaintest.WriteFile(t, secret, []byte("keep me"))
	fifo := filepath.Join(out, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// An outside directory that looks like package content.
	outExtras := filepath.Join(out, "extras")
	maintaintest.WriteFile(t, filepath.Join(outExtras, "kp.json"), []byte("outside kp"))
	outModel := filepath.Join(out, "model", "pkg")
	maintaintest.WriteFile(t, filepath.Join(outModel, "model_config.json"), []byte("{}"))
	maintaintest.WriteFile(t, filepath.Join(outModel, "weights.onnx"), []byte("outside weights"))

	h := s.C.Home
	// Undeclared links in a package dir.
	symlink(t, secret, filepath.Join(s.resA.PackageDir, "planted"))
	symlink(t, fifo, filepath.Join(s.resA.PackageDir, "planted-fifo"))
	// A declared handle pointing outside, another at the FIFO.
	os.Remove(filepath.Join(s.resB.PackageDir, "other.bin"))
	symlink(t, secret, filepath.Join(s.resB.PackageDir, "other.bin"))
	os.Remove(filepath.Join(s.resS.PackageDir, "seg.bin"))
	symlink(t, fifo, filepath.Join(s.resS.PackageDir, "seg.bin"))
	// A nested handle's parent dir replaced by a link to an outside dir.
	if err := os.RemoveAll(filepath.Join(s.resA.PackageDir, "extras")); err != nil {
		t.Fatal(err)
	}
	symlink(t, outExtras, filepath.Join(s.resA.PackageDir, "extras"))
	// The unhashed file replaced by a link to the FIFO.
	os.Remove(filepath.Join(s.resA.PackageDir, "labels", "u.txt"))
	symlink(t, fifo, filepath.Join(s.resA.PackageDir, "labels", "u.txt"))
	// Links at a blob name, an entry name, a record name, a model dir, a stamp.
	symlink(t, secret, filepath.Join(h.SharedBlobs(), maintaintest.MD5([]byte("nothing"))))
	symlink(t, fifo, filepath.Join(h.SharedBlobs(), maintaintest.MD5([]byte("nothing2"))))
	symlink(t, secret, filepath.Join(h.AutoResolutionCache(), strings.Repeat("ab", 32)+".json"))
	symlink(t, fifo, filepath.Join(h.OfflineRegistry(), "v2-x-00000000000000000000000000000000.json"))
	symlink(t, filepath.Dir(outModel), filepath.Join(h.ModelsCache(), "v2-evil-00000000000000000000000000000000"))
	symlink(t, secret, filepath.Join(h.Meta(), "verified", maintaintest.MD5(weights)))
	// Everything is old enough for GC.
	s.Advance(48 * time.Hour)

	before := snapshot(t, out)
	done := make(chan struct{})
	var findings []maintain.Finding
	var cmdErr error
	go func() {
		defer close(done)
		r, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true})
		if err != nil {
			cmdErr = err
			return
		}
		findings = r.Findings
		if _, err := s.M.Verify(ctx, maintain.VerifyOptions{Full: true, Repair: true}); err != nil {
			cmdErr = err
			return
		}
		if _, err := s.M.List(ctx); err != nil {
			cmdErr = err
			return
		}
		if _, err := s.M.DiskUsage(ctx); err != nil {
			cmdErr = err
			return
		}
		if _, err := s.M.Show(ctx, "ws/det/3"); err != nil {
			cmdErr = err
			return
		}
		if _, err := s.M.GC(ctx, maintain.GCOptions{}); err != nil {
			cmdErr = err
			return
		}
		if _, err := s.M.Purge(ctx, maintain.PurgeOptions{All: true}); err != nil {
			cmdErr = err
		}
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		// Unblock a reader stuck on the FIFO so the test process can end.
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
		t.Fatal("a command blocked: it opened the FIFO through a planted link")
	}
	if cmdErr != nil {
		t.Fatal(cmdErr)
	}
	if after := snapshot(t, out); after != before {
		t.Fatalf("outside tree changed:\nbefore\n%s\nafter\n%s", before, after)
	}
	outside := 0
	for _, f := range findings {
		if f.Kind == maintain.FindOutsideLink || f.Kind == maintain.FindNotAFile || f.Kind == maintain.FindBlobNotRegular {
			outside++
		}
	}
	if outside < 7 {
		t.Errorf("only %d planted links reported: %+v", outside, findings)
	}
	// The planted links in the stores are still there (reported, not removed)
	// and nothing of the cache's own content is left.
	for _, p := range []string{
		filepath.Join(h.SharedBlobs(), maintaintest.MD5([]byte("nothing"))),
		filepath.Join(h.ModelsCache(), "v2-evil-00000000000000000000000000000000"),
	} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s: %v", p, err)
		}
	}
	if exists(s.resA.PackageDir) || exists(s.BlobPath(weights)) {
		t.Error("purge --all left cache content")
	}
}
