package download

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/journal"
)

// TestRerunRemovesLeftovers (issue 11 item 8): a pull that publishes a blob
// removes what earlier, killed pulls of it left behind — a journal-less
// partial, the temp of a journal rewrite, a dead owner's journal and
// partial — and keeps what a live owner still writes. DownloadFile removes
// the stale temps of its destination too.
func TestRerunRemovesLeftovers(t *testing.T) {
	for _, size := range []int{4, 100 << 10, 1<<20 + 3} { // unjournaled and journaled blobs
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			srv := newFaultServer(t)
			env := newEnv(t, "")
			e := env.engine(t, nil)
			data := randomBytes(uint64(60+size), size)
			sum := md5hex(data)
			dir := env.blobs.Dir()
			if err := os.MkdirAll(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			plant := func(name string, b []byte) string {
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return p
			}
			writeJ := func(token string, o journal.Owner) {
				o.Token = token
				if err := journal.Write(filepath.Join(dir, "."+sum+".partial-"+token+".json"),
					&journal.File{Version: 1, MD5: sum, Size: 999, RangesDone: []journal.Range{}, Owner: o}); err != nil {
					t.Fatal(err)
				}
			}
			gone := []string{
				plant("."+sum+".partial-00000000000000a1", data[:min(4, size)]),            // killed before its journal
				plant(".."+sum+".partial-00000000000000a2.json.abcdefgh.tmp", []byte("{")), // killed in a journal rewrite
				plant("."+sum+".partial-00000000000000a3", []byte("old")),
			}
			self := journal.Self()
			writeJ("00000000000000a3", journal.Owner{Host: self.Host, PID: 1 << 30}) // dead owner
			gone = append(gone, filepath.Join(dir, "."+sum+".partial-00000000000000a3.json"))
			live := plant("."+sum+".partial-00000000000000a4", []byte("live"))
			writeJ("00000000000000a4", journal.Owner{Host: self.Host, PID: os.Getppid(), StartTime: journal.ProcessStartTime(os.Getppid())})

			if _, err := e.EnsureBlob(context.Background(), Item{Name: "w", URL: srv.add("/w", data), MD5: sum}); err != nil {
				t.Fatal(err)
			}
			for _, p := range gone {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("leftover %s survived the rerun", filepath.Base(p))
				}
			}
			for _, p := range []string{live, live + ".json"} {
				if _, err := os.Lstat(p); err != nil {
					t.Errorf("a live owner's %s was removed: %v", filepath.Base(p), err)
				}
			}
			ents, _ := os.ReadDir(dir)
			for _, en := range ents {
				k, _ := blobfs.Classify(en.Name())
				if k != blobfs.KindBlob && k != blobfs.KindLock && en.Name() != filepath.Base(live) && en.Name() != filepath.Base(live)+".json" {
					t.Errorf("unexpected %s (%s)", en.Name(), k)
				}
			}
		})
	}
	t.Run("plain file", func(t *testing.T) {
		srv := newFaultServer(t)
		env := newEnv(t, "")
		e := env.engine(t, nil)
		pkg := t.TempDir()
		stale := filepath.Join(pkg, ".config.json.partial-00000000000000b1")
		if err := os.WriteFile(stale, []byte("{\"a\""), 0o644); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(pkg, ".other.json.partial-00000000000000b2") // another file's: not ours to judge
		if err := os.WriteFile(other, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		data := []byte(`{"a": 1}`)
		if _, err := e.DownloadFile(context.Background(), Item{Name: "config.json", URL: srv.add("/c", data), Dest: filepath.Join(pkg, "config.json")}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(stale); err == nil {
			t.Error("a stale temp of the destination survived")
		}
		if _, err := os.Lstat(other); err != nil {
			t.Error("another file's temp was removed")
		}
	})
}
