package modelcache

import (
	"context"
	"fmt"
	"sync"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/materialize"
)

// Fetcher puts package bytes in place: hashed artefacts as verified blobs
// (EnsureBlobs), unhashed ones as files in the package dir (FetchFile).
// refresh, when not nil, returns a fresh download URL for a handle after
// storage refused an expired signed URL (401/403).
type Fetcher interface {
	EnsureBlobs(ctx context.Context, missing []layout.Artefact, refresh RefreshFunc) error
	FetchFile(ctx context.Context, a layout.Artefact, dest string, refresh RefreshFunc) error
}

// RefreshFunc asks the provider again for the download URL of a file handle.
type RefreshFunc func(ctx context.Context, handle string) (string, error)

func (r RefreshFunc) forHandle(handle string) func(context.Context) (string, error) {
	if r == nil {
		return nil
	}
	return func(ctx context.Context) (string, error) { return r(ctx, handle) }
}

// engineFetcher is the default: the download engine (parallel files and
// ranges, resume across processes, single flight, MD5 while streaming).
type engineFetcher struct {
	e       *download.Engine
	offline bool
}

func (f *engineFetcher) EnsureBlobs(ctx context.Context, missing []layout.Artefact, refresh RefreshFunc) error {
	_, err := f.ensureBlobs(ctx, missing, refresh)
	return err
}

// FetchFile downloads an unhashed artefact to dest (retries, resume within
// the call, size check, private temp, no-replace rename).
func (f *engineFetcher) FetchFile(ctx context.Context, a layout.Artefact, dest string, refresh RefreshFunc) error {
	if f.offline {
		return fmt.Errorf("download %q: %w (OFFLINE_MODE is on)", a.FileHandle, errdefs.ErrOffline)
	}
	_, err := f.e.DownloadFile(ctx, download.Item{Name: a.FileHandle, URL: a.DownloadURL, Dest: dest, Refresh: refresh.forHandle(a.FileHandle)})
	return err
}

func (f *engineFetcher) ensureBlobs(ctx context.Context, missing []layout.Artefact, refresh RefreshFunc) ([]download.Result, error) {
	items := make([]download.Item, len(missing))
	for i, a := range missing {
		items[i] = download.Item{Name: a.FileHandle, URL: a.DownloadURL, MD5: a.MD5, Refresh: refresh.forHandle(a.FileHandle)}
	}
	return f.e.Batch(ctx, items)
}

func hooksFor(f Fetcher, refresh RefreshFunc) materialize.Hooks {
	h := materialize.Hooks{
		EnsureBlobs: func(ctx context.Context, missing []layout.Artefact) error {
			return f.EnsureBlobs(ctx, missing, refresh)
		},
		FetchFile: func(ctx context.Context, a layout.Artefact, dest string) error {
			return f.FetchFile(ctx, a, dest, refresh)
		},
	}
	if ef, ok := f.(*engineFetcher); ok {
		// The engine hashes what it writes: blobs it publishes for this load
		// need no second read in step 6 (materialize.Hooks.Verified).
		var mu sync.Mutex
		verified := map[string]fsx.FileID{}
		h.EnsureBlobs = func(ctx context.Context, missing []layout.Artefact) error {
			res, err := ef.ensureBlobs(ctx, missing, refresh)
			mu.Lock()
			for _, r := range res {
				if r.File.Ino != 0 {
					verified[r.MD5] = r.File
				}
			}
			mu.Unlock()
			return err
		}
		h.Verified = func(md5 string) (fsx.FileID, bool) {
			mu.Lock()
			defer mu.Unlock()
			id, ok := verified[md5]
			return id, ok
		}
	}
	return h
}
