package download

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blobfs"
)

// assertStore checks the invariants every scenario must keep: the blob is
// either absent or has exactly the right bytes; no partial or journal is
// left unless keep is set; nothing in the logs carries the URL's query.
func assertStore(t *testing.T, env *testEnv, data []byte, wantBlob, keepPartials bool) {
	t.Helper()
	sum := md5hex(data)
	p, _ := env.blobs.Path(sum)
	got, err := os.ReadFile(p)
	switch {
	case wantBlob && err != nil:
		t.Fatalf("blob missing: %v", err)
	case !wantBlob && !errors.Is(err, fs.ErrNotExist):
		t.Fatalf("blob published although the download failed (err %v)", err)
	case err == nil && md5hex(got) != sum:
		t.Fatalf("corrupt blob published")
	}
	ents, _ := os.ReadDir(env.blobs.Dir())
	for _, en := range ents {
		k, _ := blobfs.Classify(en.Name())
		switch k {
		case blobfs.KindBlob, blobfs.KindLock:
		case blobfs.KindPartial, blobfs.KindJournal:
			if !keepPartials {
				t.Errorf("leftover %s (%s)", en.Name(), k)
			}
		default:
			t.Errorf("unexpected entry %s (%s)", en.Name(), k)
		}
	}
	if l := env.logs.String(); strings.Contains(l, "SECRET") {
		t.Errorf("a log line contains the URL's query string:\n%s", l)
	}
}

func ensure(t *testing.T, e *Engine, u string, data []byte) (Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	r, err := e.EnsureBlob(ctx, Item{Name: "weights.onnx", URL: u, MD5: md5hex(data)})
	if err != nil && strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error carries the URL's query string: %v", err)
	}
	return r, err
}

// TestTransientFaultsEndInVerifiedBlob: every transient fault the server
// injects ends in a verified blob, with no leftovers.
func TestTransientFaultsEndInVerifiedBlob(t *testing.T) {
	const size = 2<<20 + 4321 // ranged: 9 parts of 256 KiB
	cases := []struct {
		name   string
		rule   func(r faultReq) fault
		tune   func(*Tuning)
		check  func(t *testing.T, srv *faultServer, r Result, logs string)
		single bool
	}{
		{name: "clean"},
		{name: "connection reset mid-body", rule: func(r faultReq) fault {
			if r.N <= 6 {
				return fault{Mode: faultReset, At: (r.Last - r.First + 1) / 2}
			}
			return fault{}
		}, check: func(t *testing.T, srv *faultServer, r Result, _ string) {
			// Resumed from the last byte: nothing fetched twice beyond what
			// sat in socket buffers when the connection died.
			if srv.Served() > int64(size)+6*(256<<10) {
				t.Errorf("served %d bytes for %d", srv.Served(), size)
			}
		}},
		{name: "truncated body", rule: func(r faultReq) fault {
			if r.N%3 == 1 && r.N < 12 {
				return fault{Mode: faultTruncate, At: (r.Last - r.First + 1) / 3}
			}
			return fault{}
		}},
		{name: "reset before any byte", rule: func(r faultReq) fault {
			if r.N <= 4 {
				return fault{Mode: faultReset, At: 0}
			}
			return fault{}
		}},
		// Counted per part, not per file: which part a file's Nth GET
		// belongs to depends on scheduling, and three consecutive statuses
		// on one part would (rightly) exhaust API_CALLS_MAX_TRIES.
		{name: "503 and 429 with Retry-After", rule: perPart(func(r faultReq, n int) fault {
			switch {
			case r.First == 0 && n == 1, r.First > 0 && n == 1 && r.First < 300<<10:
				return fault{Mode: faultStatus, Status: http.StatusServiceUnavailable, RetryAfter: "0"}
			case r.First == 0 && n == 2:
				return fault{Mode: faultStatus, Status: http.StatusTooManyRequests, RetryAfter: "0"}
			}
			return fault{}
		})},
		{name: "200 instead of 206", single: true, rule: func(r faultReq) fault {
			return fault{IgnoreRange: true}
		}, check: func(t *testing.T, srv *faultServer, r Result, logs string) {
			if !strings.Contains(logs, "server ignores byte ranges") {
				t.Errorf("fallback not logged")
			}
		}},
		{name: "stalled range", rule: func(r faultReq) fault {
			if r.N == 2 {
				return fault{Mode: faultStall, At: 40 << 10}
			}
			return fault{}
		}, tune: func(t *Tuning) { t.StallTimeout = 150 * time.Millisecond },
			check: func(t *testing.T, srv *faultServer, r Result, logs string) {
				if !strings.Contains(logs, "stream stalled") {
					t.Errorf("stall not detected")
				}
			}},
		{name: "408 then 502 then 504", rule: perPart(func(r faultReq, n int) fault {
			switch {
			case r.First == 0 && n <= 2:
				return fault{Mode: faultStatus, Status: []int{408, 502}[n-1]}
			case r.First > 0 && r.First < 300<<10 && n == 1:
				return fault{Mode: faultStatus, Status: 504}
			}
			return fault{}
		})},
		{name: "416 restarts once", rule: func(r faultReq) fault {
			if r.N == 1 {
				return fault{Mode: faultStatus, Status: http.StatusRequestedRangeNotSatisfiable}
			}
			return fault{}
		}},
		{name: "no ranges and a reset restarts from zero", single: true, rule: func(r faultReq) fault {
			f := fault{NoRanges: true, IgnoreRange: true}
			if r.N == 1 {
				f.Mode, f.At = faultReset, 500<<10
			}
			return f
		}},
		{name: "HEAD refused: single stream of unknown size", single: true, rule: func(r faultReq) fault {
			if r.N == 0 { // HEAD
				return fault{Mode: faultStatus, Status: http.StatusMethodNotAllowed}
			}
			return fault{}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t)
			env := newEnv(t, "")
			e := env.engine(t, tc.tune)
			data := randomBytes(uint64(100+i), size)
			u := srv.add("/m/weights.onnx", data)
			srv.setRule(tc.rule)
			r, err := ensure(t, e, u, data)
			if err != nil {
				t.Fatalf("%v\nlogs:\n%s", err, env.logs.String())
			}
			if r.Size != size || r.MD5 != md5hex(data) || r.NetworkBytes < size {
				t.Errorf("result %+v", r)
			}
			if !tc.single && srv.GETs() < 2 {
				t.Errorf("expected ranged requests, got %d GETs", srv.GETs())
			}
			assertStore(t, env, data, true, false)
			if tc.check != nil {
				tc.check(t, srv, r, env.logs.String())
			}
		})
	}
}

// TestPermanentFaultsEndInTypedError: permanent faults end in a typed error,
// never in a published blob.
func TestPermanentFaultsEndInTypedError(t *testing.T) {
	const size = 1<<20 + 77
	cases := []struct {
		name  string
		rule  func(r faultReq) fault
		tune  func(*Tuning)
		keep  bool // a resumable partial is kept
		check func(t *testing.T, err error, srv *faultServer)
	}{
		{name: "wrong MD5 (same size)", rule: func(r faultReq) fault {
			if r.First == 0 {
				return fault{Mode: faultCorrupt}
			}
			return fault{}
		}, check: func(t *testing.T, err error, _ *faultServer) {
			var dm *DigestMismatchError
			if !errors.As(err, &dm) || !errors.As(err, &DigestMismatchError{}) || !errors.Is(err, errdefs.ErrDigestMismatch) {
				t.Fatalf("want DigestMismatchError, got %T %v", err, err)
			}
			if dm.Expected == dm.Actual || dm.Size != size || !strings.Contains(err.Error(), "/m/weights.onnx") {
				t.Errorf("error lacks details: %v", err)
			}
		}},
		{name: "404", rule: func(r faultReq) fault {
			if r.N > 0 {
				return fault{Mode: faultStatus, Status: 404}
			}
			return fault{}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var he HTTPError
			if !errors.As(err, &he) || he.Status != 404 {
				t.Fatalf("want HTTPError 404, got %v", err)
			}
		}},
		{name: "500 is not retried", rule: func(r faultReq) fault {
			if r.N > 0 {
				return fault{Mode: faultStatus, Status: 500}
			}
			return fault{}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != 500 {
				t.Fatalf("want HTTPError 500, got %v", err)
			}
		}},
		{name: "503 forever", keep: true, rule: func(r faultReq) fault {
			if r.N > 0 {
				return fault{Mode: faultStatus, Status: 503, RetryAfter: "0"}
			}
			return fault{}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var re *RetryError
			if !errors.As(err, &re) || re.Status != 503 || re.Attempts != 3 {
				t.Fatalf("want RetryError(503, 3 tries), got %v", err)
			}
		}},
		{name: "200 instead of 206, fallback fails too", rule: func(r faultReq) fault {
			if r.N > 0 && !r.Ranged {
				return fault{Mode: faultStatus, Status: 404}
			}
			return fault{IgnoreRange: true}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var rn *RangeNotSupportedError
			if !errors.As(err, &rn) || rn.Status != 200 {
				t.Fatalf("want RangeNotSupportedError, got %v", err)
			}
			var he *HTTPError
			if !errors.As(err, &he) || he.Status != 404 {
				t.Errorf("fallback cause lost: %v", err)
			}
		}},
		{name: "stalls forever", keep: true, tune: func(t *Tuning) {
			t.StallTimeout, t.MaxStalls = 60*time.Millisecond, 3
		}, rule: func(r faultReq) fault {
			if r.N > 0 {
				return fault{Mode: faultStall, At: 1 << 10}
			}
			return fault{}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var se *StallError
			if !errors.As(err, &se) || se.Stalls != 4 {
				t.Fatalf("want StallError after 4 stalls, got %v", err)
			}
		}},
		{name: "connection errors exhaust the budget", keep: true, tune: func(t *Tuning) { t.MaxAttempts = 3 }, rule: func(r faultReq) fault {
			if r.N > 0 {
				return fault{Mode: faultReset, At: 0}
			}
			return fault{}
		}, check: func(t *testing.T, err error, srv *faultServer) {
			var re *RetryError
			if !errors.As(err, &re) || re.Attempts != 3 || re.Status != 0 {
				t.Fatalf("want RetryError after 3 attempts, got %v", err)
			}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t)
			env := newEnv(t, "")
			e := env.engine(t, tc.tune)
			data := randomBytes(uint64(200+i), size)
			u := srv.add("/m/weights.onnx", data)
			srv.setRule(tc.rule)
			_, err := ensure(t, e, u, data)
			if err == nil {
				t.Fatal("expected an error")
			}
			tc.check(t, err, srv)
			assertStore(t, env, data, false, tc.keep)
		})
	}
}

// TestRetryAfterIsHonoured: a 503 with Retry-After: 1 delays the retry by
// about a second, not by the millisecond backoff.
func TestRetryAfterIsHonoured(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	data := randomBytes(7, 100<<10)
	u := srv.add("/x", data)
	var first, second atomic.Int64
	srv.setRule(func(r faultReq) fault {
		switch r.N {
		case 1:
			first.Store(time.Now().UnixNano())
			return fault{Mode: faultStatus, Status: 503, RetryAfter: "1"}
		case 2:
			second.Store(time.Now().UnixNano())
		}
		return fault{}
	})
	if _, err := ensure(t, e, u, data); err != nil {
		t.Fatal(err)
	}
	if d := time.Duration(second.Load() - first.Load()); d < 900*time.Millisecond {
		t.Fatalf("retried after %v despite Retry-After: 1", d)
	}
	assertStore(t, env, data, true, false)
}

// TestSlowServer: a throttled server still ends in a verified blob, and a
// stream far slower than its siblings is restarted on a new connection.
func TestSlowServer(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.SlowAfter = 150 * time.Millisecond })
	data := randomBytes(8, 2<<20)
	u := srv.add("/slow", data)
	srv.throttle(16<<10, 2*time.Millisecond)
	var slowOnce atomic.Bool
	srv.setRule(func(r faultReq) fault {
		if r.N == 2 && slowOnce.CompareAndSwap(false, true) {
			return fault{Mode: faultStall, At: 4 << 10} // trickles 4 KiB, then nothing
		}
		return fault{}
	})
	if _, err := ensure(t, e, u, data); err != nil {
		t.Fatal(err, env.logs.String())
	}
	assertStore(t, env, data, true, false)
	if l := env.logs.String(); !strings.Contains(l, "stream slow") && !strings.Contains(l, "stream stalled") {
		t.Errorf("the slow stream was not restarted:\n%s", l)
	}
}

// TestAuthRefresh: a 403 from storage (expired signed URL) refreshes the
// URL once; without a refresher it is an HTTPError.
func TestAuthRefresh(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	data := randomBytes(9, 600<<10)
	old := srv.add("/expired", data)
	fresh := srv.add("/fresh", data)
	srv.setRule(func(r faultReq) fault {
		if r.Path == "/expired" && r.N > 0 {
			return fault{Mode: faultStatus, Status: 403}
		}
		return fault{}
	})
	_, err := e.EnsureBlob(context.Background(), Item{URL: old, MD5: md5hex(data)})
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 403 {
		t.Fatalf("want HTTPError 403, got %v", err)
	}
	calls := 0
	r, err := e.EnsureBlob(context.Background(), Item{URL: old, MD5: md5hex(data), Refresh: func(context.Context) (string, error) {
		calls++
		return fresh, nil
	}})
	if err != nil || calls != 1 {
		t.Fatalf("refresh: %v, %d calls", err, calls)
	}
	if r.Path != filepath.Join(env.blobs.Dir(), md5hex(data)) {
		t.Errorf("path %s", r.Path)
	}
	assertStore(t, env, data, true, true)
}

// perPart adapts a rule that counts GETs per first byte (per part) instead
// of per file; HEADs get no fault.
func perPart(rule func(r faultReq, n int) fault) func(faultReq) fault {
	var mu sync.Mutex
	seen := map[int64]int{}
	return func(r faultReq) fault {
		if r.Method == http.MethodHead {
			return fault{}
		}
		mu.Lock()
		seen[r.First]++
		n := seen[r.First]
		mu.Unlock()
		return rule(r, n)
	}
}
