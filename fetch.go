package modelcache

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/layout"
	"github.com/modelcache/modelcache/materialize"
)

// ProgressEvent reports download progress of one file.
type ProgressEvent struct {
	Handle string
	// Bytes done so far and Total (-1 when unknown).
	Bytes, Total int64
	Phase        string // "download", "done"
}

// ProgressSink receives progress events; it must be cheap and concurrency-safe.
type ProgressSink interface{ Progress(ProgressEvent) }

// Fetcher turns artefact URLs into byte streams for materialization.
type Fetcher interface {
	FetchFunc(progress ProgressSink) materialize.FetchFunc
}

// newHTTPClient builds the single HTTP client of a Client. In offline mode its
// dialer refuses every connection, so nothing can reach the network by mistake.
func newHTTPClient(cfg config.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	d := &net.Dialer{Timeout: cfg.ChunkConnectTimeout}
	tr.DialContext = d.DialContext
	if cfg.Offline {
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			return nil, fmt.Errorf("dial %s refused: %w (OFFLINE_MODE is on)", addr, errdefs.ErrOffline)
		}
	}
	return &http.Client{Transport: tr}
}

type httpFetcher struct {
	http *http.Client
	cfg  config.Config
}

func newHTTPFetcher(h *http.Client, cfg config.Config) Fetcher {
	return &httpFetcher{http: h, cfg: cfg}
}

func (f *httpFetcher) FetchFunc(progress ProgressSink) materialize.FetchFunc {
	return func(ctx context.Context, a layout.Artefact) (io.ReadCloser, int64, error) {
		if f.cfg.Offline {
			return nil, 0, fmt.Errorf("download %q: %w (OFFLINE_MODE is on)", a.FileHandle, errdefs.ErrOffline)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.DownloadURL, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("download %q: bad URL %s", a.FileHandle, logURL(a.DownloadURL))
		}
		resp, err := f.http.Do(req)
		if err != nil {
			return nil, 0, fmt.Errorf("download %q from %s: %w", a.FileHandle, logURL(a.DownloadURL), stripURL(err))
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("download %q from %s: HTTP %d", a.FileHandle, logURL(a.DownloadURL), resp.StatusCode)
		}
		body := io.ReadCloser(resp.Body)
		if progress != nil {
			body = &progressReader{ReadCloser: resp.Body, sink: progress, ev: ProgressEvent{Handle: a.FileHandle, Total: resp.ContentLength, Phase: "download"}}
		}
		return body, resp.ContentLength, nil
	}
}

type progressReader struct {
	io.ReadCloser
	sink ProgressSink
	ev   ProgressEvent
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	p.ev.Bytes += int64(n)
	if err == io.EOF {
		p.ev.Phase = "done"
	}
	p.sink.Progress(p.ev)
	return n, err
}

// logURL keeps scheme://host/path: signed URLs carry credentials in the query.
func logURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// stripURL drops the URL (with its query) from a *url.Error.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
