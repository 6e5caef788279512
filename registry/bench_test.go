package registry

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// Benchmarks over loopback; each has a baseline sub-benchmark serving the
// same bytes from memory. The full comparison (medians, ratio) is
// `go run ./bench/registry`.

func benchGet(b *testing.B, c *http.Client, u string, want int) {
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 256<<10)
		for pb.Next() {
			resp, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.CopyBuffer(io.Discard, resp.Body, buf)
			resp.Body.Close()
			if resp.StatusCode != 200 || n != int64(want) {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

func memoryServer(b *testing.B, body []byte) *httptest.Server {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	b.Cleanup(ts.Close)
	return ts
}

func BenchmarkWeights(b *testing.B) {
	_, ts := serve(b, loadExamples(b), Options{}, nil)
	u := ts.URL + "/models/v1/external/weights?modelId=parcel-det"
	_, body := get(b, u, nil)
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Run("registry", func(b *testing.B) { benchGet(b, c, u, len(body)) })
	base := memoryServer(b, body)
	b.Run("baseline", func(b *testing.B) { benchGet(b, c, base.URL, len(body)) })
}

func BenchmarkFile(b *testing.B) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
	root := tmpRegistry(b, map[string]string{
		"models/m/model.json":                     `{"model_id": "ws/big/1", "model_architecture": "yolov8"}`,
		"models/m/packages/p1/package.json":       onnxPackage("fp32"),
		"models/m/packages/p1/files/weights.onnx": string(data),
	})
	reg, err := Load(context.Background(), root, LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	_, ts := serve(b, reg, Options{}, nil)
	u := ts.URL + FilesPrefix + md5hex(data) + "/weights.onnx"
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}}
	b.Run("registry", func(b *testing.B) { b.SetBytes(int64(len(data))); benchGet(b, c, u, len(data)) })
	base := memoryServer(b, data)
	b.Run("baseline", func(b *testing.B) { b.SetBytes(int64(len(data))); benchGet(b, c, base.URL, len(data)) })
}
