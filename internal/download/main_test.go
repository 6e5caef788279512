package download

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
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
	Fast          bool   `json:"fast"`
	PartSize      int64  `json:"part_size"`
	Streams       int    `json:"streams"`
	JournalMS     int    `json:"journal_ms"`
	LockTimeoutMS int    `json:"lock_timeout_ms"`
	NoSplit       bool   `json:"no_split"`
	Barrier       string `json:"barrier"` // wait until this file exists
	Verbose       bool   `json:"verbose"`
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
	}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
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
