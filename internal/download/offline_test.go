package download

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
)

// TestOfflineTransportRefusesEveryDial: the transport from NewTransport in
// offline mode fails every request before a connection (or DNS lookup) is
// attempted, whatever the URL; the server sees no connection.
func TestOfflineTransportRefusesEveryDial(t *testing.T) {
	srv := newFaultServer(t)
	u := srv.add("/f", []byte("x"))
	var dials atomic.Int64
	c := NewClient(TransportOptions{Offline: true, OnDial: func(string, string) { dials.Add(1) }})
	for _, target := range []string{u, "http://localhost:1/x", "http://name.invalid/x"} {
		for _, m := range []string{http.MethodGet, http.MethodHead} {
			req, _ := http.NewRequest(m, target, nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("%s %s succeeded offline", m, target)
			}
			if !errors.Is(err, errdefs.ErrOffline) {
				t.Errorf("%s %s: error does not wrap ErrOffline: %v", m, target, err)
			}
		}
	}
	if dials.Load() != 6 {
		t.Errorf("%d dial attempts reached the dialer, want 6 (all refused)", dials.Load())
	}
	if srv.Conns() != 0 {
		t.Errorf("the server saw %d connections", srv.Conns())
	}
}

// TestOfflineEngineUsesPresentFilesOnly: offline, present files are
// returned (Batch and EnsureBlob), a missing one fails with OfflineError
// (the reference's message), and nothing reaches the server.
func TestOfflineEngineUsesPresentFilesOnly(t *testing.T) {
	srv := newFaultServer(t)
	home := t.TempDir()
	env := newEnv(t, home)
	present := randomBytes(20, 1000)
	missing := randomBytes(21, 1000)
	up := srv.add("/present", present)
	um := srv.add("/missing", missing)
	// Warm the cache online.
	if _, err := env.engine(t, nil).EnsureBlob(context.Background(), Item{URL: up, MD5: md5hex(present)}); err != nil {
		t.Fatal(err)
	}
	pkgFile := filepath.Join(home, "pkg-file.txt")
	if err := os.WriteFile(pkgFile, []byte("cfg"), 0o644); err != nil {
		t.Fatal(err)
	}
	conns := srv.Conns()

	cfg := config.Default()
	cfg.Home, cfg.Offline = home, true
	off, err := New(cfg, env.blobs, env.locks, WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	res, err := off.Batch(context.Background(), []Item{
		{Name: "w.onnx", URL: up, MD5: md5hex(present)},
		{Name: "pkg-file.txt", URL: up, Dest: pkgFile},
	})
	if err != nil || !res[0].Cached || !res[1].Cached {
		t.Fatalf("offline batch of present files: %+v %v", res, err)
	}
	_, err = off.Batch(context.Background(), []Item{{Name: "w.onnx", URL: up, MD5: md5hex(present)}, {Name: "other.onnx", URL: um, MD5: md5hex(missing)}})
	var oe *OfflineError
	if !errors.As(err, &oe) || !errors.Is(err, errdefs.ErrOffline) || oe.Missing != 1 || oe.Name != "other.onnx" {
		t.Fatalf("want OfflineError for other.onnx, got %v", err)
	}
	if _, err := off.EnsureBlob(context.Background(), Item{URL: um, MD5: md5hex(missing)}); !errors.Is(err, errdefs.ErrOffline) {
		t.Fatalf("EnsureBlob offline: %v", err)
	}
	if _, err := off.DownloadFile(context.Background(), Item{URL: um, Dest: filepath.Join(home, "new.txt")}); !errors.Is(err, errdefs.ErrOffline) {
		t.Fatalf("DownloadFile offline: %v", err)
	}
	// The engine's own client is offline too.
	resp, err := off.Client().Get(um)
	if err == nil {
		resp.Body.Close()
		t.Fatal("the offline engine's client reached the server")
	}
	if srv.Conns() != conns {
		t.Errorf("offline engine opened %d connections", srv.Conns()-conns)
	}
	if _, err := os.Stat(filepath.Join(home, "new.txt")); !os.IsNotExist(err) {
		t.Errorf("offline DownloadFile created a file")
	}
}

// TestDiskFullAbortsBatch: ENOSPC on a write aborts the whole batch at
// once, removes every temp file, and names the path and the bytes written.
func TestDiskFullAbortsBatch(t *testing.T) {
	srv := newFaultServer(t)
	srv.throttle(16<<10, 2*time.Millisecond)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	var items []Item
	var datas [][]byte
	for i := range 4 {
		d := randomBytes(uint64(30+i), 2<<20)
		datas = append(datas, d)
		items = append(items, Item{Name: "f" + string(rune('a'+i)), URL: srv.add("/f"+string(rune('a'+i)), d), MD5: md5hex(d)})
	}
	full := md5hex(datas[2])
	e.hooks.writeErr = func(path string, off int64) error {
		if filepath.Base(path)[1:33] == full && off >= 1<<20 {
			return &os.PathError{Op: "write", Path: path, Err: syscall.ENOSPC}
		}
		return nil
	}
	_, err := e.Batch(context.Background(), items)
	var de *DiskError
	if !errors.As(err, &de) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("want DiskError(ENOSPC), got %v", err)
	}
	if de.Written <= 0 || de.Path == "" {
		t.Errorf("error lacks path or bytes: %+v", de)
	}
	// The full file is not published; no partial or journal of any file
	// survives; whatever was published before the abort is intact.
	assertStore(t, env, datas[2], false, false)
	for _, d := range datas {
		if got, err := os.ReadFile(filepath.Join(env.blobs.Dir(), md5hex(d))); err == nil && md5hex(got) != md5hex(d) {
			t.Errorf("corrupt blob %s", md5hex(d))
		}
	}
}

// TestFreeSpaceCheckFailsFast: a file larger than the free space fails
// before any request.
func TestFreeSpaceCheckFailsFast(t *testing.T) {
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, func(t *Tuning) { t.CheckFreeSpace = true })
	d := randomBytes(40, 10)
	_, err := e.Batch(context.Background(), []Item{{URL: srv.add("/huge", d), MD5: md5hex(d), Size: 1 << 60}})
	var de *DiskError
	if !errors.As(err, &de) || de.Need <= de.Free {
		t.Fatalf("want a free-space DiskError, got %v", err)
	}
	if srv.GETs()+srv.HEADs() != 0 {
		t.Error("requests were sent")
	}
}
