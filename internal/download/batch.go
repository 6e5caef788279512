package download

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
	"golang.org/x/sync/errgroup"
)

// Item is one file to fetch.
type Item struct {
	// Name is the file handle, used in messages and progress (the MD5 when empty).
	Name string
	// URL of the bytes. It is never logged or returned in errors beyond
	// scheme://host/path.
	URL string
	// MD5 is the expected lower-case hex MD5: required for blobs, optional
	// for plain files (verified when given).
	MD5 string
	// Size is the expected size in bytes; 0 means unknown (the HEAD probe
	// decides). A known size that the server contradicts fails the file.
	Size int64
	// Dest is the destination path of a plain file (DownloadFile); unused
	// for blobs, which go to shared-blobs/<MD5>.
	Dest string
	// Refresh, if set, returns a fresh URL after a 401/403 from storage (an
	// expired signed URL); it is called at most once per file.
	Refresh func(ctx context.Context) (string, error) `json:"-"`

	probed       *probeResult // Batch probed the size already
	spaceChecked bool         // Batch checked the free space for the whole batch
}

func (it Item) label() string {
	if it.Name != "" {
		return it.Name
	}
	if it.MD5 != "" {
		return it.MD5
	}
	return filepath.Base(it.Dest)
}

// Result describes one fetched (or already present) file.
type Result struct {
	Name string
	Path string
	MD5  string
	// SHA256 of the bytes, when this call computed it (empty for files that
	// were already present or when Tuning.SHA256 is off).
	SHA256 string
	Size   int64
	// Cached: the file was already present; nothing was fetched.
	Cached bool
	// Shared: another goroutine or process fetched it while we waited.
	Shared bool
	// NetworkBytes received and ReusedBytes adopted from an earlier,
	// interrupted download of the same blob.
	NetworkBytes, ReusedBytes int64
	// DirectBytes of this call's writes went straight to the disk (direct
	// I/O, Tuning.DirectIO), bypassing the page cache.
	DirectBytes int64
	// File is the identity of the blob this call verified and published
	// (zero when it was cached or shared).
	File fsx.FileID
}

// Batch fetches items, FilesInParallel at a time: blobs (MD5 set, Dest
// empty) through EnsureBlob, plain files (Dest set) through DownloadFile.
// Files already present are returned first without any network use (this
// works offline); if anything is missing while offline, Batch fails with
// *OfflineError before any request. The first failure stops files not yet
// started; running ones finish, except after a disk error (ENOSPC, EDQUOT,
// EROFS, EACCES), which aborts all of them at once. It returns the results
// in item order and the first error.
func (e *Engine) Batch(ctx context.Context, items []Item) ([]Result, error) {
	res := make([]Result, len(items))
	var todo []int
	for i, it := range items {
		r, ok, err := e.present(it)
		if err != nil {
			return res, err
		}
		if ok {
			res[i] = r
			continue
		}
		todo = append(todo, i)
	}
	if len(todo) == 0 {
		return res, nil
	}
	if e.offline {
		return res, &OfflineError{Name: items[todo[0]].label(), Missing: len(todo)}
	}
	items = slices.Clone(items) // probes and marks below stay ours
	if err := e.checkBatchSpace(ctx, items, todo); err != nil {
		return res, err
	}
	for _, i := range todo {
		items[i].spaceChecked = true
	}
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	var (
		mu       sync.Mutex
		firstErr error // guarded by mu
		g        errgroup.Group
	)
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return firstErr != nil
	}
	g.SetLimit(e.tune.FilesInParallel)
	for _, i := range todo {
		if stopped() || ctx.Err() != nil {
			break // files not started before the first failure stay so
		}
		g.Go(func() error {
			if stopped() {
				return nil
			}
			r, err := e.fetchItem(ctx, items[i])
			mu.Lock()
			defer mu.Unlock()
			res[i] = r
			if err != nil && firstErr == nil {
				firstErr = err
				var de *DiskError
				if errors.As(err, &de) {
					abort(err) // a full or read-only disk stops the running files too
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = context.Cause(ctx)
	}
	return res, firstErr
}

func (e *Engine) fetchItem(ctx context.Context, it Item) (Result, error) {
	if it.Dest != "" {
		return e.DownloadFile(ctx, it)
	}
	return e.EnsureBlob(ctx, it)
}

// present reports whether an item's target already exists as a regular
// file (blobs: trusted without hashing, as by the reference; they are
// re-hashed at materialization).
func (e *Engine) present(it Item) (Result, bool, error) {
	if it.Dest != "" {
		fi, err := os.Lstat(it.Dest)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return Result{}, false, nil
		case err != nil:
			return Result{}, false, err
		case fi.Mode().IsRegular():
			return Result{Name: it.label(), Path: it.Dest, MD5: it.MD5, Size: fi.Size(), Cached: true}, true, nil
		}
		// A symlink at a plain file's destination is followed like the
		// reference does ("is a file"), for the skip decision only.
		if st, err := os.Stat(it.Dest); err == nil && st.Mode().IsRegular() {
			return Result{Name: it.label(), Path: it.Dest, MD5: it.MD5, Size: st.Size(), Cached: true}, true, nil
		}
		return Result{}, false, nil
	}
	if err := blobstore.ValidateMD5(it.MD5); err != nil {
		return Result{}, false, fmt.Errorf("blob %q: %w", it.label(), err)
	}
	fi, err := e.blobs.Stat(it.MD5)
	if errors.Is(err, fs.ErrNotExist) {
		return Result{}, false, nil
	}
	if err != nil {
		return Result{}, false, err
	}
	p, _ := e.blobs.Path(it.MD5)
	return Result{Name: it.label(), Path: p, MD5: it.MD5, Size: fi.Size(), Cached: true}, true, nil
}
