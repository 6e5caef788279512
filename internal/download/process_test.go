//go:build linux

package download

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/journal"
)

// journaledBytes is what a new run may adopt: the most advanced journal of
// md5 whose data file exists (0 once the blob is published).
func journaledBytes(t *testing.T, dir, md5 string) int64 {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, md5)); err == nil {
		return -1
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "."+md5+".partial-*.json"))
	var best int64
	for _, p := range paths {
		if _, err := os.Stat(strings.TrimSuffix(p, ".json")); err != nil {
			continue
		}
		j, err := journal.Read(p)
		if err != nil {
			t.Fatalf("unreadable journal after SIGKILL: %v", err)
		}
		best = max(best, j.DoneBytes())
	}
	return best
}

// TestSIGKILLResume kills a pulling child with SIGKILL 32 times and
// restarts it; the last run ends with a verified blob. Kill points come from
// the bytes the child reports written (on a pipe), never from the clock: the
// first runs die right after their first write, later ones after a random
// amount. After every kill:
//   - resume granularity (issue 11 item 9): the journal vouches for all the
//     bytes the child had reported, less at most twice the checkpoint step
//     (JournalEvery per stream): what a kill may lose, whatever the timing;
//   - from the server's byte counter, a run fetched at most the bytes it
//     added to the journal plus one part.
//
// At the end no partial, journal or temp of any kind is left (item 8).
func TestSIGKILLResume(t *testing.T) {
	const (
		size     = 24 << 20
		partSize = 1 << 20
		streams  = 4
		every    = 128 << 10 // JournalEvery: a checkpoint every 4 × 128 KiB
		kills    = 32
		early    = 3 // runs killed after their first write
	)
	srv := newFaultServer(t)
	data := randomBytes(42, size)
	sum := md5hex(data)
	u := srv.add("/big/model.onnx", data)
	// ~9 MB/s in 4 streams: socket buffers stay far below one part.
	srv.throttle(16<<10, 7*time.Millisecond)
	home := t.TempDir()
	dir := filepath.Join(home, blobfs.DirName)
	// No periodic checkpoints: only the byte trigger keeps the journal
	// current, so the bound below tests exactly that.
	spec := childSpec{Home: home, Fast: true, PartSize: partSize, Streams: streams, JournalMS: 3_600_000, NoSplit: true,
		Exact: true, JournalEvery: every, Report: true, Items: []Item{{Name: "model.onnx", URL: u, MD5: sum}}}
	// Two steps, plus one buffer per stream written past the check.
	const maxLoss = 2*streams*every + streams*(32<<10)
	rng := rand.New(rand.NewPCG(7, 11))
	journaled := int64(0) // what the journal vouches for
	totalKills := 0
	for run := 0; ; run++ {
		final := run >= kills
		before := srv.Served()
		cmd := childCmd(t, spec)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		pp, w := reportProgress(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		// A generous deadline instead of a hang: a child that neither
		// reports nor exits gets SIGQUIT (its goroutines go to stderr) and
		// the run fails below.
		stuck := time.AfterFunc(2*time.Minute, func() { _ = cmd.Process.Signal(syscall.SIGQUIT) })
		var reported int64
		if final {
			err := cmd.Wait()
			stuck.Stop()
			if err != nil {
				t.Fatalf("final run: %v\n%s", err, stderr.String())
			}
		} else {
			target := int64(1)
			if run >= early {
				target = 64<<10 + rng.Int64N(1400<<10)
			}
			got, reached := pp.waitFor(target)
			reported = got
			_ = cmd.Process.Signal(syscall.SIGKILL)
			werr := cmd.Wait()
			stuck.Stop()
			switch {
			case werr == nil:
				final = true // finished before the kill point: a complete run
			case !reached:
				t.Fatalf("run %d died before reporting %d bytes (reported %d): %v\n%s", run, target, got, werr, stderr.String())
			default:
				totalKills++
			}
		}
		srv.quiesce(t)
		fetched := srv.Served() - before
		left := journaledBytes(t, dir, sum)
		if left < 0 { // published
			if missing := int64(size) - journaled; fetched > missing+partSize {
				t.Errorf("run %d fetched %d bytes while %d were missing", run, fetched, missing)
			}
			if final {
				break
			}
			t.Fatalf("run %d was killed after publishing", run)
		}
		if lost := journaled + reported - left; lost > maxLoss {
			t.Errorf("run %d: reported %d bytes written, the journal grew by %d: %d lost (at most %d allowed)",
				run, reported, left-journaled, lost, maxLoss)
		}
		// Waste: the unjournaled bytes, the part in flight, and what sat in
		// the socket buffers of streams paused for a lagging checkpoint
		// (up to ~1 MiB each on loopback).
		if added := left - journaled; fetched > added+maxLoss+partSize+streams<<20 {
			t.Errorf("run %d (killed) fetched %d bytes but kept only %d", run, fetched, added)
		}
		t.Logf("run %d: reported %d written, journal %d -> %d, fetched %d", run, reported, journaled, left, fetched)
		journaled = left
		if final {
			t.Fatalf("run %d exited cleanly but the blob is not published\n%s", run, stderr.String())
		}
	}
	if totalKills < kills-2 {
		t.Errorf("only %d of the runs were killed mid-pull", totalKills)
	}
	got, err := os.ReadFile(filepath.Join(dir, sum))
	if err != nil || md5hex(got) != sum {
		t.Fatalf("published blob is wrong: %v", err)
	}
	if served := srv.Served(); served > size+int64(totalKills)*partSize {
		t.Errorf("served %d bytes in total for a %d-byte blob and %d kills", served, size, totalKills)
	}
	ents, _ := os.ReadDir(dir)
	for _, en := range ents {
		if k, _ := blobfs.Classify(en.Name()); k != blobfs.KindBlob && k != blobfs.KindLock {
			t.Errorf("leftover %s (%s)", en.Name(), k)
		}
	}
	t.Logf("%d kills, %d bytes served for %d", totalKills, srv.Served(), size)
}

// TestSixteenProcessesOneDownload: 16 processes pull the same package into
// an empty cache at once; all succeed and the server sends every unique
// byte exactly once.
func TestSixteenProcessesOneDownload(t *testing.T) {
	srv := newFaultServer(t)
	srv.throttle(64<<10, 2*time.Millisecond)
	sizes := []int{40 << 20, 2 << 20, 300 << 10, 64 << 10, 1234, 0}
	var items []Item
	var unique int64
	for i, n := range sizes {
		d := randomBytes(uint64(1000+i), n)
		name := []string{"weights.onnx", "tokenizer.json", "config.json", "class_names.txt", "meta.json", "empty.txt"}[i]
		items = append(items, Item{Name: name, URL: srv.add("/pkg/"+name, d), MD5: md5hex(d)})
		unique += int64(n)
	}
	home := t.TempDir()
	barrier := filepath.Join(t.TempDir(), "go")
	spec := childSpec{Home: home, Items: items, Barrier: barrier, Exact: true}
	const procs = 16
	type child struct {
		out, errb bytes.Buffer
		done      chan error
	}
	children := make([]*child, procs)
	for i := range children {
		c := &child{done: make(chan error, 1)}
		cmd := childCmd(t, spec)
		cmd.Stdout, cmd.Stderr = &c.out, &c.errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { c.done <- cmd.Wait() }()
		children[i] = c
	}
	if err := os.WriteFile(barrier, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	downloaded := 0
	for i, c := range children {
		if err := <-c.done; err != nil {
			t.Errorf("child %d: %v\n%s", i, err, c.errb.String())
			continue
		}
		var res []Result
		if err := json.Unmarshal(c.out.Bytes(), &res); err != nil {
			t.Fatalf("child %d output: %v", i, err)
		}
		for _, r := range res {
			if r.NetworkBytes > 0 {
				downloaded++
			}
		}
	}
	if served := srv.Served(); served != unique {
		t.Errorf("server sent %d bytes for %d unique bytes (%.2fx)", served, unique, float64(served)/float64(unique))
	}
	for _, it := range items {
		got, err := os.ReadFile(filepath.Join(home, blobfs.DirName, it.MD5))
		if err != nil || md5hex(got) != it.MD5 {
			t.Errorf("%s: %v", it.Name, err)
		}
	}
	t.Logf("served %d bytes for %d unique; %d file downloads across %d processes", srv.Served(), unique, downloaded, procs)
}
