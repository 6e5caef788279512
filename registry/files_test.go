package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
)

func firstFileURL(t *testing.T, host, model string, mod func(*roboflow.Options), key string) (string, string) {
	t.Helper()
	md, err := client(host, mod).ModelMetadata(context.Background(), provider.Request{ModelID: model, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	a := md.Packages[0].Artifacts[0]
	return a.DownloadURL, *a.MD5Hash
}

func TestFileServingHeadRangeETag(t *testing.T) {
	reg := loadExamples(t)
	_, ts := serve(t, reg, Options{}, nil)
	u, sum := firstFileURL(t, ts.URL, "parcel-det", nil, "")
	f, _ := reg.Blob(sum)
	full, err := os.ReadFile(f.Path)
	if err != nil {
		t.Fatal(err)
	}
	// HEAD: direct 200, exact length, ranges advertised, strong ETag, no redirect.
	req, _ := http.NewRequest(http.MethodHead, u, nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != int64(len(full)) || resp.Header.Get("Accept-Ranges") != "bytes" ||
		resp.Header.Get("ETag") != `"`+sum+`"` {
		t.Fatalf("HEAD: %d len=%d headers=%v", resp.StatusCode, resp.ContentLength, resp.Header)
	}
	// Range a-b -> 206 with Content-Range and exact length.
	resp, body := get(t, u, map[string]string{"Range": "bytes=10-99"})
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-99/%d", len(full)) ||
		resp.ContentLength != 90 || !bytes.Equal(body, full[10:100]) {
		t.Fatalf("range: %d %v len=%d", resp.StatusCode, resp.Header, len(body))
	}
	// If-Range with the current ETag keeps the range; a stale one gets the whole file.
	resp, body = get(t, u, map[string]string{"Range": "bytes=0-9", "If-Range": `"` + sum + `"`})
	if resp.StatusCode != 206 || len(body) != 10 {
		t.Fatalf("If-Range match: %d", resp.StatusCode)
	}
	resp, body = get(t, u, map[string]string{"Range": "bytes=0-9", "If-Range": `"00000000000000000000000000000000"`})
	if resp.StatusCode != 200 || !bytes.Equal(body, full) {
		t.Fatalf("If-Range mismatch: %d", resp.StatusCode)
	}
	// Out of range -> 416.
	resp, _ = get(t, u, map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(full)+10)})
	if resp.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("out of range: %d", resp.StatusCode)
	}
	// Identity encoding even when gzip is offered.
	resp, body = get(t, u, map[string]string{"Accept-Encoding": "gzip"})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || resp.ContentLength != int64(len(full)) || md5hex(body) != sum {
		t.Fatalf("plain GET: %d %v", resp.StatusCode, resp.Header)
	}
	// Unknown MD5 or a handle that is not served under it -> 404.
	if resp, _ := get(t, ts.URL+"/files/"+strings.Repeat("0", 32)+"/weights.onnx", nil); resp.StatusCode != 404 {
		t.Fatalf("unknown md5: %d", resp.StatusCode)
	}
	if resp, _ := get(t, ts.URL+"/files/"+sum+"/other.bin", nil); resp.StatusCode != 404 {
		t.Fatalf("wrong handle: %d", resp.StatusCode)
	}
}

func TestFileChangedAfterStartIsNotServed(t *testing.T) {
	root := manyPackages(t, 1)
	reg, err := Load(context.Background(), root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, ts := serve(t, reg, Options{}, nil)
	u, _ := firstFileURL(t, ts.URL, "ws/many/1", nil, "")
	p := filepath.Join(root, "models/m/packages/paa/files/weights.onnx")
	if err := os.WriteFile(p, []byte("tampered bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, u, nil); resp.StatusCode != 500 || bytes.Contains(body, []byte("tampered")) {
		t.Fatalf("changed file served: %d %s", resp.StatusCode, body)
	}
}

func TestSignedFileURLsWithAccessControl(t *testing.T) {
	reg := accessRegistry(t)
	now := time.Unix(1_800_000_000, 0)
	clock := &atomic.Int64{}
	clock.Store(now.Unix())
	_, ts := serve(t, reg, Options{URLTTL: time.Hour, Now: func() time.Time { return time.Unix(clock.Load(), 0) }}, nil)
	u, _ := firstFileURL(t, ts.URL, "ws/det/1", nil, keyAll)
	pu, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	q := pu.Query()
	if q.Get("Expires") != fmt.Sprint(now.Add(time.Hour).Unix()) || len(q.Get("Signature")) != 64 {
		t.Fatalf("URL not signed: %s", u)
	}
	if resp, body := get(t, u, nil); resp.StatusCode != 200 || string(body) != "det weights" {
		t.Fatalf("signed URL: %d", resp.StatusCode)
	}
	q.Set("Expires", fmt.Sprint(now.Add(10*time.Hour).Unix()))
	pu.RawQuery = q.Encode()
	if resp, _ := get(t, pu.String(), nil); resp.StatusCode != 403 {
		t.Fatalf("tampered expiry accepted: %d", resp.StatusCode)
	}
	unsigned := strings.SplitN(u, "?", 2)[0]
	if resp, _ := get(t, unsigned, nil); resp.StatusCode != 403 {
		t.Fatalf("unsigned URL accepted: %d", resp.StatusCode)
	}
	clock.Store(now.Add(2 * time.Hour).Unix())
	if resp, _ := get(t, u, nil); resp.StatusCode != 403 {
		t.Fatalf("expired URL accepted: %d", resp.StatusCode)
	}
}

// gateway is a minimal secure gateway: <base>/proxy?url=<encoded URL>,
// forwarding method, Range, If-Range and Authorization.
func gateway(t *testing.T, hits *atomic.Int32) *httptest.Server {
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/edge/proxy" {
			http.NotFound(w, r)
			return
		}
		hits.Add(1)
		up, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.Query().Get("url"), nil)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for _, h := range []string{"Range", "If-Range", "Authorization"} {
			if v := r.Header.Get(h); v != "" {
				up.Header.Set(h, v)
			}
		}
		resp, err := http.DefaultTransport.RoundTrip(up)
		if err != nil {
			http.Error(w, err.Error(), 502)
			return
		}
		defer resp.Body.Close()
		for _, h := range []string{"Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "ETag"} {
			if v := resp.Header.Get(h); v != "" {
				w.Header().Set(h, v)
			}
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(gw.Close)
	return gw
}

func TestSecureGatewayRewrite(t *testing.T) {
	reg := accessRegistry(t)
	cnt := &counter{}
	_, ts := serve(t, reg, Options{}, cnt.wrap)
	var hits atomic.Int32
	gw := gateway(t, &hits)
	gwBase := gw.URL + "/edge/"
	md, err := client(ts.URL, func(o *roboflow.Options) { o.SecureGateway = gwBase }).ModelMetadata(context.Background(),
		provider.Request{ModelID: "ws/det/1", APIKey: keyDet})
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 || cnt.n() != 1 || cnt.headers[0].Get("Authorization") != "Bearer "+keyDet {
		t.Fatalf("API call did not go through the gateway with auth: hits=%d", hits.Load())
	}
	a := md.Packages[0].Artifacts[0]
	prefix := gw.URL + "/edge/proxy?url=" + strings.ReplaceAll(url.QueryEscape(ts.URL+"/files/"), "+", "%20")
	if !strings.HasPrefix(a.DownloadURL, prefix) || strings.Contains(a.DownloadURL[len(gw.URL+"/edge/proxy?url="):], "/") {
		t.Fatalf("download URL not rewritten: %s (want prefix %s)", a.DownloadURL, prefix)
	}
	if roboflow.GatewayRewrite(gwBase, a.DownloadURL) != a.DownloadURL {
		t.Fatal("rewrite is not idempotent")
	}
	resp, body := get(t, a.DownloadURL, map[string]string{"Range": "bytes=0-2"})
	if resp.StatusCode != 206 || string(body) != "det" || hits.Load() != 2 {
		t.Fatalf("ranged download through gateway: %d %q", resp.StatusCode, body)
	}
}

func TestHealthzAndMetrics(t *testing.T) {
	reg := loadExamples(t)
	_, ts := serve(t, reg, Options{}, nil)
	resp, body := get(t, ts.URL+"/healthz", nil)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"status": "ok"`) || !strings.Contains(string(body), fmt.Sprintf(`"models": %d`, len(reg.Models))) {
		t.Fatalf("healthz: %d %s", resp.StatusCode, body)
	}
	u, _ := firstFileURL(t, ts.URL, "parcel-det", nil, "")
	_, file := get(t, u, nil)
	_, _ = get(t, ts.URL+"/models/v1/external/weights?modelId=nope", nil)
	wants := []string{
		`modelcache_registry_requests_total{code="200",route="weights"} 1`,
		`modelcache_registry_requests_total{code="404",route="weights"} 1`,
		`modelcache_registry_requests_total{code="200",route="files"} 1`,
		fmt.Sprintf(`modelcache_registry_file_bytes_sent_total %d`, len(file)),
		fmt.Sprintf(`modelcache_registry_content{kind="models"} %d`, len(reg.Models)),
		`modelcache_registry_request_duration_seconds_bucket{route="files"`,
		`go_goroutines`,
	}
	// A request is counted after its response is written: poll briefly.
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, m := get(t, ts.URL+"/metrics", nil)
		missing = missing[:0]
		for _, want := range wants {
			if !strings.Contains(string(m), want) {
				missing = append(missing, want)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(missing) > 0 {
		t.Fatalf("metrics lack %q", missing)
	}
	// Two servers have independent registries (no global state).
	s2, _ := serve(t, reg, Options{}, nil)
	if mf, err := s2.Metrics().Gather(); err != nil || len(mf) == 0 {
		t.Fatal(err)
	}
}

func TestFileConcurrencyLimit(t *testing.T) {
	reg := loadExamples(t)
	s, ts := serve(t, reg, Options{MaxConcurrentFiles: 1}, nil)
	u, _ := firstFileURL(t, ts.URL, "parcel-det", nil, "")
	s.sem <- struct{}{} // occupy the only slot
	resp, _ := get(t, u, nil)
	<-s.sem
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over the limit: %d", resp.StatusCode)
	}
	if resp, _ := get(t, u, nil); resp.StatusCode != 200 {
		t.Fatalf("after release: %d", resp.StatusCode)
	}
}

// TestGracefulShutdown cancels the server while a large download is in
// flight: the download completes, then Serve returns nil.
func TestGracefulShutdown(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<19) // 8 MiB
	root := tmpRegistry(t, map[string]string{
		"models/m/model.json":                     `{"model_id": "ws/big/1", "model_architecture": "yolov8"}`,
		"models/m/packages/p1/package.json":       onnxPackage("fp32"),
		"models/m/packages/p1/files/weights.onnx": string(big),
	})
	reg, err := Load(context.Background(), root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	base := "http://" + ln.Addr().String()
	u, sum := firstFileURL(t, base, "ws/big/1", nil, "")
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 1024)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	cancel()
	// Shutdown has begun once the server refuses new connections; only then
	// is the rest of the in-flight body read.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the server still accepts connections 30 s after cancel")
		}
	}
	rest, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || md5hex(append(head, rest...)) != sum {
		t.Fatalf("in-flight download broken by shutdown: %v (%d bytes)", err, len(head)+len(rest))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still accepting after shutdown")
	}
	var opErr *net.OpError
	_, err = net.DialTimeout("tcp", ln.Addr().String(), time.Second)
	if err == nil || !errors.As(err, &opErr) {
		t.Fatalf("listener still open: %v", err)
	}
}
