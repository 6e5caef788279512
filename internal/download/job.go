package download

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/retry"
	"golang.org/x/sync/errgroup"
)

// sums are the digests the followers computed.
type sums struct {
	md5, sha256 string
	size        int64
}

// jobDiag is what a job reports when it ends (guarded by job.mu).
type jobDiag struct {
	hashBusy time.Duration // the followers spent hashing
	pauses   time.Duration // streams waited for the hashers or the journal
	lastByte time.Time     // of the last write
	direct   int64         // bytes written through the direct descriptor
	hedges   int64         // second requests sent
	kept     int64         // bytes of chunks held for the followers now
}

// diagnostics returns a copy of the job's diagnostics.
func (j *job) diagnostics() jobDiag {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.diag
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
	jtmpl journal.File
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
	guard   spaceGuard // bounds a single stream of unknown size
	// failingSince is the first failed attempt since the last byte was
	// written (zero while bytes flow): the retry deadline counts from it.
	failingSince time.Time

	wakeMD5, wakeSHA chan struct{}
	// Guarded by mu: the hash followers' positions ([0] MD5, [1] SHA-256;
	// -1: no such follower), a channel closed and replaced whenever one
	// advances (backpressure waits on it), and the run's diagnostics.
	hashed        [2]int64
	hashWait      chan struct{}
	diag          jobDiag
	ckpt          chan struct{} // a checkpoint is due (bytes written)
	lastJournal   string        // last journal content written (skip identical rewrites)
	lastJournalAt time.Time

	// Journal progress, guarded by mu: bytes written by this job, written
	// at the last checkpoint's snapshot, written as of the last journal
	// that reached the disk, and a channel closed and replaced after every
	// checkpoint (streams over the lag limit wait on it). journalOff stops
	// the waiting after a checkpoint failed.
	written, ckptAt, journaled int64
	ckptDone                   chan struct{}
	journalOff                 bool

	dio       *os.File         // O_DIRECT descriptor for aligned blocks (nil: page cache only)
	followers int              // hash followers of the current run
	chunks    map[int64]*chunk // written data kept for the followers, by offset
	partRates []float64        // B/s of this file's completed parts
	changed   chan struct{}    // closed and replaced when a part completes
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
				if rerr := j.pastDeadline(err, "", restarts); rerr != nil {
					return sums{}, rerr
				}
				if e := retry.Sleep(ctx, retry.Ranged(j.e.tune.BackoffUnit).Delay(restarts)); e != nil {
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

	// Three groups, each waited for on every path: the hash followers
	// (their first error fails the run), the background checkpointer and
	// watchdog (stopped by bg), and the stream workers.
	var followers, background, workers errgroup.Group
	var mh, sh hash.Hash
	follow := func(h hash.Hash, wake chan struct{}, idx int) func() error {
		return func() error {
			err := j.follow(ctx, h, wake, idx)
			if err != nil {
				cancel(err)
			}
			return err
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
	j.mu.Lock()
	j.hashWait = make(chan struct{})
	j.hashed = [2]int64{-1, -1}
	if j.wantMD5 {
		j.hashed[0] = 0
	}
	if j.wantSHA {
		j.hashed[1] = 0
	}
	j.mu.Unlock()
	if j.wantMD5 {
		mh, j.wakeMD5 = md5.New(), make(chan struct{}, 1)
		followers.Go(follow(mh, j.wakeMD5, 0))
	}
	if j.wantSHA {
		sh, j.wakeSHA = sha256.New(), make(chan struct{}, 1)
		followers.Go(follow(sh, j.wakeSHA, 1))
	}
	if j.jpath != "" {
		background.Go(func() error { j.checkpointer(bg); return nil })
	}
	background.Go(func() error { j.watchdog(bg); return nil })

	j.fp.setPhase(PhaseDownloading)
	n := 1
	if !j.single {
		n = j.e.tune.StreamsPerFile
	}
	for range n {
		workers.Go(func() error {
			err := j.worker(ctx)
			if err != nil {
				cancel(err)
			}
			return err
		})
	}
	_ = workers.Wait() // the cause is in ctx
	if err := context.Cause(ctx); err != nil {
		stopBG()
		_ = background.Wait()
		_ = followers.Wait()
		return sums{}, err
	}
	if j.wantMD5 || j.wantSHA {
		j.fp.setPhase(PhaseVerifying)
	}
	followE := followers.Wait()
	stopBG()
	_ = background.Wait()
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
