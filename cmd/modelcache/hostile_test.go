//go:build linux

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/meta"
)

// sentinel is a tree outside the cache that planted links point into. Two
// detectors watch it: inotify on every directory (an open, read, write,
// attribute change, creation, deletion or rename of anything in it is an
// event; a stat is not), and a before/after snapshot of paths, types,
// modes, sizes, mtimes and contents. A FIFO sits among the files: a command
// that opened it through a link would block and hit the test's deadline.
type sentinel struct {
	root    string
	fd      int
	watches map[int]string
}

func newSentinel(t *testing.T) *sentinel {
	t.Helper()
	s := &sentinel{root: filepath.Join(t.TempDir(), "outside"), watches: map[int]string{}}
	md5 := maintaintest.MD5([]byte("outside blob"))
	slug, _ := layout.Slug("ws/det/3")
	files := map[string]string{
		"secret":                                 "keep me",
		"blobs/" + md5:                           "outside blob",
		"models/" + slug + "/onnxa/weights.onnx": "outside weights",
		"models/" + slug + "/onnxa/model_config.json":             "{}",
		"models/v2-evil-00000000000000000000000000000000/p/x.bin": "x",
		"entries/" + strings.Repeat("ab", 32) + ".json":           "{}",
		"records/v2-x-00000000000000000000000000000000.json":      "{}",
		"meta/last-used/" + slug + "/onnxa":                       "",
		"meta/verified.log":                                       "v1 " + md5 + " 12 1 1 - 1\n",
		"meta/leases/l.json":                                      `{"expires_at":"2000-01-01T00:00:00+00:00"}`,
		"lock":                                                    "",
	}
	for p, data := range files {
		maintaintest.WriteFile(t, filepath.Join(s.root, p), []byte(data))
	}
	if err := syscall.Mkfifo(filepath.Join(s.root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Old times everywhere: a write or a GC judged by age would hit them.
	old := time.Now().Add(-72 * time.Hour)
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type()&fs.ModeNamedPipe == 0 {
			os.Chtimes(p, old, old)
		}
		return nil
	})
	return s
}

func (s *sentinel) path(rel string) string { return filepath.Join(s.root, rel) }

// snapshot reads the tree (by the test, before watching or after).
func (s *sentinel) snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %d", p, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, _ := os.ReadFile(p)
			sum := sha256.Sum256(data)
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

func (s *sentinel) watch(t *testing.T) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	s.fd = fd
	const mask = unix.IN_OPEN | unix.IN_ACCESS | unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CREATE |
		unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_MOVE_SELF | unix.IN_CLOSE_WRITE
	filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			wd, err := unix.InotifyAddWatch(fd, p, mask)
			if err != nil {
				t.Fatal(err)
			}
			s.watches[wd] = p
		}
		return nil
	})
}

// events drains what inotify saw since the last call.
func (s *sentinel) events() []string {
	var out []string
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(s.fd, buf)
		if n <= 0 || err != nil {
			return out
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := ""
			if ev.Len > 0 {
				raw := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
				name = strings.TrimRight(string(raw), "\x00")
			}
			out = append(out, fmt.Sprintf("%s/%s mask=%#x", s.watches[int(ev.Wd)], name, ev.Mask))
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

func (s *sentinel) close() { unix.Close(s.fd) }

// hostileCache is a real cache (two models, three packages, a shared blob,
// an entry, an offline record, stamps, a lease, verified records) with
// links planted by plant.
func hostileCache(t *testing.T, s *sentinel, plant func(c *cliCache, s *sentinel)) *cliCache {
	t.Helper()
	c := newCLICache(t)
	if err := meta.TouchLastUsed(c.C.Home, "ws/det/3", "onnxa"); err != nil {
		t.Fatal(err)
	}
	if _, err := meta.CreateLease(c.C.Home, nil, []string{"ws/seg/1/segp"}, -time.Hour); err != nil {
		t.Fatal(err)
	}
	if out, code, err := runMaintCmd(t, newVerifyCmd, c.Config); code != 0 {
		t.Fatalf("clean verify: %v\n%s", err, out)
	}
	plant(c, s)
	return c
}

func replaceDir(t *testing.T, dir, target string) {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, dir); err != nil {
		t.Fatal(err)
	}
}

func plantLink(t *testing.T, p, target string) {
	t.Helper()
	os.Remove(p)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

// TestHostileCacheNeverEscapes runs every maintenance command through the
// real binary against caches with symlinks planted at each level (top-level
// store dirs, model dirs, package dirs, handles and their parent dirs, blobs,
// entries, records, lock files, .meta and its subdirs), all leading into a
// watched sentinel tree outside INFERENCE_HOME. Nothing there may be opened,
// read, written, created or deleted (inotify), or change (snapshot), and no
// command may block on the sentinel's FIFO.
func TestHostileCacheNeverEscapes(t *testing.T) {
	bin := e2eBinary(t)
	slug, _ := layout.Slug("ws/det/3")
	md5Out := maintaintest.MD5([]byte("outside blob"))
	type plantFunc func(c *cliCache, s *sentinel)
	cases := map[string]plantFunc{
		// The case: the real packages moved outside, models-cache a
		// link to them, one handle a regular file with the blob's bytes
		// (file-in-link-position) and one link pointing elsewhere outside.
		"top models-cache": func(c *cliCache, s *sentinel) {
			moved := s.path("models-real")
			if err := os.Rename(c.C.Home.ModelsCache(), moved); err != nil {
				t.Fatal(err)
			}
			pkg := filepath.Join(moved, slug, "onnxa")
			os.Remove(filepath.Join(pkg, "own.bin"))
			maintaintest.WriteFile(t, filepath.Join(pkg, "own.bin"), c.own)
			plantLink(t, filepath.Join(pkg, "weights.onnx"), s.path("secret"))
			if err := os.Symlink(moved, c.C.Home.ModelsCache()); err != nil {
				t.Fatal(err)
			}
		},
		"top shared-blobs": func(c *cliCache, s *sentinel) { replaceDir(t, c.C.Home.SharedBlobs(), s.path("blobs")) },
		"top auto-resolution-cache": func(c *cliCache, s *sentinel) {
			replaceDir(t, c.C.Home.AutoResolutionCache(), s.path("entries"))
		},
		"top offline-weights-registry": func(c *cliCache, s *sentinel) {
			replaceDir(t, c.C.Home.OfflineRegistry(), s.path("records"))
		},
		"top .meta": func(c *cliCache, s *sentinel) { replaceDir(t, c.C.Home.Meta(), s.path("meta")) },
		"model and package dirs": func(c *cliCache, s *sentinel) {
			plantLink(t, filepath.Join(c.C.Home.ModelsCache(), "v2-evil-00000000000000000000000000000000"), s.path("models/v2-evil-00000000000000000000000000000000"))
			plantLink(t, filepath.Join(c.C.Home.ModelsCache(), slug, "evilpkg"), s.path("models/"+slug+"/onnxa"))
			replaceDir(t, c.b.PackageDir, s.path("models/"+slug+"/onnxa"))
		},
		"handles, blobs, entries, records": func(c *cliCache, s *sentinel) {
			h := c.C.Home
			plantLink(t, filepath.Join(c.a.PackageDir, "weights.onnx"), s.path("secret"))
			plantLink(t, filepath.Join(c.a.PackageDir, "own.bin"), s.path("fifo"))
			plantLink(t, filepath.Join(c.a.PackageDir, "planted"), s.path("models"))
			plantLink(t, filepath.Join(c.s.PackageDir, "sub"), s.path("models/"+slug))
			plantLink(t, filepath.Join(h.SharedBlobs(), md5Out), s.path("blobs/"+md5Out))
			plantLink(t, filepath.Join(h.SharedBlobs(), maintaintest.MD5(c.own)), s.path("fifo"))
			plantLink(t, filepath.Join(h.AutoResolutionCache(), strings.Repeat("cd", 32)+".json"), s.path("fifo"))
			plantLink(t, filepath.Join(h.OfflineRegistry(), "v2-y-00000000000000000000000000000000.json"), s.path("secret"))
		},
		"locks": func(c *cliCache, s *sentinel) {
			h := c.C.Home
			plantLink(t, filepath.Join(h.SharedBlobs(), "."+maintaintest.MD5(c.weights)+".lock"), s.path("lock"))
			plantLink(t, filepath.Join(h.SharedBlobs(), "."+maintaintest.MD5(c.own)+".lock"), s.path("lock"))
			plantLink(t, filepath.Join(filepath.Dir(c.a.PackageDir), ".onnxa.materialization.lock"), s.path("lock"))
			plantLink(t, filepath.Join(c.a.PackageDir, ".weights.onnx.lock"), s.path("lock"))
			plantLink(t, filepath.Join(h.Meta(), "gc.lock"), s.path("lock"))
		},
		".meta subdirs and records": func(c *cliCache, s *sentinel) {
			h := c.C.Home
			replaceDir(t, filepath.Join(h.Meta(), meta.LastUsedDir, slug), s.path("meta/last-used/"+slug))
			replaceDir(t, filepath.Join(h.Meta(), meta.LeasesDir), s.path("meta/leases"))
			plantLink(t, filepath.Join(h.Meta(), meta.VerifiedLog), s.path("meta/verified.log"))
		},
	}
	commands := [][]string{
		{"ls"}, {"ls", "--json"}, {"show", "ws/det/3"}, {"show", "ws/seg/1", "--json"}, {"du"}, {"du", "--json"},
		{"path", "ws/det/3", "onnxb"}, {"verify"}, {"verify", "--full"}, {"verify", "--repair"}, {"verify", "ws/det/3", "--full", "--repair"},
		{"gc", "--dry-run"}, {"gc", "--grace", "0s", "--partial-grace", "0s"},
		{"purge", "ws/seg/1", "--dry-run"}, {"purge", "ws/seg/1"}, {"purge", "--all", "--grace", "0s"},
	}
	names := make([]string, 0, len(cases))
	for n := range cases {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s := newSentinel(t)
			c := hostileCache(t, s, cases[name])
			before := s.snapshot(t)
			s.watch(t)
			defer s.close()
			s.events() // the watch's own walk
			for _, args := range commands {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				cmd := exec.CommandContext(ctx, bin, args...)
				cmd.Env = append(os.Environ(), "INFERENCE_HOME="+c.Home(), "OFFLINE_MODE=false")
				out, err := cmd.CombinedOutput()
				timedOut := ctx.Err() != nil
				cancel()
				if timedOut {
					// Unblock a reader stuck on the FIFO before failing.
					if f, err := os.OpenFile(s.path("fifo"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
						f.Close()
					}
					t.Fatalf("%v blocked (opened the FIFO through a link?)\n%s", args, out)
				}
				code := cmd.ProcessState.ExitCode()
				// 2: the cache cannot be opened for writing (a symlinked
				// shared-blobs is refused up front).
				if code != 0 && code != 1 && !(code == 2 && strings.Contains(string(out), "symlink")) {
					t.Errorf("%v: exit %d (%v)\n%s", args, code, err, out)
				}
				if evs := s.events(); len(evs) > 0 {
					t.Errorf("%v touched the outside tree (%d events, first %s)\n%s", args, len(evs), evs[0], out)
				}
			}
			if after := s.snapshot(t); after != before {
				t.Fatalf("outside tree changed:\nbefore\n%s\nafter\n%s", before, after)
			}
		})
	}
}
