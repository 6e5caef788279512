package modelcache

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/modelcache/modelcache/download"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/layout"
	"github.com/modelcache/modelcache/materialize"
)

// Fetcher puts package bytes in place: hashed artefacts as verified blobs
// (EnsureBlobs), unhashed ones as a byte stream for the package dir (Fetch).
type Fetcher interface {
	Fetch(ctx context.Context, a layout.Artefact) (io.ReadCloser, int64, error)
	EnsureBlobs(ctx context.Context, missing []layout.Artefact) error
}

// engineFetcher is the default: the download engine (parallel files and
// ranges, resume across processes, single flight, MD5 while streaming).
type engineFetcher struct {
	e       *download.Engine
	offline bool
}

func (f *engineFetcher) EnsureBlobs(ctx context.Context, missing []layout.Artefact) error {
	items := make([]download.Item, len(missing))
	for i, a := range missing {
		items[i] = download.Item{Name: a.FileHandle, URL: a.DownloadURL, MD5: a.MD5}
	}
	_, err := f.e.Batch(ctx, items)
	return err
}

// Fetch streams an unhashed artefact through the engine's HTTP client (the
// offline guard applies); materialize writes it to a private temp file and
// renames it into place.
func (f *engineFetcher) Fetch(ctx context.Context, a layout.Artefact) (io.ReadCloser, int64, error) {
	if f.offline {
		return nil, 0, fmt.Errorf("download %q: %w (OFFLINE_MODE is on)", a.FileHandle, errdefs.ErrOffline)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.DownloadURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("download %q: bad URL %s", a.FileHandle, download.SafeURL(a.DownloadURL))
	}
	resp, err := f.e.Client().Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("download %q from %s: %w", a.FileHandle, download.SafeURL(a.DownloadURL), stripURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("download %q from %s: HTTP %d", a.FileHandle, download.SafeURL(a.DownloadURL), resp.StatusCode)
	}
	return resp.Body, resp.ContentLength, nil
}

func hooksFor(f Fetcher) (materialize.FetchFunc, func(context.Context, []layout.Artefact) error) {
	return f.Fetch, f.EnsureBlobs
}

// stripURL drops the URL (with its signed query) from a *url.Error.
func stripURL(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
