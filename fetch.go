package modelcache

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/metadata"
)

// Fetcher replaces the download engine as the source of package bytes
// (WithFetcher): Open returns the bytes of one file of a package and their
// size (-1 when unknown). modelcache checks each file's size and MD5 as it
// stores it and publishes nothing that fails, so a Fetcher need not verify.
type Fetcher interface {
	Open(ctx context.Context, a metadata.Artifact) (body io.ReadCloser, size int64, err error)
}

// Transfer is what one load moved to put its packages in place.
type Transfer struct {
	// Downloaded files and their bytes received over the network.
	Downloaded      int
	DownloadedBytes int64
	// ResumedBytes were adopted from an interrupted earlier download.
	ResumedBytes int64
	// Shared files arrived through another goroutine's or process's
	// download of the same blob.
	Shared int
}

func (t *Transfer) add(u Transfer) {
	t.Downloaded += u.Downloaded
	t.DownloadedBytes += u.DownloadedBytes
	t.ResumedBytes += u.ResumedBytes
	t.Shared += u.Shared
}

// source is the materialize.Source of one package load: the engine (with
// the load's signed-URL refresher), or the configured Fetcher streamed
// through the blob store. It counts what it moved.
func (c *Client) source(refresh refreshFunc) *countingSource {
	s := &countingSource{}
	if c.engine != nil {
		s.Source = engineSource{e: c.engine, offline: c.cfg.Offline, refresh: refresh, count: s.count}
	} else {
		s.Source = materialize.StreamSource(c.cache.Blobs, func(ctx context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
			body, size, err := c.fetcher.Open(ctx, a)
			if err == nil {
				s.count(Transfer{Downloaded: 1})
			}
			return body, size, err
		})
	}
	return s
}

type countingSource struct {
	materialize.Source
	mu sync.Mutex
	t  Transfer
}

func (s *countingSource) count(t Transfer) {
	s.mu.Lock()
	s.t.add(t)
	s.mu.Unlock()
}

func (s *countingSource) transfer() Transfer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// refreshFunc asks the provider again for the download URL of a file handle
// after storage refused an expired signed URL (401/403).
type refreshFunc func(ctx context.Context, handle string) (string, error)

func (r refreshFunc) forHandle(handle string) func(context.Context) (string, error) {
	if r == nil {
		return nil
	}
	return func(ctx context.Context) (string, error) { return r(ctx, handle) }
}

// engineSource is the download engine as a materialize.Source: parallel
// files and ranges, resume across processes, single flight, MD5 while
// streaming (so the blobs it publishes need no second read).
type engineSource struct {
	e       *download.Engine
	offline bool
	refresh refreshFunc
	count   func(Transfer)
}

func (s engineSource) EnsureBlobs(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error) {
	items := make([]download.Item, len(missing))
	for i, a := range missing {
		items[i] = download.Item{Name: a.FileHandle, URL: a.DownloadURL, MD5: a.MD5(), Refresh: s.refresh.forHandle(a.FileHandle)}
	}
	res, err := s.e.Batch(ctx, items)
	verified := make(map[string]fsx.FileID, len(res))
	for _, r := range res {
		if r.File.Ino != 0 {
			verified[r.MD5] = r.File
		}
		s.count(transferOf(r))
	}
	return verified, err
}

// FetchFile downloads an unhashed artifact to dest (retries, resume within
// the call, size check, private temp, no-replace rename).
func (s engineSource) FetchFile(ctx context.Context, a metadata.Artifact, dest string) error {
	if s.offline {
		return fmt.Errorf("download %q: %w (OFFLINE_MODE is on)", a.FileHandle, errdefs.ErrOffline)
	}
	r, err := s.e.DownloadFile(ctx, download.Item{Name: a.FileHandle, URL: a.DownloadURL, Dest: dest, Refresh: s.refresh.forHandle(a.FileHandle)})
	if err == nil {
		s.count(transferOf(r))
	}
	return err
}

func transferOf(r download.Result) Transfer {
	switch {
	case r.Cached:
		return Transfer{}
	case r.Shared:
		return Transfer{Shared: 1}
	}
	return Transfer{Downloaded: 1, DownloadedBytes: r.NetworkBytes, ResumedBytes: r.ReusedBytes}
}
