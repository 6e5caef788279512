package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
)

const (
	keyAll     = "rk-all-3f9a1c"
	keyDet     = "rk-det-77b2e0"
	keyBroke   = "rk-broke-0001"
	keyPaused  = "rk-paused-0002"
	keyPublicM = "ws/public/*"
)

func accessRegistry(t *testing.T) *Registry {
	sum := sha256.Sum256([]byte(keyDet))
	files := map[string]string{
		"access.json": `{"allow_anonymous": true, "anonymous_models": ["` + keyPublicM + `"], "keys": [
			{"name": "all", "key": "` + keyAll + `", "models": ["*"]},
			{"name": "det", "key_sha256": "` + hex.EncodeToString(sum[:]) + `", "models": ["ws/det/*"]},
			{"name": "broke", "key": "` + keyBroke + `", "models": ["*"], "status": "payment_required"},
			{"name": "paused", "key": "` + keyPaused + `", "models": ["*"], "status": "usage_paused"}]}`,
		"models/det/model.json":                     `{"model_id": "ws/det/1", "aliases": ["det-alias"], "model_architecture": "yolov8"}`,
		"models/det/packages/a1/package.json":       onnxPackage("fp32"),
		"models/det/packages/a1/files/weights.onnx": "det weights",
		"models/seg/model.json":                     `{"model_id": "ws/seg/1", "model_architecture": "yolov8"}`,
		"models/seg/packages/b1/package.json":       onnxPackage("fp16"),
		"models/seg/packages/b1/files/weights.onnx": "seg weights",
		"models/pub/model.json":                     `{"model_id": "ws/public/1", "model_architecture": "yolov8"}`,
		"models/pub/packages/c1/package.json":       onnxPackage("fp32"),
		"models/pub/packages/c1/files/weights.onnx": "public weights",
	}
	reg, err := Load(context.Background(), tmpRegistry(t, files), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestErrorMappingsOverHTTP drives every status of registry-protocol §5
// through the server's access control and checks the client's typed errors.
func TestErrorMappingsOverHTTP(t *testing.T) {
	_, ts := serve(t, accessRegistry(t), Options{}, nil)
	cases := []struct {
		key, model string
		kind       provider.Kind
		status     int
		sentinel   error
		prefix     string
	}{
		{"", "ws/det/1", provider.KindUnauthorized, 401, provider.ErrUnauthorized, "Could not get model weights. Request unauthorised."},
		{"local", "ws/det/1", provider.KindUnauthorized, 401, provider.ErrUnauthorized, "Could not get model weights."},
		{"rk-wrong", "ws/det/1", provider.KindUnauthorized, 401, provider.ErrUnauthorized, "Could not get model weights."},
		{keyBroke, "ws/det/1", provider.KindPaymentRequired, 402, provider.ErrPaymentRequired, "Not enough credits"},
		{keyDet, "ws/seg/1", provider.KindForbidden, 403, provider.ErrForbidden, "Access forbidden. Check that the API key has the required scopes"},
		{keyDet, "ws/other/9", provider.KindForbidden, 403, provider.ErrForbidden, "Access forbidden."},
		{keyAll, "ws/other/9", provider.KindNotFound, 404, provider.ErrModelNotFound, "Model not found."},
		{keyDet, "ws/det/404", provider.KindNotFound, 404, provider.ErrModelNotFound, "Model not found."},
		{keyPaused, "ws/det/1", provider.KindUsagePaused, 423, provider.ErrUsagePaused, "Roboflow API usage is paused"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d_%s", tc.status, tc.model), func(t *testing.T) {
			_, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: tc.model, APIKey: tc.key})
			var re *provider.RetrievalError
			if !errors.As(err, &re) || re.Kind != tc.kind || re.StatusCode != tc.status {
				t.Fatalf("got %v, want kind %v status %d", err, tc.kind, tc.status)
			}
			if !errors.Is(err, tc.sentinel) || !errors.Is(err, provider.ErrModelRetrieval) {
				t.Fatalf("errors.Is fails for %v", err)
			}
			if !strings.HasPrefix(err.Error(), tc.prefix) || !strings.HasSuffix(err.Error(), " - VISIT https://inference-models.roboflow.com/errors/model-retrieval/#"+strings.ToLower(tc.kind.ClassName())+" FOR FURTHER SUPPORT") {
				t.Fatalf("message %q", err.Error())
			}
		})
	}
	// Allowed: by key (canonical and alias) and anonymously for public models.
	for _, tc := range []struct{ key, model string }{{keyDet, "ws/det/1"}, {keyDet, "det-alias"}, {keyAll, "ws/seg/1"}, {"", "ws/public/1"}} {
		md, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: tc.model, APIKey: tc.key})
		if err != nil || len(md.Packages) != 1 {
			t.Fatalf("%s with key %q: %v", tc.model, tc.key, err)
		}
	}
	// The configured fallback key is used when the request key is "local".
	md, err := client(ts.URL, func(o *roboflow.Options) { o.APIKey = keyAll }).ModelMetadata(context.Background(), provider.Request{ModelID: "ws/seg/1", APIKey: "local"})
	if err != nil || md.ModelID != "ws/seg/1" {
		t.Fatalf("fallback key not used: %v", err)
	}
}

// fault answers the first n metadata requests with status (and headers), then passes through.
func fault(n int32, status int, hdr map[string]string, body string) (*atomic.Int32, func(http.Handler) http.Handler) {
	var hits atomic.Int32
	return &hits, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == roboflow.WeightsPath {
				if hits.Add(1) <= n {
					for k, v := range hdr {
						w.Header().Set(k, v)
					}
					w.WriteHeader(status)
					_, _ = w.Write([]byte(body))
					return
				}
			}
			h.ServeHTTP(w, r)
		})
	}
}

func TestRetriesHonourRetryAfter(t *testing.T) {
	reg := loadExamples(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		status int
		hdr    map[string]string
		want   []time.Duration
	}{
		{"503-seconds", 503, map[string]string{"Retry-After": "2"}, []time.Duration{2 * time.Second, 2 * time.Second}},
		{"429-date", 429, map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, []time.Duration{7 * time.Second, 7 * time.Second}},
		{"503-capped", 503, map[string]string{"Retry-After": "3600"}, []time.Duration{60 * time.Second, 60 * time.Second}},
		// Without Retry-After: full jitter, Rand=0.5 -> 0.5 s, then 1 s.
		{"502-jitter", 502, nil, []time.Duration{500 * time.Millisecond, time.Second}},
		// Retry-After is only honoured on 429/503.
		{"504-ignores-header", 504, map[string]string{"Retry-After": "9"}, []time.Duration{500 * time.Millisecond, time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hits, wrap := fault(2, tc.status, tc.hdr, `{"error": "busy"}`)
			_, ts := serve(t, reg, Options{}, wrap)
			sl := &sleeps{}
			md, err := client(ts.URL, func(o *roboflow.Options) {
				o.Sleep = sl.sleep
				o.Rand = func() float64 { return 0.5 }
				o.Now = func() time.Time { return now }
			}).ModelMetadata(context.Background(), provider.Request{ModelID: "acme-ws/fruit-classifier/2"})
			if err != nil || md.ModelID != "acme-ws/fruit-classifier/2" {
				t.Fatalf("third try should succeed: %v", err)
			}
			if hits.Load() != 3 {
				t.Fatalf("%d requests, want 3", hits.Load())
			}
			got := sl.all()
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("waits %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetriesExhaustedGiveRetryError(t *testing.T) {
	hits, wrap := fault(100, 503, nil, "")
	_, ts := serve(t, loadExamples(t), Options{}, wrap)
	_, err := client(ts.URL, func(o *roboflow.Options) { o.MaxTries = 4 }).ModelMetadata(context.Background(), provider.Request{ModelID: "parcel-det"})
	var re *provider.RetryError
	if !errors.As(err, &re) || re.StatusCode != 503 || re.Tries != 4 || hits.Load() != 4 {
		t.Fatalf("want RetryError after 4 tries, got %v (hits %d)", err, hits.Load())
	}
	if errors.Is(err, provider.ErrModelRetrieval) || !errors.Is(err, provider.ErrRetry) {
		t.Fatalf("RetryError must not be a retrieval error: %v", err)
	}
}

func TestNoRetryOnNonRetryableCodes(t *testing.T) {
	for _, status := range []int{500, 400, 401, 403, 404, 409} {
		hits, wrap := fault(100, status, nil, `{"message": "nope", "detail": [1, 2]}`)
		_, ts := serve(t, loadExamples(t), Options{}, wrap)
		sl := &sleeps{}
		_, err := client(ts.URL, func(o *roboflow.Options) { o.Sleep = sl.sleep }).ModelMetadata(context.Background(), provider.Request{ModelID: "parcel-det"})
		var re *provider.RetrievalError
		if !errors.As(err, &re) || hits.Load() != 1 || len(sl.all()) != 0 {
			t.Fatalf("status %d: %v after %d requests", status, err, hits.Load())
		}
		if status == 500 || status == 409 || status == 400 {
			if re.Kind != provider.KindRetrieval || !strings.HasPrefix(err.Error(), fmt.Sprintf("Roboflow API returned invalid response code for get model weights operation %d.\n\nResponse:\n{", status)) ||
				!strings.Contains(err.Error(), `"message": "nope"`) {
				t.Fatalf("status %d message: %q", status, err.Error())
			}
		}
	}
	// A custom retry list makes 500 retryable.
	hits, wrap := fault(1, 500, nil, "")
	_, ts := serve(t, loadExamples(t), Options{}, wrap)
	if _, err := client(ts.URL, func(o *roboflow.Options) { o.RetryCodes = []int{500} }).ModelMetadata(context.Background(), provider.Request{ModelID: "parcel-det"}); err != nil || hits.Load() != 2 {
		t.Fatalf("500 in RetryCodes not retried: %v (%d hits)", err, hits.Load())
	}
}

func TestRetryOnConnectionErrorsAndTimeouts(t *testing.T) {
	// A listener that accepts and immediately closes connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	sl := &sleeps{}
	_, err = client("http://"+ln.Addr().String(), func(o *roboflow.Options) { o.Sleep = sl.sleep }).ModelMetadata(context.Background(), provider.Request{ModelID: "parcel-det"})
	var re *provider.RetryError
	if !errors.As(err, &re) || re.StatusCode != 0 || len(sl.all()) != 2 || accepted.Load() < 3 {
		t.Fatalf("connection resets: %v, sleeps %v, accepted %d", err, sl.all(), accepted.Load())
	}

	// A server that never answers the first try: the client's read timeout
	// gives up on it and the retry succeeds. No wall-clock bound is asserted:
	// the timeout is proven by the first request being abandoned.
	var slow atomic.Int32
	abandoned := make(chan struct{})
	_, ts := serve(t, loadExamples(t), Options{}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if slow.Add(1) == 1 {
				<-r.Context().Done()
				close(abandoned)
				return
			}
			h.ServeHTTP(w, r)
		})
	})
	md, err := client(ts.URL, func(o *roboflow.Options) { o.Timeout = 500 * time.Millisecond }).ModelMetadata(context.Background(), provider.Request{ModelID: "parcel-det"})
	if err != nil || md == nil || slow.Load() < 2 {
		t.Fatalf("timeout not retried: %v after %d tries", err, slow.Load())
	}
	select {
	case <-abandoned:
	case <-time.After(30 * time.Second):
		t.Fatal("the first, unanswered request was never abandoned by the client")
	}
}

func TestExtraQueryParamsAndHeaders(t *testing.T) {
	cnt := &counter{}
	_, ts := serve(t, accessRegistry(t), Options{}, cnt.wrap)
	c := client(ts.URL, func(o *roboflow.Options) {
		o.ExtraQuery = [][2]string{{"region", "eu west"}}
		o.ExtraHeaders = map[string]string{"X-Client": "modelcache"}
	})
	_, err := c.ModelMetadata(context.Background(), provider.Request{
		ModelID: "ws/det/1", APIKey: keyDet,
		ExtraQuery:   [][2]string{{"x", "1"}, {"x", "2/3"}, {"modelId", "ws/seg/1"}},
		ExtraHeaders: map[string]string{"X-Trace": "t-1", "Authorization": "Bearer " + keyAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	if q := cnt.queries[0]; q != "modelId=ws%2Fdet%2F1&region=eu+west&x=1&x=2%2F3" {
		t.Fatalf("query %q", q)
	}
	h := cnt.headers[0]
	if h.Get("X-Trace") != "t-1" || h.Get("X-Client") != "modelcache" || h.Get("Authorization") != "Bearer "+keyDet {
		t.Fatalf("headers %v", h)
	}
	// No Authorization at all for an empty or "local" key.
	for _, k := range []string{"", "local"} {
		_, _ = client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "ws/public/1", APIKey: k})
		if last := cnt.headers[len(cnt.headers)-1]; last.Get("Authorization") != "" {
			t.Fatalf("key %q sent Authorization %q", k, last.Get("Authorization"))
		}
	}
}

func TestRedactionOfKeysInLogsAndErrors(t *testing.T) {
	const secret = "sk-SuperSecret-9d8c7b"
	const qsecret = "QuerySecret-4455"
	const hsecret = "HeaderSecret-7788"
	files := map[string]string{
		"access.json":                         `{"keys": [{"key": "` + secret + `", "models": ["ws/det/*"]}]}`,
		"models/det/model.json":               `{"model_id": "ws/det/1", "model_architecture": "yolov8"}`,
		"models/det/packages/a1/package.json": onnxPackage("fp32"),
		"models/det/packages/a1/files/w.onnx": "w",
		"models/seg/model.json":               `{"model_id": "ws/seg/1", "model_architecture": "yolov8"}`,
		"models/seg/packages/b1/package.json": onnxPackage("fp32"),
		"models/seg/packages/b1/files/w.onnx": "w",
	}
	reg, err := Load(context.Background(), tmpRegistry(t, files), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// The echo fault returns the Authorization header and the query in its body.
	echo := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("echo") != "" {
				w.WriteHeader(http.StatusInternalServerError)
				fmt.Fprintf(w, "bad request with %s and %s", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
				return
			}
			if r.URL.Query().Get("busy") != "" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	_, ts := serve(t, reg, Options{Logger: logger}, echo)
	var errs []error
	run := func(key string, extra [][2]string, model string) {
		c := client(ts.URL, func(o *roboflow.Options) {
			o.Logger = logger
			o.ExtraHeaders = map[string]string{"X-Api-Key": hsecret}
		})
		_, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: model, APIKey: key, ExtraQuery: extra})
		errs = append(errs, err)
	}
	run(secret, [][2]string{{"token", qsecret}}, "ws/det/1")                // success
	run(secret, [][2]string{{"token", qsecret}}, "ws/seg/1")                // 403
	run(secret+"x", nil, "ws/det/1")                                        // 401 with a key containing the secret
	run(secret, [][2]string{{"echo", "1"}, {"token", qsecret}}, "ws/det/1") // 500 echoing secrets
	run(secret, [][2]string{{"busy", "1"}, {"token", qsecret}}, "ws/det/1") // retries exhausted
	c := client("http://127.0.0.1:1", func(o *roboflow.Options) { o.Logger = logger; o.APIKey = secret })
	_, err = c.ModelMetadata(context.Background(), provider.Request{ModelID: "ws/det/1", ExtraQuery: [][2]string{{"token", qsecret}}})
	errs = append(errs, err) // connection refused
	if errs[0] != nil {
		t.Fatalf("successful call failed: %v", errs[0])
	}
	for i, e := range errs[1:] {
		if e == nil {
			t.Fatalf("call %d should fail", i+1)
		}
		if strings.Contains(e.Error(), secret) || strings.Contains(e.Error(), qsecret) || strings.Contains(e.Error(), hsecret) {
			t.Fatalf("error %d leaks a secret: %q", i+1, e.Error())
		}
	}
	if !strings.Contains(errs[3].Error(), "bad request with Bearer *** and ***") {
		t.Fatalf("echoed body not shown redacted: %q", errs[3].Error())
	}
	_ = ts.Config.Shutdown(context.Background()) // every server log line is written
	out := logs.String()
	if !strings.Contains(out, "requesting model metadata") || !strings.Contains(out, "retrying") || !strings.Contains(out, `"route":"weights"`) {
		t.Fatalf("expected client and server logs, got:\n%s", out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, qsecret) || strings.Contains(out, hsecret) || strings.Contains(out, "modelId=") {
		t.Fatalf("logs leak a key or a query string:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
