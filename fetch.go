package modelcache

import (
	"context"
	"fmt"

	"github.com/modelcache/modelcache/download"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/layout"
	"github.com/modelcache/modelcache/materialize"
)

// Fetcher puts package bytes in place: hashed artefacts as verified blobs
// (EnsureBlobs), unhashed ones as files in the package dir (FetchFile).
type Fetcher interface {
	EnsureBlobs(ctx context.Context, missing []layout.Artefact) error
	FetchFile(ctx context.Context, a layout.Artefact, dest string) error
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

// FetchFile downloads an unhashed artefact to dest (retries, resume within
// the call, size check, private temp, no-replace rename).
func (f *engineFetcher) FetchFile(ctx context.Context, a layout.Artefact, dest string) error {
	if f.offline {
		return fmt.Errorf("download %q: %w (OFFLINE_MODE is on)", a.FileHandle, errdefs.ErrOffline)
	}
	_, err := f.e.DownloadFile(ctx, download.Item{Name: a.FileHandle, URL: a.DownloadURL, Dest: dest})
	return err
}

func hooksFor(f Fetcher) materialize.Hooks {
	return materialize.Hooks{EnsureBlobs: f.EnsureBlobs, FetchFile: f.FetchFile}
}
