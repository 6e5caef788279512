package download

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Internal verdicts of one attempt; runPart and download turn them into
// retries, restarts or typed errors.
var (
	errStalled      = errors.New("stream stalled")
	errSlow         = errors.New("stream much slower than its siblings")
	errHedgeLost    = errors.New("the other request for this part finished it first")
	errRangeIgnored = errors.New("server answered a ranged request with the whole file")
	errStale        = errors.New("object changed since the partial was written (If-Range answered 200)")
	errRange416     = errors.New("range not satisfiable (416)")
	errNoResume     = errors.New("connection lost and the server does not support ranges; restarting from byte 0")
	errChanged      = errors.New("object size changed during the download")
)

// statusError is a retryable status.
type statusError struct {
	code       int
	retryAfter time.Duration
	hasRA      bool
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// authError is 401/403 from storage: usually an expired signed URL.
type authError struct {
	code int
	url  string // the URL that was refused
}

func (e *authError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// protocolError: a response that does not match the request (wrong
// Content-Range, wrong Content-Length). Retried like a network error.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

// part is a byte range [start, end) of the file that one stream owns at a
// time. Parts tile the file and stay sorted by start.
type part struct {
	start, end int64 // end < 0: until EOF (size unknown)
	cur        int64 // [start, cur) is written
	reserved   int64 // cur plus a write in flight: a split never cuts below it
	active     bool
	done       bool
	h          rangeHasher // journal range hash of [start, cur); nil without journal
	sum        string
	began      time.Time
	hedged     bool       // a second request was sent for its rest
	wmu        sync.Mutex // serializes writes of the part's streams (two when hedged)
}

// stream is one response body being read, watched for stalls and slowness.
type stream struct {
	p       *part
	started int64 // unix nanos
	last    atomic.Int64
	bytes   atomic.Int64
	cancel  context.CancelCauseFunc
	// Paused by hash backpressure: neither a stall nor slowness.
	paused      atomic.Bool
	pausedNanos atomic.Int64
	job         *job
}

func (s *stream) pause() time.Time {
	s.paused.Store(true)
	return time.Now()
}

func (s *stream) resume(since time.Time) {
	now := time.Now()
	s.pausedNanos.Add(int64(now.Sub(since)))
	if s.job != nil {
		s.job.pausedTotal.Add(int64(now.Sub(since)))
	}
	s.last.Store(now.UnixNano())
	s.paused.Store(false)
}

// activeAge is the stream's age minus the time it was paused.
func (s *stream) activeAge(now int64) time.Duration {
	return time.Duration(now - s.started - s.pausedNanos.Load())
}

// sums are the digests the followers computed.
type sums struct {
	md5, sha256 string
	size        int64
}

// job downloads one file into an open partial with parallel ranges.
type job struct {
	e      *Engine
	name   string
	safe   string // scheme://host/path of the original URL
	f      *os.File
	fp     *fileProgress
	single bool // never split (size unknown, small, or after a range fallback)

	wantMD5, wantSHA bool

	// journal (nil path: none)
	jpath string
	jtmpl journalFile
	algo  string

	lead int64 // throttle window; 0: none

	refresh   func(ctx context.Context) (string, error)
	refreshMu sync.Mutex
	refreshed bool // guarded by refreshMu

	mu      sync.Mutex
	url     string
	etag    string
	size    int64 // -1: unknown
	ranges  bool  // the server honours byte ranges
	ifRange string
	parts   []*part
	streams map[*stream]struct{}
	stalls  int

	wakeMD5, wakeSHA chan struct{}
	// Hash followers' positions (-1: no such follower) and a channel
	// closed and replaced whenever one advances (backpressure waits on it).
	hashedMD5, hashedSHA atomic.Int64
	hashWait             chan struct{}
	hashBusy             atomic.Int64 // ns the followers spent hashing (diagnostics)
	lastByte             atomic.Int64 // unix ns of the last write (diagnostics)
	pausedTotal          atomic.Int64 // ns streams waited for the hashers (diagnostics)
	ckpt                 chan struct{}
	lastJournal          string // last journal content written (skip identical rewrites)
	lastJournalAt        time.Time

	dio       *os.File         // O_DIRECT descriptor for aligned blocks (nil: page cache only)
	direct    atomic.Int64     // bytes written through dio
	followers int              // hash followers of the current run
	chunks    map[int64]*chunk // written data kept for the followers, by offset
	partRates []float64        // B/s of this file's completed parts
	changed   chan struct{}    // closed and replaced when a part completes
	hedges    atomic.Int64     // second requests sent
	kept      atomic.Int64     // bytes of chunks held for the followers
}

// plan lays out parts over [0, size), skipping the done ranges (sorted,
// non-overlapping), which become done parts.
func (j *job) plan(done []journalRange) {
	t := j.e.tune
	j.parts = nil
	if j.size < 0 {
		j.single = true
		j.parts = []*part{{start: 0, end: -1}}
		j.setLead(0)
		j.initHashers()
		return
	}
	if j.size < t.RangeThreshold || !j.ranges {
		j.single = true
	}
	step := t.partSize(j.size)
	if j.single {
		step = max(j.size, 1)
	}
	j.setLead(step)
	add := func(a, b int64) {
		for a < b {
			e := min(b, a+step)
			// Avoid a runt tail: fold a last piece smaller than a quarter part.
			if b-e < step/4 {
				e = b
			}
			j.parts = append(j.parts, &part{start: a, end: e, cur: a, reserved: a})
			a = e
		}
	}
	pos := int64(0)
	for _, r := range done {
		if r.First > pos {
			add(pos, r.First)
		}
		j.parts = append(j.parts, &part{start: r.First, end: r.Last + 1, cur: r.Last + 1, reserved: r.Last + 1, done: true, sum: r.Hash})
		pos = r.Last + 1
	}
	if pos < j.size {
		add(pos, j.size)
	}
	if j.size == 0 {
		j.parts = []*part{{start: 0, end: 0, done: true}}
	}
	j.initHashers()
}

// setLead sets the hash backpressure window. It also bounds the buffers
// kept in memory for the followers, so a single stream gets one too.
func (j *job) setLead(step int64) {
	t := j.e.tune
	switch {
	case t.HashLead <= 0:
		j.lead = 0
	case j.single:
		j.lead = t.HashLead
	default:
		// Room for every stream's part, so that a network-bound download
		// never waits for the hashers.
		j.lead = max(t.HashLead, int64(t.StreamsPerFile)*step*3/2)
	}
}

func (j *job) initHashers() {
	for _, p := range j.parts {
		if j.jpath != "" && !p.done {
			p.h = newRangeHasher(j.algo)
			p.sum = ""
		}
	}
}

// watermark returns the end of the contiguous written prefix and whether
// the whole file is written.
func (j *job) watermark() (int64, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.watermarkLocked()
}

func (j *job) watermarkLocked() (int64, bool) {
	var w int64
	for _, p := range j.parts {
		if p.start != w {
			break
		}
		w = p.cur
		if p.end < 0 || p.cur < p.end {
			return w, false
		}
	}
	return w, j.size >= 0 && w >= j.size
}

func (j *job) doneBytes() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	var n int64
	for _, p := range j.parts {
		n += p.cur - p.start
	}
	return n
}

func (j *job) wake() {
	for _, c := range []chan struct{}{j.wakeMD5, j.wakeSHA} {
		if c != nil {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// download runs the file to completion, restarting it as a whole when a
// range fallback, a 416 or a stale adopted partial calls for it.
func (j *job) download(ctx context.Context) (sums, error) {
	defer j.openDirectFor()()
	var rangeFallback, restarts int
	for {
		s, err := j.runOnce(ctx)
		if err == nil {
			return s, nil
		}
		switch {
		case errors.Is(err, errRangeIgnored) && rangeFallback == 0:
			rangeFallback++
			j.e.log.Warn("server ignores byte ranges; fetching the file as one stream", "file", j.name, "url", j.safe)
			j.mu.Lock()
			j.ranges, j.single, j.ifRange = false, true, ""
			if j.jpath != "" {
				// Without ranges nothing can be resumed: no journal.
				os.Remove(j.jpath)
				j.jpath = ""
			}
			j.plan(nil)
			j.mu.Unlock()
			continue
		case errors.Is(err, errRangeIgnored):
			return sums{}, err
		case errors.Is(err, errStale), errors.Is(err, errRange416), errors.Is(err, errChanged), errors.Is(err, errNoResume):
			restarts++
			if restarts > j.e.tune.MaxAttempts {
				return sums{}, &RetryError{Name: j.name, URL: j.safe, Attempts: restarts, Err: err}
			}
			j.e.log.Warn("restarting download from byte 0", "file", j.name, "url", j.safe, "reason", err.Error())
			if errors.Is(err, errNoResume) {
				if e := sleepCtx(ctx, backoff(j.e.tune.BackoffUnit, restarts)); e != nil {
					return sums{}, e
				}
			}
			j.mu.Lock()
			j.ifRange = ""
			if errors.Is(err, errChanged) {
				j.size = -1
			}
			j.plan(nil)
			j.mu.Unlock()
			continue
		}
		if rangeFallback > 0 {
			var ri *RangeNotSupportedError
			if !errors.As(err, &ri) && ctx.Err() == nil {
				err = &RangeNotSupportedError{Name: j.name, URL: j.safe, Status: http.StatusOK, Fallback: err}
			}
		}
		return sums{}, err
	}
}

// runOnce runs the current plan: workers over parts, hash followers on the
// watermark, the journal checkpointer and the stall watchdog.
func (j *job) runOnce(ctx context.Context) (sums, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()

	var (
		fwg      sync.WaitGroup
		mh, sh   hash.Hash
		followMu sync.Mutex
		followE  error
	)
	follow := func(h hash.Hash, wake chan struct{}, pos *atomic.Int64) {
		defer fwg.Done()
		if err := j.follow(ctx, h, wake, pos); err != nil {
			followMu.Lock()
			followE = err
			followMu.Unlock()
			cancel(err)
		}
	}
	j.dropChunks()
	defer j.dropChunks()
	j.followers = 0
	if j.wantMD5 {
		j.followers++
	}
	if j.wantSHA {
		j.followers++
	}
	j.wakeMD5, j.wakeSHA = nil, nil
	j.hashedMD5.Store(-1)
	j.hashedSHA.Store(-1)
	j.mu.Lock()
	j.hashWait = make(chan struct{})
	j.mu.Unlock()
	if j.wantMD5 {
		mh, j.wakeMD5 = md5.New(), make(chan struct{}, 1)
		j.hashedMD5.Store(0)
		fwg.Add(1)
		go follow(mh, j.wakeMD5, &j.hashedMD5)
	}
	if j.wantSHA {
		sh, j.wakeSHA = sha256.New(), make(chan struct{}, 1)
		j.hashedSHA.Store(0)
		fwg.Add(1)
		go follow(sh, j.wakeSHA, &j.hashedSHA)
	}
	var bgwg sync.WaitGroup
	if j.jpath != "" {
		bgwg.Add(1)
		go func() { defer bgwg.Done(); j.checkpointer(bg) }()
	}
	bgwg.Add(1)
	go func() { defer bgwg.Done(); j.watchdog(bg) }()

	j.fp.setPhase(PhaseDownloading)
	n := 1
	if !j.single {
		n = j.e.tune.StreamsPerFile
	}
	var wwg sync.WaitGroup
	for range n {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			if err := j.worker(ctx); err != nil {
				cancel(err)
			}
		}()
	}
	wwg.Wait()
	if err := context.Cause(ctx); err != nil {
		stopBG()
		bgwg.Wait()
		fwg.Wait()
		return sums{}, err
	}
	if j.wantMD5 || j.wantSHA {
		j.fp.setPhase(PhaseVerifying)
	}
	fwg.Wait()
	stopBG()
	bgwg.Wait()
	if followE != nil {
		return sums{}, followE
	}
	if err := context.Cause(ctx); err != nil {
		return sums{}, err
	}
	s := sums{size: j.size}
	if mh != nil {
		s.md5 = hex.EncodeToString(mh.Sum(nil))
	}
	if sh != nil {
		s.sha256 = hex.EncodeToString(sh.Sum(nil))
	}
	return s, nil
}

// follow hashes the contiguous written prefix as it grows, from the
// chunks the streams keep in memory; bytes without a chunk (adopted from a
// resumed partial) are read back from the file.
func (j *job) follow(ctx context.Context, h hash.Hash, wake chan struct{}, pos *atomic.Int64) error {
	var buf []byte
	defer func() {
		if buf != nil {
			j.e.putBuf(&buf)
		}
	}()
	var done int64
	for {
		w, complete := j.watermark()
		if done < w {
			t0 := time.Now()
			j.mu.Lock()
			c := j.chunkAtLocked(done)
			next := j.nextChunkLocked(done)
			j.mu.Unlock()
			if c != nil {
				if hook := j.e.hooks.beforeHash; hook != nil {
					hook()
				}
				to := min(c.end(), w)
				h.Write(c.data[done-c.pos : to-c.pos])
				done = to
				if done == c.end() {
					j.passChunk(c)
				}
			} else {
				if buf == nil {
					buf = *j.e.getBuf()
				}
				to := w
				if next >= 0 {
					to = min(to, next)
				}
				n, err := hashRangeRead(j.f, h, done, to, buf)
				if err != nil {
					return fmt.Errorf("read back %s for hashing: %w", j.f.Name(), err)
				}
				done = n
			}
			j.hashBusy.Add(int64(time.Since(t0)))
			pos.Store(done)
			j.mu.Lock()
			close(j.hashWait)
			j.hashWait = make(chan struct{})
			j.mu.Unlock()
			continue
		}
		if complete {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// hashRangeRead feeds at most one buffer of [from, to) to h with pread.
func hashRangeRead(f *os.File, h hash.Hash, from, to int64, buf []byte) (int64, error) {
	n := min(to-from, int64(len(buf)))
	m, err := f.ReadAt(buf[:n], from)
	h.Write(buf[:m])
	if err != nil && int64(m) < n {
		return from + int64(m), err
	}
	return from + int64(m), nil
}

func (j *job) worker(ctx context.Context) error {
	for {
		if p := j.nextPart(); p != nil {
			if err := j.runPart(ctx, p); err != nil {
				return err
			}
			continue
		}
		// Nothing left to start or split: stay to hedge a slow part
		// until every part is done.
		wait, active := j.idleState()
		if !active || !j.mayHedge() {
			return nil
		}
		if p := j.hedgePart(); p != nil {
			j.runHedge(ctx, p)
			continue
		}
		t := time.NewTimer(max(j.e.tune.HedgeAfter/4, 5*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wait:
		case <-t.C:
		}
		t.Stop()
	}
}

func (j *job) mayHedge() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.e.tune.HedgeAfter > 0 && !j.single && j.ranges && j.size >= 0
}

// idleState returns the channel closed at the next part completion and
// whether any part is still in flight.
func (j *job) idleState() (<-chan struct{}, bool) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.changed == nil {
		j.changed = make(chan struct{})
	}
	for _, p := range j.parts {
		if p.active && !p.done {
			return j.changed, true
		}
	}
	return j.changed, false
}

// hedgePart picks an in-flight part worth a second request (a slow last
// part: one slow connection would otherwise set the file's finish time).
// Its stream must have run HedgeAfter, be under half the reference rate
// (this file's completed parts, else its sibling streams, else recent
// parts of the engine) and still need more than HedgeAfter at its rate.
func (j *job) hedgePart() *part {
	t := j.e.tune
	engineRef := j.e.partRateMedian()
	now := time.Now().UnixNano()
	j.mu.Lock()
	defer j.mu.Unlock()
	type cand struct {
		p    *part
		rate float64
	}
	var cands []cand
	var rates []float64
	for s := range j.streams {
		age := s.activeAge(now)
		if age <= 0 || s.paused.Load() {
			continue
		}
		r := float64(s.bytes.Load()) / age.Seconds()
		rates = append(rates, r)
		if p := s.p; !p.done && !p.hedged && p.end > p.cur && age >= t.HedgeAfter {
			cands = append(cands, cand{p, r})
		}
	}
	ref := engineRef
	switch {
	case len(j.partRates) >= 3:
		ref = median(j.partRates)
	case len(rates) >= 3:
		ref = median(rates)
	}
	var best *part
	var bestLeft float64
	for _, c := range cands {
		left := float64(c.p.end-c.p.cur) / max(c.rate, 1)
		if ref > 0 && c.rate < ref/2 && left > t.HedgeAfter.Seconds() && left > bestLeft {
			best, bestLeft = c.p, left
		}
	}
	if best != nil {
		best.hedged = true
	}
	return best
}

// runHedge sends one more request for the rest of p; whichever stream
// finishes the part first cancels the other. Its failures do not matter:
// the part's own stream still owns the part.
func (j *job) runHedge(ctx context.Context, p *part) {
	if err := j.e.acquireStream(ctx); err != nil {
		return
	}
	defer j.e.releaseStream()
	j.hedges.Add(1)
	j.mu.Lock()
	rng := j.rangeText(p)
	j.mu.Unlock()
	j.e.log.Info("part slow; racing it with a second request", "file", j.name, "url", j.safe, "range", rng)
	err := j.attempt(ctx, p)
	if err != nil && !errors.Is(err, errHedgeLost) && ctx.Err() == nil {
		j.e.log.Debug("hedge request failed", "file", j.name, "url", j.safe, "range", rng, "err", err.Error())
	}
}

// nextPart hands out the first unstarted part; when none is left it splits
// the largest in-flight remainder (work stealing, download.md §2.3).
func (j *job) nextPart() *part {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, p := range j.parts {
		if !p.done && !p.active {
			p.active = true
			p.began = time.Now()
			return p
		}
	}
	if j.single || !j.ranges || j.size < 0 {
		return nil
	}
	var best *part
	var bestRem int64
	for _, p := range j.parts {
		if p.active && !p.done && !p.hedged { // a hedged part's two streams share one end
			if rem := p.end - max(p.reserved, p.cur); rem > bestRem {
				best, bestRem = p, rem
			}
		}
	}
	if best == nil || bestRem < j.e.tune.MinSplit {
		return nil
	}
	from := max(best.reserved, best.cur)
	mid := from + bestRem/2
	mid = (mid + 0xFFFF) &^ 0xFFFF // 64 KiB aligned
	if mid >= best.end {
		return nil
	}
	np := &part{start: mid, end: best.end, cur: mid, reserved: mid, active: true, began: time.Now()}
	if j.jpath != "" {
		np.h = newRangeHasher(j.algo)
	}
	best.end = mid
	i := sort.Search(len(j.parts), func(i int) bool { return j.parts[i].start > best.start })
	j.parts = append(j.parts, nil)
	copy(j.parts[i+1:], j.parts[i:])
	j.parts[i] = np
	return np
}

func (j *job) partComplete(p *part) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return p.end >= 0 && p.cur >= p.end
}

func (j *job) finishPart(p *part) {
	j.mu.Lock()
	p.done, p.active = true, false
	n, d, start := p.cur-p.start, time.Since(p.began), p.start
	if d > 0 {
		j.partRates = append(j.partRates, float64(n)/d.Seconds())
	}
	if j.changed != nil {
		close(j.changed)
		j.changed = nil
	}
	j.mu.Unlock()
	if j.e.tune.EarlyWriteback && n > 0 {
		startWriteback(j.f, start, n)
	}
	j.e.recordPartRate(n, d)
	j.wake()
	if j.ckpt != nil {
		select {
		case j.ckpt <- struct{}{}:
		default:
		}
	}
}

// runPart fetches one part with retries; it owns the part until it is done
// or failed for good.
func (j *job) runPart(ctx context.Context, p *part) error {
	t := j.e.tune
	var failures, statusTries, slow int
	for {
		if j.partComplete(p) {
			j.finishPart(p)
			return nil
		}
		if err := j.e.acquireStream(ctx); err != nil {
			return err
		}
		j.mu.Lock()
		before := p.cur
		j.mu.Unlock()
		err := j.attempt(ctx, p)
		j.e.releaseStream()
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		j.mu.Lock()
		progressed := p.cur > before
		rng := j.rangeText(p)
		j.mu.Unlock()
		if progressed {
			failures, statusTries = 0, 0
		}
		var se *statusError
		var ae *authError
		switch {
		case errors.As(err, &se):
			statusTries++
			if statusTries >= t.MaxStatusTries {
				return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: statusTries, Status: se.code}
			}
			wait := backoff(t.BackoffUnit, statusTries)
			if se.hasRA {
				wait = se.retryAfter
			}
			j.e.log.Debug("retryable status; waiting", "file", j.name, "url", j.safe, "status", se.code, "wait", wait, "range", rng)
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
		case errors.Is(err, errHedgeLost):
			continue // the hedge finished the part
		case errors.Is(err, errStalled):
			j.mu.Lock()
			j.stalls++
			n := j.stalls
			j.mu.Unlock()
			j.e.log.Info("stream stalled; resuming on a new connection", "file", j.name, "url", j.safe, "range", rng, "stalls", n)
			if n > t.MaxStalls {
				return &StallError{Name: j.name, URL: j.safe, Stalls: n, Timeout: t.StallTimeout}
			}
		case errors.Is(err, errSlow):
			slow++
			j.e.log.Info("stream slow; restarting it on a new connection", "file", j.name, "url", j.safe, "range", rng)
			if slow%3 == 0 {
				failures++
				if failures >= t.MaxAttempts {
					return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: failures, Err: err}
				}
			}
		case errors.As(err, &ae):
			if err := j.refreshURL(ctx, ae, rng); err != nil {
				return err
			}
		case permanent(err):
			return err
		default:
			if progressed {
				j.e.log.Debug("connection lost; resuming", "file", j.name, "url", j.safe, "range", rng, "err", err.Error())
				continue
			}
			failures++
			if failures >= t.MaxAttempts {
				return &RetryError{Name: j.name, URL: j.safe, Range: rng, Attempts: failures, Err: err}
			}
			wait := backoff(t.BackoffUnit, failures)
			j.e.log.Debug("transient error; retrying", "file", j.name, "url", j.safe, "range", rng, "attempt", failures, "wait", wait, "err", err.Error())
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
		}
	}
}

func permanent(err error) bool {
	var he *HTTPError
	var de *DiskError
	var sm *SizeMismatchError
	return errors.As(err, &he) || errors.As(err, &de) || errors.As(err, &sm) ||
		errors.Is(err, errRangeIgnored) || errors.Is(err, errStale) || errors.Is(err, errRange416) ||
		errors.Is(err, errChanged) || errors.Is(err, errNoResume)
}

// refreshURL asks the caller for a fresh URL once (signed URL expired).
// Streams refused with an URL that was refreshed meanwhile just retry.
func (j *job) refreshURL(ctx context.Context, ae *authError, rng string) error {
	j.refreshMu.Lock()
	defer j.refreshMu.Unlock()
	j.mu.Lock()
	cur := j.url
	j.mu.Unlock()
	if cur != ae.url {
		return nil
	}
	if j.refresh == nil || j.refreshed {
		return &HTTPError{Name: j.name, URL: j.safe, Status: ae.code, Range: rng}
	}
	j.refreshed = true
	u, err := j.refresh(ctx)
	if err != nil {
		return fmt.Errorf("refresh URL of %s after 401/403: %w", j.name, err)
	}
	j.mu.Lock()
	j.url = u
	j.mu.Unlock()
	j.e.log.Info("download URL refreshed after 401/403", "file", j.name, "url", SafeURL(u))
	return nil
}

func (j *job) rangeText(p *part) string {
	if p.end < 0 {
		return fmt.Sprintf("bytes=%d-", p.cur)
	}
	return fmt.Sprintf("bytes=%d-%d", p.cur, p.end-1)
}

// attempt sends one request for the rest of part p and streams the body
// into the file.
func (j *job) attempt(ctx context.Context, p *part) error {
	j.mu.Lock()
	off, end, url, size, ranges, ifRange := p.cur, p.end, j.url, j.size, j.ranges, j.ifRange
	whole := off == 0 && p.start == 0 && (end < 0 || end == size)
	j.mu.Unlock()

	rctx, rcancel := context.WithCancelCause(ctx)
	defer rcancel(nil)
	st := j.addStream(p, rcancel)
	defer j.removeStream(st)

	req, err := http.NewRequestWithContext(rctx, http.MethodGet, url, nil)
	if err != nil {
		return &HTTPError{Name: j.name, URL: j.safe}
	}
	var rangeHdr string
	if !whole {
		if !ranges {
			return errNoResume
		}
		if end >= 0 {
			rangeHdr = fmt.Sprintf("bytes=%d-%d", off, end-1)
		} else {
			rangeHdr = fmt.Sprintf("bytes=%d-", off)
		}
		req.Header.Set("Range", rangeHdr)
		if ifRange != "" {
			req.Header.Set("If-Range", ifRange)
		}
	}
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := j.e.client.Do(req)
	if err != nil {
		if c := abortCause(rctx); c != nil {
			return c
		}
		return scrubURLError(err, j.safe)
	}
	defer resp.Body.Close()
	if fin := resp.Request.URL.String(); fin != url {
		// Use the resolved URL for further requests of this file (download.md §2.4).
		j.mu.Lock()
		if j.url == url {
			j.url = fin
		}
		j.mu.Unlock()
	}

	limit := int64(-1)
	code := resp.StatusCode
	switch {
	case code == http.StatusPartialContent:
		if rangeHdr == "" {
			return &protocolError{"206 without a Range request"}
		}
		first, last, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || first != off || (end >= 0 && last > end-1) {
			return &protocolError{fmt.Sprintf("Content-Range %q does not match %s", resp.Header.Get("Content-Range"), rangeHdr)}
		}
		if size >= 0 && total >= 0 && total != size {
			return errChanged
		}
		if resp.ContentLength >= 0 && resp.ContentLength != last-first+1 {
			return &protocolError{fmt.Sprintf("Content-Length %d does not match Content-Range %d-%d", resp.ContentLength, first, last)}
		}
		limit = last + 1
		if ifRange != "" {
			j.mu.Lock()
			j.ifRange = "" // the object is unchanged: adopted bytes are good
			j.mu.Unlock()
		}
	case code >= 200 && code < 300:
		if rangeHdr != "" {
			if ifRange != "" {
				return errStale
			}
			return errRangeIgnored
		}
		cl := resp.ContentLength
		j.mu.Lock()
		if cl >= 0 {
			switch {
			case size < 0:
				j.size, p.end = cl, cl
			case cl != size:
				j.mu.Unlock()
				return &SizeMismatchError{Name: j.name, URL: j.safe, Expected: size, Actual: cl}
			}
		}
		if acceptsRanges(resp.Header) && cl >= 0 {
			j.ranges = true
		}
		if et := resp.Header.Get("ETag"); et != "" && j.etag == "" {
			j.etag = et
		}
		limit = p.end
		j.mu.Unlock()
	case code == http.StatusRequestedRangeNotSatisfiable:
		return errRange416
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		return &authError{code: code, url: url}
	case j.e.tune.retryable(code):
		ra, ok := retryAfter(resp.Header, time.Now(), j.e.tune.MaxRetryAfter)
		return &statusError{code: code, retryAfter: ra, hasRA: ok}
	default:
		return &HTTPError{Name: j.name, URL: j.safe, Status: code, Range: rangeHdr}
	}
	return j.copyBody(rctx, st, p, resp.Body, off, limit)
}

// abortCause is why the engine itself cut a stream's request (stall,
// slowness, lost hedge), or nil for any other failure.
func abortCause(rctx context.Context) error {
	if c := context.Cause(rctx); errors.Is(c, errStalled) || errors.Is(c, errSlow) || errors.Is(c, errHedgeLost) {
		return c
	}
	return nil
}

// hashedMin is the position of the slowest hash follower (-1: none).
func (j *job) hashedMin() int64 {
	m, s := j.hashedMD5.Load(), j.hashedSHA.Load()
	switch {
	case m < 0:
		return s
	case s < 0:
		return m
	}
	return min(m, s)
}

// throttle is hash backpressure: no stream writes more than the job's
// lead beyond what the hash followers have hashed. On a machine where the
// CPU is the limit, network streams would otherwise take CPU from the MD5,
// which would then finish long after the last byte arrived; when the
// network or the disk is the limit the followers keep up and nothing waits
// (the lead covers every part in flight). It cannot deadlock: a waiting
// stream is more than the lead beyond the hashers, so either the hashers
// have written bytes to hash (and will wake it), or the stream at the
// watermark, which is then within the lead, proceeds.
func (j *job) throttle(ctx context.Context, st *stream, pos int64) error {
	lead := j.lead
	if lead <= 0 {
		return nil
	}
	var since time.Time
	paused := false
	defer func() {
		if paused {
			st.resume(since)
		}
	}()
	for {
		j.mu.Lock()
		wait := j.hashWait
		j.mu.Unlock()
		h := j.hashedMin()
		if h < 0 || pos-h <= lead {
			return nil
		}
		if !paused {
			paused, since = true, st.pause()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// copyBody streams body into the file from off; limit is the end of the
// response (-1: until EOF). It stops early when the part was split below the
// response's end. With direct I/O, a buffer's byte i holds file offset
// pos-off0+i with off0 = pos mod dioAlign, so whole blocks are aligned in
// memory and on disk; an unaligned tail is carried into the next buffer.
func (j *job) copyBody(rctx context.Context, st *stream, p *part, body io.Reader, off, limit int64) error {
	bp := j.e.getBuf()
	defer func() { j.e.putBuf(bp) }() // the buffer held at return
	// pos is the next byte to write; buf[at:at+filled] holds [pos, pos+filled).
	pos := off
	at, filled := 0, 0
	if j.directWriter() != nil {
		at = int(pos % dioAlign)
	}
	const flushAfter = 100 * time.Millisecond
	for {
		j.mu.Lock()
		end, complete := p.end, p.end >= 0 && p.cur >= p.end
		j.mu.Unlock()
		if complete {
			return nil // finished by the part's other stream (hedge)
		}
		if limit >= 0 && (end < 0 || limit < end) {
			end = limit
		}
		if end >= 0 && pos >= end {
			return nil
		}
		buf := *bp
		want := len(buf) - at
		if end >= 0 {
			want = int(min(int64(want), end-pos))
		}
		if err := j.throttle(rctx, st, pos+int64(filled)); err != nil {
			return err
		}
		var rerr error
		began := time.Now()
		for filled < want && rerr == nil {
			var n int
			n, rerr = body.Read(buf[at+filled : at+want])
			if n > 0 {
				filled += n
				st.touch(int64(n))
				if time.Since(began) > flushAfter {
					break
				}
			}
		}
		final := rerr != nil || (end >= 0 && pos+int64(filled) >= end)
		if filled > 0 {
			n, next, nextAt, err := j.write(p, st, bp, buf[at:at+filled], pos, final)
			if err != nil {
				return err
			}
			pos += int64(n)
			bp, at, filled = next, nextAt, filled-n
		}
		if rerr == io.EOF {
			if limit >= 0 && pos < limit {
				return io.ErrUnexpectedEOF
			}
			if limit < 0 {
				j.mu.Lock()
				if p.end < 0 {
					j.size, p.end = pos, pos
				}
				j.mu.Unlock()
			}
			return nil
		}
		if rerr != nil {
			if c := abortCause(rctx); c != nil {
				return c
			}
			return scrubURLError(rerr, j.safe)
		}
	}
}

// write stores data (held in *bp) at pos for part p, trimmed to the part's
// current end, and advances the part. With direct I/O and final false it
// may leave an unaligned tail unwritten. The caller continues with buffer
// next, where the unwritten rest of data now sits at nextAt: bp itself, or
// a new buffer when bp went to the hash followers (the rest is copied out
// before they can see bp, which they return to the pool).
func (j *job) write(p *part, st *stream, bp *[]byte, data []byte, pos int64, final bool) (written int, next *[]byte, nextAt int, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	orig, pos0 := data, pos
	carry := func(written int64, fresh bool) (*[]byte, int) {
		at := 0
		if j.directWriter() != nil {
			at = int((pos0 + written) % dioAlign)
		}
		nb := bp
		if fresh {
			nb = j.e.getBuf()
		}
		copy((*nb)[at:], orig[written:])
		return nb, at
	}
	j.mu.Lock()
	// A hedged part has two streams over the same bytes: skip what the
	// other one has written already.
	skip := min(max(p.cur-pos, 0), int64(len(data)))
	data, pos = data[skip:], pos+skip
	n := int64(len(data))
	if p.end >= 0 && pos+n > p.end {
		n = max(p.end-pos, 0)
		final = true
	}
	p.reserved = max(p.reserved, pos+n)
	dio := j.dio
	j.mu.Unlock()
	if n == 0 {
		next, nextAt = carry(skip, false)
		return int(skip), next, nextAt, nil
	}
	head, mid, tail := n, int64(0), int64(0)
	if dio != nil {
		head, mid, tail = splitDirect(pos, n)
		if mid > 0 && !addrAligned(data[head:]) {
			head, mid, tail = n, 0, 0
		}
		if !final {
			n -= tail
			tail = 0
		}
	}
	if n == 0 {
		next, nextAt = carry(skip, false)
		return int(skip), next, nextAt, nil
	}
	if hook := j.e.hooks.writeErr; hook != nil {
		err = hook(j.f.Name(), pos)
	}
	if err == nil && head > 0 {
		_, err = j.f.WriteAt(data[:head], pos)
	}
	if err == nil && mid > 0 {
		if hook := j.e.hooks.directErr; hook != nil {
			err = hook(pos + head)
		}
		if err == nil {
			_, err = dio.WriteAt(data[head:head+mid], pos+head)
		}
		if err != nil && directRefused(err) {
			j.disableDirect(err)
			_, err = j.f.WriteAt(data[head:head+mid], pos+head)
		} else if err == nil {
			j.direct.Add(mid)
		}
	}
	if err == nil && tail > 0 {
		_, err = j.f.WriteAt(data[head+mid:n], pos+head+mid)
	}
	if err != nil {
		if isDiskFatal(err) {
			return 0, bp, 0, &DiskError{Path: j.f.Name(), Op: "write", Written: j.doneBytes(), Err: err}
		}
		return 0, bp, 0, fmt.Errorf("write %s: %w", j.f.Name(), err)
	}
	var sum string
	if p.h != nil {
		p.h.Write(data[:n])
		sum = p.h.Sum()
	}
	keep := j.followers > 0 // set before the run's streams start
	next, nextAt = carry(skip+n, keep)
	j.mu.Lock()
	if keep {
		// Kept before the watermark moves, so followers never miss it.
		if j.chunks == nil {
			j.chunks = map[int64]*chunk{}
		}
		j.chunks[pos] = &chunk{pos: pos, data: data[:n], bp: bp, refs: j.followers}
		j.e.noteKept(j.kept.Add(n))
	}
	p.cur = pos + n
	p.sum = sum
	if p.hedged && p.end >= 0 && p.cur >= p.end {
		for o := range j.streams {
			if o.p == p && o != st {
				o.cancel(errHedgeLost)
			}
		}
	}
	j.mu.Unlock()
	j.fp.network.Add(n)
	j.lastByte.Store(time.Now().UnixNano())
	j.wake()
	return int(skip + n), next, nextAt, nil
}

func (j *job) addStream(p *part, cancel context.CancelCauseFunc) *stream {
	now := time.Now().UnixNano()
	st := &stream{p: p, started: now, cancel: cancel, job: j}
	st.last.Store(now)
	j.mu.Lock()
	if j.streams == nil {
		j.streams = map[*stream]struct{}{}
	}
	j.streams[st] = struct{}{}
	j.mu.Unlock()
	return st
}

func (j *job) removeStream(st *stream) {
	j.mu.Lock()
	delete(j.streams, st)
	j.mu.Unlock()
}

func (s *stream) touch(n int64) {
	s.bytes.Add(n)
	s.last.Store(time.Now().UnixNano())
}

// watchdog aborts streams that stalled (no byte for StallTimeout) or are
// far slower than their siblings or than recent parts (download.md §2.4).
func (j *job) watchdog(ctx context.Context) {
	t := j.e.tune
	every := min(t.StallTimeout/4, 500*time.Millisecond)
	every = max(every, 5*time.Millisecond)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now().UnixNano()
		j.mu.Lock()
		all := make([]*stream, 0, len(j.streams))
		for s := range j.streams {
			all = append(all, s)
		}
		j.mu.Unlock()
		var rates []float64
		var mature []*stream
		for _, s := range all {
			if s.paused.Load() {
				continue
			}
			if time.Duration(now-s.last.Load()) > t.StallTimeout {
				s.cancel(errStalled)
				continue
			}
			age := s.activeAge(now)
			if age <= 0 {
				continue
			}
			rates = append(rates, float64(s.bytes.Load())/age.Seconds())
			if age >= t.SlowAfter {
				mature = append(mature, s)
			}
		}
		if len(mature) == 0 {
			continue
		}
		var ref float64
		if len(rates) >= 3 {
			ref = median(rates)
		} else if h := j.e.partRateMedian(); h > 0 {
			ref = h
		}
		if ref <= 0 {
			continue
		}
		for _, s := range mature {
			r := float64(s.bytes.Load()) / s.activeAge(now).Seconds()
			if r < t.SlowFraction*ref && !s.paused.Load() {
				s.cancel(errSlow)
			}
		}
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// checkpointer records durable progress in the journal: periodically, when
// a part completes, and at least every HeartbeatInterval.
func (j *job) checkpointer(ctx context.Context) {
	t := time.NewTicker(j.e.tune.JournalInterval)
	defer t.Stop()
	// Part completions come in bursts (8 MiB parts at hundreds of MB/s):
	// checkpoint them at most every 100 ms; every fsync costs the disk.
	minGap := max(min(j.e.tune.JournalInterval/4, 500*time.Millisecond), 5*time.Millisecond)
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-j.ckpt:
			if d := time.Since(last); d < minGap {
				if sleepCtx(ctx, minGap-d) != nil {
					return
				}
			}
		}
		last = time.Now()
		if err := j.checkpoint(false); err != nil {
			j.e.log.Warn("cannot update resume journal", "file", j.name, "journal", j.jpath, "err", err)
		}
	}
}

// checkpoint fsyncs the data and then records every part's written prefix
// with its hash. Bytes are recorded only after they are durable (§3 rule 2).
func (j *job) checkpoint(force bool) error {
	if j.jpath == "" {
		return nil
	}
	j.mu.Lock()
	var rs []journalRange
	for _, p := range j.parts {
		if p.cur > p.start && p.sum != "" {
			rs = append(rs, journalRange{First: p.start, Last: p.cur - 1, Hash: p.sum})
		}
	}
	size, etag := j.size, j.etag
	j.mu.Unlock()
	jf := j.jtmpl
	jf.Size, jf.ETag, jf.RangeHash, jf.RangesDone = size, etag, j.algo, rs
	if jf.RangesDone == nil {
		jf.RangesDone = []journalRange{}
	}
	key := fmt.Sprint(jf.RangesDone, jf.ETag)
	if !force && key == j.lastJournal && time.Since(j.lastJournalAt) < j.e.tune.HeartbeatInterval {
		return nil
	}
	if j.f != nil {
		if err := fdatasync(j.f); err != nil {
			return err
		}
	}
	if err := writeJournal(j.jpath, &jf); err != nil {
		return err
	}
	j.lastJournal, j.lastJournalAt = key, time.Now()
	return nil
}

func parseContentRange(v string) (first, last, total int64, ok bool) {
	v = strings.TrimSpace(v)
	rest, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if first, err = strconv.ParseInt(a, 10, 64); err != nil {
		return 0, 0, 0, false
	}
	if last, err = strconv.ParseInt(b, 10, 64); err != nil || last < first {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= last {
			return 0, 0, 0, false
		}
	}
	return first, last, total, true
}

func acceptsRanges(h http.Header) bool {
	for _, v := range h.Values("Accept-Ranges") {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), "bytes") {
				return true
			}
		}
	}
	return false
}
