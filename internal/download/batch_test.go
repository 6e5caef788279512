package download

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
)

// TestBatchMixedPackage: blobs and plain files of one package in one call,
// results in item order, plain files published atomically with their
// SHA-256, a second call served from disk without requests.
func TestBatchMixedPackage(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	pkg := filepath.Join(env.home, "pkg")
	if err := os.MkdirAll(pkg, 0o777); err != nil {
		t.Fatal(err)
	}
	big, small, cfgData := randomBytes(50, 3<<20), randomBytes(51, 4000), []byte(`{"a": 1}`)
	items := []Item{
		{Name: "weights.onnx", URL: srv.add("/w", big), MD5: md5hex(big)},
		{Name: "config.json", URL: srv.add("/c", cfgData), Dest: filepath.Join(pkg, "config.json")},
		{Name: "labels.txt", URL: srv.add("/l", small), MD5: md5hex(small)},
	}
	res, err := e.Batch(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Name != items[i].Name || r.Cached {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	got, err := os.ReadFile(filepath.Join(pkg, "config.json"))
	if err != nil || !bytes.Equal(got, cfgData) {
		t.Fatalf("plain file: %q %v", got, err)
	}
	want := sha256.Sum256(cfgData)
	if res[1].SHA256 != hex.EncodeToString(want[:]) {
		t.Errorf("plain file SHA-256 %s", res[1].SHA256)
	}
	if ents, _ := os.ReadDir(pkg); len(ents) != 1 {
		t.Errorf("temp files left in the package dir: %v", ents)
	}
	// Verified record for the published blob.
	rec, ok, err := meta.LookupVerified(layout.Home{Root: env.home}, md5hex(big))
	if err != nil || !ok || rec.MD5 != md5hex(big) || rec.Size != int64(len(big)) || len(rec.SHA256) != 64 {
		t.Errorf("verified record: %+v %v %v", rec, ok, err)
	}
	n := srv.GETs() + srv.HEADs()
	res, err = e.Batch(context.Background(), items)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !r.Cached {
			t.Errorf("second batch fetched %s", r.Name)
		}
	}
	if srv.GETs()+srv.HEADs() != n {
		t.Error("second batch sent requests")
	}
	assertStore(t, env, big, true, false)
}

// TestBatchStopsAfterFirstError: a failing file stops files not yet
// started; the error is returned.
func TestBatchStopsAfterFirstError(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.FilesInParallel = 1 })
	var items []Item
	for i := range 5 {
		d := randomBytes(uint64(60+i), 1000)
		items = append(items, Item{Name: string(rune('a' + i)), URL: srv.add("/"+string(rune('a'+i)), d), MD5: md5hex(d)})
	}
	srv.setRule(func(r faultReq) fault {
		if r.Path == "/b" && r.N > 0 {
			return fault{Mode: faultStatus, Status: 404}
		}
		return fault{}
	})
	res, err := e.Batch(context.Background(), items)
	var he *HTTPError
	if !errors.As(err, &he) || he.Name != "b" {
		t.Fatalf("want HTTPError for b, got %v", err)
	}
	if res[0].Path == "" || res[3].Path != "" || res[4].Path != "" {
		t.Errorf("files after the failure were started: %+v", res)
	}
}

// TestDownloadFileNeverWritesThroughSymlink: a dangling symlink at a plain
// file's destination is refused, nothing is written through it.
func TestDownloadFileNeverWritesThroughSymlink(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	dir := t.TempDir()
	outside := filepath.Join(t.TempDir(), "victim")
	dest := filepath.Join(dir, "f.txt")
	if err := os.Symlink(outside, dest); err != nil {
		t.Fatal(err)
	}
	_, err := e.DownloadFile(context.Background(), Item{URL: srv.add("/f", []byte("data")), Dest: dest})
	var ue *fsx.UnsafePathError
	if !errors.As(err, &ue) {
		t.Fatalf("want UnsafePathError, got %v", err)
	}
	if _, err := os.Stat(outside); !os.IsNotExist(err) {
		t.Error("wrote through the symlink")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("temp left: %v", ents)
	}
}

// TestDownloadFileChecksOptionalMD5 and the zero-byte rule.
func TestDownloadFileChecksOptionalMD5(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	dir := t.TempDir()
	d := []byte("hello")
	_, err := e.DownloadFile(context.Background(), Item{URL: srv.add("/h", d), Dest: filepath.Join(dir, "h"), MD5: emptyMD5})
	if !errors.As(err, &DigestMismatchError{}) {
		t.Fatalf("want DigestMismatchError, got %v", err)
	}
	// An empty file is accepted when the server says it is empty.
	r, err := e.DownloadFile(context.Background(), Item{URL: srv.add("/e", []byte{}), Dest: filepath.Join(dir, "e")})
	if err != nil || r.Size != 0 {
		t.Fatalf("empty file: %+v %v", r, err)
	}
	// An empty blob only under the empty MD5.
	if _, err := e.EnsureBlob(context.Background(), Item{URL: srv.add("/e2", []byte{}), MD5: emptyMD5}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.EnsureBlob(context.Background(), Item{URL: srv.add("/e3", []byte{}), MD5: md5hex(d)}); !errors.As(err, &DigestMismatchError{}) {
		t.Fatalf("empty body accepted for a non-empty MD5: %v", err)
	}
}

// TestProgressEvents: phases in order, byte counts, totals, and the JSON
// and terminal renderings.
func TestProgressEvents(t *testing.T) {
	srv := newFaultServer(t)
	srv.throttle(32<<10, 2*time.Millisecond)
	env := newEnv(t, "")
	var mu sync.Mutex
	var events []Event
	var jsonOut, barOut bytes.Buffer
	jl, bars := JSONLines(&jsonOut), Bars(&barOut)
	obs := ObserverFunc(func(ev Event) {
		// Under mu: the progress loop may emit a last event after
		// EnsureBlob returned, while the test reads the buffers.
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
		jl.Observe(ev)
		bars.Observe(ev)
	})
	e := env.engine(t, nil, WithObserver(obs))
	d := randomBytes(70, 2<<20)
	if _, err := e.EnsureBlob(context.Background(), Item{Name: "w.onnx", URL: srv.add("/w", d), MD5: md5hex(d)}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	var phases []Phase
	var sawBytes bool
	for _, ev := range events {
		switch ev.Type {
		case EventPhase:
			phases = append(phases, ev.File.Phase)
		case EventProgress:
			for _, f := range ev.Files {
				if f.Name == "w.onnx" && f.Network > 0 && f.Total == int64(len(d)) && ev.Totals.Network >= f.Network {
					sawBytes = true
				}
			}
		}
	}
	want := []Phase{PhaseDownloading, PhaseVerifying, PhasePublishing, PhaseDone}
	if !containsInOrder(phases, want) {
		t.Errorf("phases %v, want %v in order", phases, want)
	}
	if !sawBytes {
		t.Error("no progress event with bytes and total")
	}
	sc := bufio.NewScanner(&jsonOut)
	lines := 0
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		lines++
	}
	if lines != len(events) {
		t.Errorf("%d JSON lines for %d events", lines, len(events))
	}
	if !strings.Contains(barOut.String(), "w.onnx") || !strings.Contains(barOut.String(), "total (1 files)") {
		t.Errorf("bars output: %q", barOut.String())
	}
}

func containsInOrder(have, want []Phase) bool {
	i := 0
	for _, p := range have {
		if i < len(want) && p == want[i] {
			i++
		}
	}
	return i == len(want)
}
