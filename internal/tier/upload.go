package tier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/tier/s3store"
)

// uploader runs background uploads: a fixed pool of workers, and a bounded
// number of offers accepted but not finished (workers + queue). Offer never
// blocks: when every slot is taken the offer is dropped and counted.
type uploader struct {
	t       *Tier
	workers int
	slots   chan struct{} // one token per accepted, unfinished upload
	jobs    chan upload
	start   sync.Once
	wg      sync.WaitGroup
	ctx     context.Context // uploads run under it; Close cancels it at its bound
	cancel  context.CancelFunc

	mu      sync.Mutex
	closed  bool
	pending map[string]bool // md5s accepted and unfinished (no duplicate uploads)

	warnedDrop atomic.Bool
}

type upload struct {
	md5, path string
	size      int64
	ticket    Ticket
}

func (u *uploader) init(t *Tier, workers, queue int) {
	u.t, u.workers = t, max(workers, 1)
	n := u.workers + max(queue, 0)
	u.slots = make(chan struct{}, n)
	u.jobs = make(chan upload, n)
	u.pending = map[string]bool{}
	u.ctx, u.cancel = context.WithCancel(context.Background())
}

// Offer queues an upload of the local file at path, which the caller has
// just verified to be blob md5 of size bytes (after an origin download).
// It returns at once: true when the upload is queued (or already is),
// false when the tier is disabled or closed, its write breaker is open, or
// the queue is full (the offer is dropped and counted). The upload
// re-checks size and MD5 of the file as it streams it and uploads nothing
// that does not match; an object that exists already is not uploaded again,
// unless this process found it corrupt.
func (t *Tier) Offer(md5, path string, size int64) bool {
	if t == nil || t.off != nil || blobstore.ValidateMD5(md5) != nil || size < 0 || size > t.store.MaxObjectBytes() {
		return false
	}
	u := &t.up
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	if u.pending[md5] {
		return true
	}
	tk, ok := t.write.Admit()
	if !ok {
		return false
	}
	select {
	case u.slots <- struct{}{}:
	default:
		t.write.Release(tk)
		t.metrics.UploadDrops.Inc()
		if !u.warnedDrop.Swap(true) {
			t.log.Warn("blob tier upload queue full; dropping uploads (counted in modelcache_tier_upload_drops_total)",
				"workers", u.workers, "queue", cap(u.slots)-u.workers)
		} else {
			t.log.Debug("blob tier upload dropped: queue full", "blob", md5)
		}
		return false
	}
	u.start.Do(func() {
		for range u.workers {
			u.wg.Add(1)
			go u.work()
		}
	})
	u.pending[md5] = true
	u.jobs <- upload{md5: md5, path: path, size: size, ticket: tk} // never blocks: len(jobs) < cap(slots)
	return true
}

func (u *uploader) work() {
	defer u.wg.Done()
	for j := range u.jobs {
		u.run(j)
		u.mu.Lock()
		delete(u.pending, j.md5)
		u.mu.Unlock()
		<-u.slots
	}
}

func (u *uploader) run(j upload) {
	t := u.t
	m := t.metrics
	if u.ctx.Err() != nil {
		t.write.Release(j.ticket)
		m.Uploads.WithLabelValues(UploadAbandoned).Inc()
		return
	}
	res, err := t.uploadFile(u.ctx, j.md5, j.path, j.size, t.isDistrusted(j.md5))
	var re *s3store.RequestError
	switch {
	case err == nil:
		t.write.Success(j.ticket)
		if res.Existed {
			m.Uploads.WithLabelValues(UploadExisted).Inc()
		} else {
			m.Uploads.WithLabelValues(UploadStored).Inc()
			m.UploadBytes.Add(float64(res.Bytes))
			t.trust(j.md5)
			t.log.Debug("blob uploaded to the tier", "blob", j.md5, "bytes", res.Bytes, "parts", res.Parts)
		}
	case u.ctx.Err() != nil:
		t.write.Release(j.ticket)
		m.Uploads.WithLabelValues(UploadAbandoned).Inc()
	case errors.Is(err, fs.ErrNotExist):
		// Evicted between the offer and the upload: a local race, nothing
		// about the tier's health (as in the reference).
		t.write.Release(j.ticket)
		m.Uploads.WithLabelValues(UploadLocalGone).Inc()
		t.log.Debug("blob gone before its upload", "blob", j.md5, "path", j.path)
	case errors.As(err, &re):
		t.failed(t.write, j.ticket, err)
		m.Uploads.WithLabelValues(UploadFailed).Inc()
		t.log.Debug("blob tier upload failed", "blob", j.md5, "err", err.Error())
	default:
		// The local file is not the blob (or cannot be read): nothing was
		// published, and the tier is not to blame.
		t.write.Release(j.ticket)
		m.Uploads.WithLabelValues(UploadLocalMismatch).Inc()
		t.log.Warn("local blob not uploaded to the tier: it does not match its name (run `modelcache verify`)",
			"blob", j.md5, "path", j.path, "err", err.Error())
	}
}

// uploadFile streams the file at path into the bucket through Put's
// verification: size and MD5 are re-checked as the bytes go, and a
// mismatch publishes nothing. replace rewrites an existing object.
func (t *Tier) uploadFile(ctx context.Context, md5, path string, size int64, replace bool) (s3store.PutResult, error) {
	f, err := fsx.OpenNoFollow(path)
	if err != nil {
		return s3store.PutResult{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return s3store.PutResult{}, err
	}
	if !fi.Mode().IsRegular() {
		return s3store.PutResult{}, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() != size {
		return s3store.PutResult{}, fmt.Errorf("%s has %d bytes, blob %s %d: %w", path, fi.Size(), md5, size, errdefs.ErrDigestMismatch)
	}
	if replace {
		return t.store.Replace(ctx, md5, f, size)
	}
	return t.store.PutDetailed(ctx, md5, f, size)
}

// DrainError: Close's bound ran out with uploads unfinished; they were
// cancelled (a started multipart upload is aborted in the background).
type DrainError struct {
	Unfinished int
	Waited     time.Duration
}

func (e *DrainError) Error() string {
	return fmt.Sprintf("blob tier: %d upload(s) unfinished after waiting %s (%s); abandoned", e.Unfinished, e.Waited, "MODELCACHE_BLOB_CACHE_EXIT_WAIT_SECONDS")
}

// Close stops accepting offers and waits for the queued and running
// uploads, at most ExitWait (MODELCACHE_BLOB_CACHE_EXIT_WAIT_SECONDS) and
// no longer than ctx allows; what is unfinished then is cancelled and
// reported as a *DrainError. Close returns at the bound, whatever the
// uploads do. Closing twice is fine.
func (t *Tier) Close(ctx context.Context) error {
	if t == nil || t.off != nil {
		return nil
	}
	u := &t.up
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	close(u.jobs)
	u.mu.Unlock()

	done := make(chan struct{})
	go func() { u.wg.Wait(); close(done) }()
	start := time.Now()
	timer := time.NewTimer(t.cfg.ExitWait)
	defer timer.Stop()
	select {
	case <-done:
		u.cancel()
		return nil
	case <-timer.C:
	case <-ctx.Done():
	}
	u.cancel()
	n := len(u.slots)
	if n == 0 {
		return nil
	}
	err := &DrainError{Unfinished: n, Waited: time.Since(start).Round(time.Millisecond)}
	t.log.Warn("blob tier uploads abandoned at exit", "unfinished", n, "waited", err.Waited)
	return err
}
