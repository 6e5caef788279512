package download

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
)

func TestReserveIsProportional(t *testing.T) {
	tu := DefaultTuning(config.Default())
	for missing, want := range map[int64]int64{
		0:        1 << 20,
		1 << 20:  1<<20 + 10485, // 1 MB pull: 1 % of it plus 1 MiB, not 64 MiB
		10 << 30: 1<<20 + 107374182,
	} {
		if got := tu.reserve(missing); got != want {
			t.Errorf("reserve(%d) = %d, want %d", missing, got, want)
		}
	}
	tu.DiskReservePercent = 10
	if got := tu.reserve(100 << 20); got != 1<<20+10<<20 {
		t.Errorf("10 %% of 100 MiB: %d", got)
	}
}

// TestFreeSpaceSmallFilesystem (issue 11 item 7): on a filesystem with
// 50 MiB free a 1 MB pull succeeds, and a package whose files each fit but
// whose total does not fails before any GET, naming the package's total.
func TestFreeSpaceSmallFilesystem(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	const free = 50 << 20
	e := env.engine(t, nil)
	e.hooks.freeBytes = func(string) (int64, bool, error) { return free, false, nil }
	small := randomBytes(41, 1_000_000)
	if _, err := e.Batch(context.Background(), []Item{{Name: "small.onnx", URL: srv.add("/small", small), MD5: md5hex(small)}}); err != nil {
		t.Fatalf("1 MB pull with 50 MiB free: %v", err)
	}
	var items []Item
	for i := range 5 {
		d := randomBytes(uint64(50+i), 12<<20) // 12 MiB each, 60 MiB in all; sizes only from HEAD
		items = append(items, Item{Name: "part" + string(rune('a'+i)), URL: srv.add("/p"+string(rune('a'+i)), d), MD5: md5hex(d)})
	}
	gets := srv.GETs()
	_, err := e.Batch(context.Background(), items)
	var de *DiskError
	if !errors.As(err, &de) || de.Need < 60<<20 || de.Need > 62<<20 || de.Free != free {
		t.Fatalf("want a DiskError for the package's 60 MiB, got %v", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "5 file(s)") || !strings.Contains(msg, "60.0 MiB to download") || !strings.Contains(msg, config.EnvDiskReservePercent) {
		t.Errorf("message does not name the package's need: %s", msg)
	}
	if srv.GETs() != gets {
		t.Errorf("%d GETs sent before the space check failed", srv.GETs()-gets)
	}
}

// TestUnknownSizeIsBounded (issue 11 item 3): a body with no announced size
// stops at the cap, or when the free space reaches the reserve; nothing is
// kept either way.
func TestUnknownSizeIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name   string
		capB   int64
		free   int64 // free space before the download (0: plenty)
		expect func(t *testing.T, err error)
	}{
		{"cap", 3 << 20, 0, func(t *testing.T, err error) {
			var sl *SizeLimitError
			if !errors.As(err, &sl) || sl.Limit != 3<<20 || !strings.Contains(err.Error(), config.EnvDownloadMaxUnknownSize) {
				t.Fatalf("want SizeLimitError at 3 MiB, got %v", err)
			}
		}},
		{"reserve", 1 << 40, 70 << 20, func(t *testing.T, err error) {
			var de *DiskError
			if !errors.As(err, &de) || de.Reserve == 0 || !strings.Contains(err.Error(), "below the reserve") {
				t.Fatalf("want a DiskError at the reserve, got %v", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newEnv(t, "")
			e := env.engine(t, func(tu *Tuning) { tu.MaxUnknownSize = tc.capB })
			var written atomic.Int64 // as sent by the server
			if tc.free > 0 {
				e.hooks.freeBytes = func(string) (int64, bool, error) {
					return tc.free - written.Load(), false, nil
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			u := endlessServer(t, &written)
			_, err := e.EnsureBlob(ctx, Item{Name: "endless.bin", URL: u, MD5: "0123456789abcdef0123456789abcdef"})
			tc.expect(t, err)
			// Bounded by the cap or the free space, plus what sat in socket
			// buffers when the engine stopped reading.
			bound := tc.capB
			if tc.free > 0 {
				bound = tc.free
			}
			if bound += 16 << 20; written.Load() > bound {
				t.Errorf("the server sent %d bytes; at most %d expected", written.Load(), bound)
			}
			assertNoTemps(t, env)
		})
	}
}

// endlessServer refuses HEAD and answers GET with an endless body of
// unknown length (chunked), counting what it sends.
func endlessServer(t *testing.T, sent *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		buf := randomBytes(3, 64<<10)
		for {
			n, err := w.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/endless?sig=SECRET"
}

// assertNoTemps fails on any partial, journal or temp left in shared-blobs.
func assertNoTemps(t *testing.T, env *testEnv) {
	t.Helper()
	ents, _ := os.ReadDir(env.blobs.Dir())
	for _, en := range ents {
		if k, _ := blobfs.Classify(en.Name()); k != blobfs.KindBlob && k != blobfs.KindLock {
			t.Errorf("leftover %s (%s)", en.Name(), k)
		}
	}
}
