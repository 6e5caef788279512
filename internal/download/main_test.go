package download

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/lock"
)

// The test binary doubles as the child process of the cross-process tests:
// with DLTEST_SPEC set, TestMain runs a pull instead of the tests.
const childEnv = "DLTEST_SPEC"

// childSpec tells a child what to pull and how.
type childSpec struct {
	Home  string `json:"home"`
	Items []Item `json:"items"`
	// Fast uses the test tuning (small parts); otherwise the defaults.
	Fast          bool  `json:"fast"`
	PartSize      int64 `json:"part_size"`
	Streams       int   `json:"streams"`
	JournalMS     int   `json:"journal_ms"`
	LockTimeoutMS int   `json:"lock_timeout_ms"`
	NoSplit       bool  `json:"no_split"`
	// Exact: no hedges and no slow-stream restarts, which re-fetch bytes on
	// purpose (a loaded machine triggers them), for exact byte counts.
	Exact bool `json:"exact"`
	// JournalEvery sets Tuning.JournalEvery.
	JournalEvery int64 `json:"journal_every"`
	// Report: the child writes the total bytes it has written, one decimal
	// line per report, to file descriptor 3 (see progressPipe).
	Report  bool   `json:"report"`
	Barrier string `json:"barrier"` // wait until this file exists
	Verbose bool   `json:"verbose"`
}

func TestMain(m *testing.M) {
	spec := os.Getenv(childEnv)
	if spec == "" {
		os.Exit(m.Run())
	}
	var s childSpec
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintln(os.Stderr, "bad child spec:", err)
		os.Exit(2)
	}
	os.Exit(runChild(s))
}

func runChild(s childSpec) int {
	level := slog.LevelWarn
	if s.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	cfg := config.Default()
	cfg.Home = s.Home
	locks := lock.NewLocker(lock.Options{WaitLogInterval: -1})
	bs, err := blobfs.Open(s.Home, locks)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	e, err := New(cfg, bs, locks, WithLogger(log), WithTuning(func(t *Tuning) {
		if s.Fast {
			fastTuning(t)
		}
		if s.PartSize > 0 {
			t.MinPart, t.MaxPart = s.PartSize, s.PartSize
		}
		if s.Streams > 0 {
			t.StreamsPerFile = s.Streams
		}
		if s.JournalMS > 0 {
			t.JournalInterval = time.Duration(s.JournalMS) * time.Millisecond
		}
		if s.LockTimeoutMS > 0 {
			t.LockTimeout = time.Duration(s.LockTimeoutMS) * time.Millisecond
		}
		if s.NoSplit {
			t.MinSplit = 1 << 62
		}
		if s.Exact {
			t.HedgeAfter, t.SlowAfter = 0, time.Hour
		}
		if s.JournalEvery > 0 {
			t.JournalEvery = s.JournalEvery
		}
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if s.Report {
		e.hooks.afterWrite = reporter(os.NewFile(3, "progress"))
	}
	for s.Barrier != "" {
		if _, err := os.Stat(s.Barrier); err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	res, err := e.Batch(context.Background(), s.Items)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pull failed:", err)
		return 1
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// childCmd prepares a child pulling per spec.
func childCmd(t testing.TB, spec childSpec) *exec.Cmd {
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(b))
	return cmd
}

// reporter returns an afterWrite hook that writes the running total of
// bytes written to w after every write (the parent chooses kill points
// from it, never from the clock).
func reporter(w io.Writer) func(int64) {
	var mu sync.Mutex
	var total int64
	return func(n int64) {
		mu.Lock()
		defer mu.Unlock()
		total += n
		fmt.Fprintf(w, "%d\n", total)
	}
}

// progressPipe reads a reporting child's totals.
type progressPipe struct {
	mu     sync.Mutex
	cond   *sync.Cond
	total  int64
	closed bool
}

// reportProgress makes cmd report on a pipe; call before Start, and
// close the returned write end after Start.
func reportProgress(t testing.TB, cmd *exec.Cmd) (*progressPipe, *os.File) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{w}
	pp := &progressPipe{}
	pp.cond = sync.NewCond(&pp.mu)
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			n, err := strconv.ParseInt(sc.Text(), 10, 64)
			if err != nil {
				continue
			}
			pp.mu.Lock()
			pp.total = max(pp.total, n)
			pp.cond.Broadcast()
			pp.mu.Unlock()
		}
		pp.mu.Lock()
		pp.closed = true
		pp.cond.Broadcast()
		pp.mu.Unlock()
	}()
	return pp, w
}

// waitFor blocks until the child reported at least n bytes written (true)
// or closed the pipe by exiting (false), and returns the last total.
func (pp *progressPipe) waitFor(n int64) (int64, bool) {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	for pp.total < n && !pp.closed {
		pp.cond.Wait()
	}
	return pp.total, pp.total >= n
}
