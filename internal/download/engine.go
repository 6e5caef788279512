package download

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

// Engine downloads files for one cache root. It is safe for concurrent use;
// a process should use one Engine (single flight and the stream budget are
// per Engine).
type Engine struct {
	tune     Tuning
	offline  bool
	blobs    *blobfs.Store
	locks    *lock.Locker
	client   *http.Client
	log      *slog.Logger
	observer Observer
	obsMu    sync.Mutex
	metaDir  string // H/.meta/verified; "" disables the records

	host, startTime string
	pid             int
	unreliableLocks bool // shared-blobs is on a filesystem where flock may be a no-op

	streams  chan struct{} // global stream budget
	bufs     sync.Pool
	keptPeak atomic.Int64 // most bytes any job held for its hash followers

	mu      sync.Mutex
	flights map[string]*flight
	tokens  map[string]bool // partial tokens this engine is writing
	rates   []float64       // throughput of recently completed parts (B/s)
	files   map[*fileProgress]struct{}
	ticking bool

	hooks testHooks
}

// testHooks let in-package tests inject faults that the real world produces
// rarely (a full disk); nil hooks do nothing.
type testHooks struct {
	wrapPartial func(*os.File) error               // called on each new partial; an error fails it
	writeErr    func(path string, off int64) error // called before each write; an error replaces it
	directErr   func(off int64) error              // called before each direct write; an error replaces it
	beforeHash  func()                             // called before a follower hashes a kept chunk
}

// Option configures New.
type Option func(*Engine)

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(e *Engine) { e.log = l } }

// WithObserver receives progress events (default: none, library mode).
func WithObserver(o Observer) Option { return func(e *Engine) { e.observer = o } }

// WithTuning adjusts the defaults derived from the configuration.
func WithTuning(fn func(*Tuning)) Option { return func(e *Engine) { fn(&e.tune) } }

// WithHTTPClient replaces the client from NewClient. Only for tests and
// special transports: the offline guarantee then rests on the engine's own
// guard alone (it never sends a request while offline).
func WithHTTPClient(c *http.Client) Option { return func(e *Engine) { e.client = c } }

// WithoutVerifiedRecords disables writing H/.meta/verified/<md5>.
func WithoutVerifiedRecords() Option { return func(e *Engine) { e.metaDir = "" } }

// New returns an engine that publishes blobs into blobs, using locks (the
// same Locker the blob store was opened with) for blob locks.
func New(cfg config.Config, blobs *blobfs.Store, locks *lock.Locker, opts ...Option) (*Engine, error) {
	if blobs == nil || locks == nil {
		return nil, errors.New("download.New: blob store and locker are required")
	}
	e := &Engine{
		tune:    DefaultTuning(cfg),
		offline: cfg.Offline,
		blobs:   blobs,
		locks:   locks,
		log:     slog.Default(),
		metaDir: filepath.Join(filepath.Dir(blobs.Dir()), ".meta", "verified"),
		pid:     os.Getpid(),
		flights: map[string]*flight{},
		tokens:  map[string]bool{},
		files:   map[*fileProgress]struct{}{},
	}
	for _, o := range opts {
		o(e)
	}
	e.tune = e.tune.withDefaults()
	if e.client == nil {
		o := TransportOptionsFrom(cfg)
		o.ConnectTimeout = cfg.ChunkConnectTimeout
		e.client = NewClient(o)
	}
	e.host, _ = os.Hostname()
	e.startTime = processStartTime(e.pid)
	e.streams = make(chan struct{}, e.tune.GlobalStreams)
	bs := e.tune.BufferSize
	e.bufs.New = func() any { b := alignedBuf(bs); return &b }
	if !e.offline {
		if magic, err := fsMagic(blobs.Dir()); err == nil && unreliableLockFS(magic) {
			e.unreliableLocks = true
			e.log.Info("flock may not exclude other hosts on this filesystem; blob locks are hints, waits are capped at the lock timeout",
				"dir", blobs.Dir(), "fs_magic", fmt.Sprintf("%#x", magic))
		}
	}
	return e, nil
}

// Tuning returns the engine's effective tuning.
func (e *Engine) Tuning() Tuning { return e.tune }

// Client returns the engine's HTTP client (offline-guarded when the
// configuration is offline).
func (e *Engine) Client() *http.Client { return e.client }

func (e *Engine) getBuf() *[]byte  { return e.bufs.Get().(*[]byte) }
func (e *Engine) putBuf(b *[]byte) { e.bufs.Put(b) }

func (e *Engine) acquireStream(ctx context.Context) error {
	select {
	case e.streams <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (e *Engine) releaseStream() { <-e.streams }

func (e *Engine) recordPartRate(n int64, d time.Duration) {
	if n < 100<<10 || d <= 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rates = append(e.rates, float64(n)/d.Seconds())
	if len(e.rates) > 30 {
		e.rates = e.rates[len(e.rates)-30:]
	}
}

func (e *Engine) partRateMedian() float64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.rates) < 5 {
		return 0
	}
	return median(e.rates)
}

func (e *Engine) tokenActive(t string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokens[t]
}

func (e *Engine) setToken(t string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if on {
		e.tokens[t] = true
	} else {
		delete(e.tokens, t)
	}
}

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
	if err := e.checkSpaceFor(items, todo); err != nil {
		return res, err
	}
	ctx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	var (
		mu       sync.Mutex
		firstErr error
		stopped  bool
		wg       sync.WaitGroup
	)
	next := make(chan int)
	for range min(e.tune.FilesInParallel, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				mu.Lock()
				skip := stopped
				mu.Unlock()
				if skip {
					continue // not started before the first failure
				}
				r, err := e.fetchItem(ctx, items[i])
				mu.Lock()
				res[i] = r
				if err != nil && firstErr == nil {
					firstErr = err
					stopped = true
					var de *DiskError
					if errors.As(err, &de) {
						abort(err)
					}
				}
				mu.Unlock()
			}
		}()
	}
	for _, i := range todo {
		mu.Lock()
		s := stopped
		mu.Unlock()
		if s || ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
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
			e.removeDeadPartials(it.MD5)
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
	name, safe := it.label(), SafeURL(it.URL)
	fp.setPhase(PhaseResolving)
	pr := e.probe(ctx, it.URL)
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

	j := &job{e: e, name: name, safe: safe, fp: fp, url: pr.url, etag: pr.etag, size: size, ranges: pr.ranges,
		wantMD5: true, wantSHA: e.tune.SHA256, refresh: it.Refresh, ckpt: make(chan struct{}, 1)}
	journaled := size >= e.tune.JournalMinSize && pr.ranges

	var adopted []journalRange
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
		j.algo = hashXXH64
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
	if err := e.checkSpace(e.blobs.Dir(), size, fp.reused.Load()); err != nil {
		cleanup()
		return Result{}, err
	}
	j.mu.Lock()
	j.plan(adopted)
	j.mu.Unlock()

	t0 := time.Now()
	s, err := j.download(ctx)
	tDown := time.Since(t0)
	tLast := time.Duration(j.lastByte.Load() - t0.UnixNano())
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
		"hashing", time.Duration(j.hashBusy.Load()), "stream_pauses", time.Duration(j.pausedTotal.Load()), "commit", time.Since(t0)-tDown, "network_bytes", fp.network.Load(), "reused_bytes", fp.reused.Load(), "direct_bytes", j.direct.Load(), "hedges", j.hedges.Load())
	if pres.Published {
		e.writeVerified(it.MD5, pres)
	}
	fp.setPhase(PhaseDone)
	return Result{Name: name, Path: pres.Path, MD5: it.MD5, SHA256: s.sha256, Size: s.size,
		Shared: !pres.Published, NetworkBytes: fp.network.Load(), ReusedBytes: fp.reused.Load(),
		DirectBytes: j.direct.Load(), File: pres.File}, nil
}

func (e *Engine) journalTemplate(md5, safe, token string) journalFile {
	return journalFile{Version: journalVersion, MD5: md5, URLPath: safe,
		Owner: journalOwner{Host: e.host, PID: e.pid, StartTime: e.startTime, Token: token}}
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

// adoption is a dead owner's partial claimed by us.
type adoption struct {
	f      *os.File
	token  string
	ranges []journalRange
	algo   string
}

// adopt looks for partials of md5 left by dead owners (download.md §3 rule
// 3), claims the most advanced one and re-verifies its recorded ranges.
// Partials of live owners are never touched.
func (e *Engine) adopt(ctx context.Context, md5 string, size int64, etag, safe string) (*adoption, error) {
	dir := e.blobs.Dir()
	paths, _ := filepath.Glob(filepath.Join(dir, "."+md5+".partial-*.json"))
	type cand struct {
		jpath, data string
		j           *journalFile
	}
	var cands []cand
	for _, jp := range paths {
		if k, m := blobfs.Classify(filepath.Base(jp)); k != blobfs.KindJournal || m != md5 {
			continue
		}
		jf, err := readJournal(jp)
		if err != nil {
			e.log.Debug("ignoring unreadable resume journal", "journal", jp, "err", err)
			continue
		}
		if e.ownerAlive(jf.Owner, jf.heartbeat()) {
			continue
		}
		data := jp[:len(jp)-len(".json")]
		fi, err := os.Lstat(data)
		if errors.Is(err, fs.ErrNotExist) {
			removeJournal(jp) // orphan: its data was published or claimed
			continue
		}
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if jf.MD5 != md5 || jf.Size != size || (jf.ETag != "" && etag != "" && jf.ETag != etag) {
			e.log.Info("discarding a stale partial (size or ETag changed)", "blob", md5, "partial", data)
			os.Remove(data)
			removeJournal(jp)
			continue
		}
		cands = append(cands, cand{jp, data, jf})
	}
	if len(cands) == 0 {
		return nil, nil
	}
	sort.Slice(cands, func(a, b int) bool { return cands[a].j.doneBytes() > cands[b].j.doneBytes() })
	for _, c := range cands[1:] {
		os.Remove(c.data)
		removeJournal(c.jpath)
	}
	best := cands[0]
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	e.setToken(token, true)
	claimed := false
	defer func() {
		if !claimed {
			e.setToken(token, false)
		}
	}()
	data := filepath.Join(dir, "."+md5+".partial-"+token)
	jpath := data + ".json"
	// Journal first, then the rename, then the old journal: a crash between
	// any two steps leaves either the old pair or the new pair usable.
	nj := *best.j
	nj.Owner = journalOwner{Host: e.host, PID: e.pid, StartTime: e.startTime, Token: token}
	if err := writeJournal(jpath, &nj); err != nil {
		return nil, nil
	}
	// A dead process on this host holds no descriptor of the old file, so
	// renaming it is as safe as copying it. A partial from another host may
	// still have a live (zombie) writer: copy it into our own file instead.
	var f *os.File
	if best.j.Owner.Host == e.host {
		if err := renameNoReplace(best.data, data); err != nil {
			os.Remove(jpath)
			return nil, nil
		}
		f, err = openPartial(data)
	} else {
		f, err = copyPartial(ctx, best.data, data)
	}
	if err != nil {
		os.Remove(data)
		os.Remove(jpath)
		return nil, nil
	}
	removeJournal(best.jpath)
	if best.j.Owner.Host != e.host {
		os.Remove(best.data)
	}
	// Re-hash every recorded range; a mismatch is fetched again.
	algo := best.j.RangeHash
	if algo == "" {
		algo = hashSHA256
	}
	bp := e.getBuf()
	defer e.putBuf(bp)
	var good []journalRange
	for _, r := range best.j.RangesDone {
		if err := ctx.Err(); err != nil {
			f.Close()
			return nil, context.Cause(ctx)
		}
		h, err := hashFileRange(f, r.First, r.Last, algo, *bp)
		if err != nil || h != r.Hash {
			e.log.Warn("adopted range does not match its recorded hash; fetching it again", "blob", md5,
				"first", r.First, "last", r.Last)
			continue
		}
		good = append(good, r)
	}
	claimed = true
	return &adoption{f: f, token: token, ranges: good, algo: algo}, nil
}

// removeDeadPartials removes partials and journals of md5 whose owners are
// dead, once the blob is published (e.g. a process killed between its
// rename and its journal delete). Called with the blob lock held.
func (e *Engine) removeDeadPartials(md5 string) {
	paths, _ := filepath.Glob(filepath.Join(e.blobs.Dir(), "."+md5+".partial-*.json"))
	for _, jp := range paths {
		if k, m := blobfs.Classify(filepath.Base(jp)); k != blobfs.KindJournal || m != md5 {
			continue
		}
		jf, err := readJournal(jp)
		if err != nil || e.ownerAlive(jf.Owner, jf.heartbeat()) {
			continue
		}
		os.Remove(jp[:len(jp)-len(".json")])
		removeJournal(jp)
	}
}

// removeJournal removes a dead owner's journal and the temp files of an
// atomic rewrite it was killed in (".<journal>.<rand8>.tmp").
func removeJournal(jp string) {
	os.Remove(jp)
	dir, base := filepath.Split(jp)
	tmps, _ := filepath.Glob(filepath.Join(dir, "."+base+".*.tmp"))
	for _, t := range tmps {
		if final, ok := fsx.ParseAtomicTempName(filepath.Base(t)); ok && final == base {
			os.Remove(t)
		}
	}
}

// writeVerified records .meta/verified/<md5> (on-disk contract §12).
func (e *Engine) writeVerified(md5 string, r blobfs.PutResult) {
	if e.metaDir == "" || r.SHA256 == "" {
		return
	}
	if err := writeVerifiedRecord(e.metaDir, md5, r); err != nil {
		e.log.Debug("cannot write verified record", "blob", md5, "err", err)
	}
}
