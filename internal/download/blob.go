package download

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/lock"
)

// EnsureBlob makes shared-blobs/<it.MD5> exist with verified bytes and
// returns its path. An existing blob is used as is. Otherwise goroutines of
// this engine that want the same blob share one download (single flight),
// and processes share it through the blob lock: a waiter keeps waiting while
// the holder makes progress and takes over (resuming the holder's partial)
// if the holder dies. Published bytes always match size and MD5.
func (e *Engine) EnsureBlob(ctx context.Context, it Item) (Result, error) {
	if r, ok, err := e.present(it); ok || err != nil {
		return r, err
	}
	if e.offline {
		return Result{}, &OfflineError{Name: it.label(), Missing: 1}
	}
	if it.URL == "" {
		return Result{}, fmt.Errorf("blob %s (%s) is missing and has no download URL", it.MD5, it.label())
	}
	return e.join(ctx, it)
}

// flight is one in-process download of a blob, shared by every goroutine
// that asks for it. The last waiter to leave cancels it.
type flight struct {
	done   chan struct{}
	res    Result
	err    error
	refs   int
	cancel context.CancelCauseFunc
}

var errAllWaitersLeft = errors.New("every caller waiting for this download gave up")

func (e *Engine) join(ctx context.Context, it Item) (Result, error) {
	e.mu.Lock()
	f, shared := e.flights[it.MD5]
	if !shared {
		fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		e.flights[it.MD5] = f
		go func() {
			r, err := e.fetchBlob(fctx, it)
			e.mu.Lock()
			if e.flights[it.MD5] == f {
				delete(e.flights, it.MD5)
			}
			e.mu.Unlock()
			f.res, f.err = r, err
			close(f.done)
			cancel(nil)
		}()
	}
	f.refs++
	e.mu.Unlock()

	select {
	case <-f.done:
		r := f.res
		if shared {
			r.Shared = true
			r.NetworkBytes, r.ReusedBytes = 0, 0
		}
		return r, f.err
	case <-ctx.Done():
		e.mu.Lock()
		f.refs--
		last := f.refs == 0
		if last && e.flights[it.MD5] == f {
			// A caller arriving from now on starts afresh (and resumes this
			// flight's partial) instead of joining a cancelled flight.
			delete(e.flights, it.MD5)
		}
		e.mu.Unlock()
		if last {
			// Pass a disk-full abort on so the flight removes its temps.
			cause := context.Cause(ctx)
			var de *DiskError
			if !errors.As(cause, &de) {
				cause = fmt.Errorf("%w: %w", errAllWaitersLeft, cause)
			}
			f.cancel(cause)
			// Let it wind down (final journal checkpoint, close): when the
			// last caller returns, nothing of its download still writes.
			<-f.done
		}
		return Result{}, context.Cause(ctx)
	}
}

// fetchBlob is the cross-process part: lock (progress-aware), re-check,
// adopt or create a partial, download, commit.
func (e *Engine) fetchBlob(ctx context.Context, it Item) (res Result, err error) {
	name := it.label()
	fp := e.track(name, it.MD5, it.Size)
	defer func() { fp.finish(err) }()

	held, _, err := e.waitForBlob(ctx, it, fp)
	if err != nil {
		return Result{}, err
	}
	if held != nil {
		defer held.Unlock()
	}
	// Re-check under the lock, waited or not: another process may have
	// published the blob since our first look (download.md §2.2).
	r, ok, err := e.present(it)
	if err != nil {
		return Result{}, err
	}
	if ok {
		if held != nil {
			e.removeSuperseded(it.MD5)
		}
		r.Shared, r.Cached = true, false
		fp.setPhase(PhaseDone)
		return r, nil
	}
	return e.downloadBlob(ctx, it, fp, held)
}

// downloadBlob runs with the blob lock held (or, where locks are only
// hints, after giving up on it).
func (e *Engine) downloadBlob(ctx context.Context, it Item, fp *fileProgress, held *lock.Held) (Result, error) {
	name, safe := it.label(), safeURL(it.URL)
	fp.setPhase(PhaseResolving)
	pr := e.probeOnce(ctx, it)
	if err := ctx.Err(); err != nil {
		return Result{}, context.Cause(ctx)
	}
	size := pr.size
	if it.Size > 0 {
		if size >= 0 && size != it.Size {
			return Result{}, &SizeMismatchError{Name: name, URL: safe, Expected: it.Size, Actual: size}
		}
		if size < 0 {
			size = it.Size
			pr.ranges = false
		}
	}
	fp.setTotal(size)

	j := &job{e: e, name: name, safe: safe, fp: fp, guard: spaceGuard{dir: e.blobs.Dir()}, url: pr.url, etag: pr.etag, size: size, ranges: pr.ranges,
		wantMD5: true, wantSHA: e.tune.SHA256, refresh: it.Refresh, ckpt: make(chan struct{}, 1), ckptDone: make(chan struct{})}
	journaled := size >= e.tune.JournalMinSize && pr.ranges

	var adopted []journal.Range
	var token string
	if journaled {
		a, err := e.adopt(ctx, it.MD5, size, pr.etag, safe)
		if err != nil {
			return Result{}, err
		}
		if a != nil {
			j.f, token, adopted, j.algo = a.f, a.token, a.ranges, a.algo
			j.jpath = a.f.Name() + ".json"
			j.jtmpl = e.journalTemplate(it.MD5, safe, token)
			var reused int64
			for _, r := range adopted {
				reused += r.Last - r.First + 1
			}
			fp.reused.Store(reused)
			if reused > 0 && pr.etag != "" {
				j.ifRange = pr.etag
			}
			e.log.Info("resuming an interrupted download", "file", name, "blob", it.MD5, "reused_bytes", reused, "size", size)
		}
	}
	if j.algo == "" {
		j.algo = journal.XXH64
	}
	if j.f == nil && journaled {
		// Journal first, then the data file: a crash in between leaves an
		// orphan journal (removed by the next adopter), never a partial
		// that nobody can adopt.
		var err error
		if token, err = newToken(); err != nil {
			return Result{}, err
		}
		e.setToken(token, true)
		data := filepath.Join(e.blobs.Dir(), "."+it.MD5+".partial-"+token)
		j.jpath = data + ".json"
		j.jtmpl = e.journalTemplate(it.MD5, safe, token)
		if err := j.checkpoint(true); err != nil {
			os.Remove(j.jpath)
			e.log.Warn("cannot write resume journal; continuing without cross-process resume", "file", name, "err", err)
			j.jpath = ""
		}
		f, err := createExclusive(data)
		if err != nil {
			if j.jpath != "" {
				os.Remove(j.jpath)
			}
			e.setToken(token, false)
			return Result{}, e.diskOrPlain(err, data)
		}
		j.f = f
	}
	if j.f == nil {
		f, err := e.blobs.CreatePartial(it.MD5)
		if err != nil {
			return Result{}, e.diskOrPlain(err, e.blobs.Dir())
		}
		j.f = f
		token = partialToken(f.Name())
		e.setToken(token, true)
	}
	defer e.setToken(token, false)
	partial := j.f.Name()
	cleanup := func() {
		j.f.Close()
		os.Remove(partial)
		if j.jpath != "" {
			os.Remove(j.jpath)
		}
	}
	if err := e.preparePartial(j.f, size); err != nil {
		cleanup()
		return Result{}, err
	}
	if err := e.checkItemSpace(it, e.blobs.Dir(), size-fp.reused.Load()); err != nil {
		cleanup()
		return Result{}, err
	}
	j.mu.Lock()
	j.plan(adopted)
	j.mu.Unlock()

	t0 := time.Now()
	s, err := j.download(ctx)
	tDown := time.Since(t0)
	dg := j.diagnostics()
	tLast := dg.lastByte.Sub(t0)
	if err != nil {
		if keepPartial(ctx, err) && j.jpath != "" {
			if cerr := j.checkpoint(true); cerr == nil {
				j.f.Close()
				e.log.Info("download interrupted; its partial is kept for resumption", "file", name, "blob", it.MD5,
					"done_bytes", j.doneBytes(), "err", err.Error())
				return Result{}, err
			}
		}
		cleanup()
		return Result{}, err
	}
	if err := j.f.Close(); err != nil {
		cleanup()
		return Result{}, err
	}
	fp.setPhase(PhasePublishing)
	opts := []blobfs.OpOption{}
	if held != nil {
		opts = append(opts, blobfs.WithHeldLock(held))
	}
	pres, err := e.blobs.Commit(ctx, it.MD5, partial, s.size, &blobfs.Digests{MD5: s.md5, SHA256: s.sha256}, opts...)
	if j.jpath != "" {
		// Commit consumed the partial on every outcome; the journal goes too
		// (download.md §2.7 step 8).
		os.Remove(j.jpath)
	}
	if err != nil {
		return Result{}, convertCommitError(err, name, safe)
	}
	e.log.Debug("blob published", "file", name, "blob", it.MD5, "size", s.size, "last_byte", tLast, "transfer_and_hash", tDown,
		"hashing", dg.hashBusy, "stream_pauses", dg.pauses, "commit", time.Since(t0)-tDown, "network_bytes", fp.network.Load(), "reused_bytes", fp.reused.Load(), "direct_bytes", dg.direct, "hedges", dg.hedges)
	if pres.Published {
		e.writeVerified(it.MD5, pres)
	}
	if held != nil {
		e.removeSuperseded(it.MD5)
	}
	fp.setPhase(PhaseDone)
	return Result{Name: name, Path: pres.Path, MD5: it.MD5, SHA256: s.sha256, Size: s.size,
		Shared: !pres.Published, NetworkBytes: fp.network.Load(), ReusedBytes: fp.reused.Load(),
		DirectBytes: dg.direct, File: pres.File}, nil
}

func (e *Engine) journalTemplate(md5, safe, token string) journal.File {
	return journal.File{Version: journal.Version, MD5: md5, URLPath: safe,
		Owner: e.owner(token)}
}

// keepPartial: interruptions that a later run can resume from keep the
// partial and its journal; content and disk failures do not.
func keepPartial(ctx context.Context, err error) bool {
	var de *DiskError
	if errors.As(err, &de) || errors.As(context.Cause(ctx), &de) {
		return false
	}
	if ctx.Err() != nil {
		return true
	}
	var re *RetryError
	var se *StallError
	return errors.As(err, &re) || errors.As(err, &se)
}

// preparePartial sizes the partial (sparse) so ranges can be written at
// their offsets.
func (e *Engine) preparePartial(f *os.File, size int64) error {
	if e.hooks.wrapPartial != nil {
		if err := e.hooks.wrapPartial(f); err != nil {
			return e.diskOrPlain(err, f.Name())
		}
	}
	if size <= 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() != size {
		if err := f.Truncate(size); err != nil {
			return e.diskOrPlain(err, f.Name())
		}
	}
	return nil
}

func (e *Engine) diskOrPlain(err error, path string) error {
	if isDiskFatal(err) {
		return &DiskError{Path: path, Op: "create", Err: err}
	}
	return err
}

func partialToken(path string) string {
	base := filepath.Base(path)
	const marker = ".partial-"
	for i := len(base) - len(marker); i >= 0; i-- {
		if base[i:i+len(marker)] == marker {
			return base[i+len(marker):]
		}
	}
	return base
}
