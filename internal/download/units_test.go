package download

import (
	"errors"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/journal"
)

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		v                  string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/100", 0, 99, 100, true},
		{"bytes 10-19/*", 10, 19, -1, true},
		{"bytes 10-9/100", 0, 0, 0, false},
		{"bytes 0-100/100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
	} {
		f, l, tot, ok := parseContentRange(tc.v)
		if ok != tc.ok || (ok && (f != tc.first || l != tc.last || tot != tc.total)) {
			t.Errorf("%q: %d %d %d %v", tc.v, f, l, tot, ok)
		}
	}
}

func TestSafeURLDropsSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@storage.example.com/b/w.onnx?X-Goog-Signature=abc&api_key=k#frag": "https://storage.example.com/b/w.onnx",
		"http://127.0.0.1:8080/files/a%20b?sig=1":                                          "http://127.0.0.1:8080/files/a%20b",
		"::not a url": "<unparseable URL>",
	} {
		if got := safeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPartSizing(t *testing.T) {
	tu := DefaultTuning(config.Default())
	for size, want := range map[int64]int64{
		100 << 20: 8 << 20, // 13 parts, the last 4 MiB (the spec would use 16 MiB)
		1 << 30:   8 << 20, // tuned cap (the spec would use 64 MiB)
		8 << 30:   8 << 20, // (the spec would use 512 MiB)
	} {
		if got := tu.partSize(size); got != want {
			t.Errorf("partSize(%d) = %d, want %d", size, got, want)
		}
	}
	// Defaults derived from the configuration.
	cfg := config.Default()
	cfg.ChunkReadTimeout, cfg.ChunkReadTimeoutSet = 7*time.Second, true
	if tu := DefaultTuning(cfg); tu.StallTimeout != 7*time.Second || tu.MaxAttempts != 60 || tu.MaxStatusTries != 3 || tu.LockTimeout != 20*time.Second {
		t.Errorf("tuning from config: %+v", tu)
	}
	if tu := DefaultTuning(config.Default()); tu.StallTimeout != 30*time.Second || !tu.DirectIO {
		t.Errorf("default stall timeout %v, direct I/O %v", tu.StallTimeout, tu.DirectIO)
	}
	cfg = config.Default()
	cfg.DirectIO = false // MODELCACHE_DIRECT_IO=false
	if tu := DefaultTuning(cfg); tu.DirectIO {
		t.Error("MODELCACHE_DIRECT_IO=false left direct I/O on")
	}
}

// TestPlanWatermarkAndStealing covers the part bookkeeping: done ranges
// become done parts, the watermark follows the contiguous prefix, and
// stealing splits the largest remainder above its reserved write.
func TestPlanWatermarkAndStealing(t *testing.T) {
	e := &Engine{tune: DefaultTuning(config.Default())}
	e.tune.MinSplit = 1 << 20
	e.tune.MinPart, e.tune.MaxPart = 16<<20, 16<<20
	j := &job{e: e, size: 100 << 20, ranges: true, jpath: "x", algo: journal.XXH64}
	j.plan([]journal.Range{{First: 0, Last: 10<<20 - 1, Hash: "h"}, {First: 20 << 20, Last: 30<<20 - 1, Hash: "h2"}})
	if w, done := j.watermark(); w != 10<<20 || done {
		t.Fatalf("watermark %d %v", w, done)
	}
	var got []*part
	for p := j.nextPart(); p != nil; p = j.nextPart() {
		got = append(got, p)
		if len(got) > 100 {
			t.Fatal("endless parts")
		}
		if len(got) == 7 {
			break
		}
	}
	// Gaps [10,20) and [30,100) MiB: 1 part + 5 parts of <= 16 MiB; then a
	// 7th part stolen from the first largest remainder, [30,46), at 38 MiB.
	if len(got) != 7 || got[0].start != 10<<20 || got[0].end != 20<<20 || got[1].start != 30<<20 {
		t.Fatalf("parts: %d, first [%d, %d)", len(got), got[0].start, got[0].end)
	}
	if stolen := got[6]; stolen.start != 38<<20 || stolen.end != 46<<20 || got[1].end != 38<<20 {
		t.Errorf("split wrong: [%d, %d) / [%d, %d)", got[1].start, got[1].end, stolen.start, stolen.end)
	}
	for i := 1; i < len(j.parts); i++ {
		if j.parts[i].start != j.parts[i-1].end {
			t.Fatalf("parts do not tile the file at %d", i)
		}
	}
	// Writing the first gap moves the watermark to the next done range's end.
	j.mu.Lock()
	got[0].cur = got[0].end
	j.mu.Unlock()
	if w, _ := j.watermark(); w != 30<<20 {
		t.Errorf("watermark %d, want %d", w, 30<<20)
	}
}

func TestTypedErrorsMatchBothWays(t *testing.T) {
	var err error = &RetryError{Name: "n", URL: "u", Attempts: 3, Err: errors.New("boom")}
	wrapped := errors.Join(errors.New("ctx"), err)
	var byPtr *RetryError
	var byVal RetryError
	if !errors.As(wrapped, &byPtr) || !errors.As(wrapped, &byVal) || byVal.Attempts != 3 {
		t.Fatal("RetryError not matched")
	}
	if errors.As(wrapped, &HTTPError{}) {
		t.Fatal("matched the wrong type")
	}
}
