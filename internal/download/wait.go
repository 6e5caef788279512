package download

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/retry"
)

// holderState is what a waiter can see of another process's download of
// the same blob: its journal and the bytes allocated to its partial (ours)
// or temp file (the reference's <md5>.<uuid4>).
type holderState struct {
	bytes     int64 // best estimate of bytes on disk
	size      int64 // -1 unknown
	heartbeat string
	alloc     int64
}

func (e *Engine) sampleHolder(md5 string) holderState {
	s := holderState{size: -1}
	dir := e.blobs.Dir()
	names, _ := filepath.Glob(filepath.Join(dir, "."+md5+".partial-*"))
	refs, _ := filepath.Glob(filepath.Join(dir, md5+".*"))
	for _, p := range append(names, refs...) {
		k, m := blobfs.Classify(filepath.Base(p))
		if m != md5 {
			continue
		}
		switch k {
		case blobfs.KindJournal:
			if j, err := journal.Read(p); err == nil {
				s.bytes = max(s.bytes, j.DoneBytes())
				s.size = max(s.size, j.Size)
				if j.HeartbeatAt > s.heartbeat {
					s.heartbeat = j.HeartbeatAt
				}
			}
		case blobfs.KindPartial, blobfs.KindReferenceTemp:
			if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
				a := allocated(fi)
				s.alloc += a
				s.bytes = max(s.bytes, min(a, max(fi.Size(), a)))
			}
		}
	}
	return s
}

// waitForBlob takes the blob lock. While another process holds it, it
// keeps waiting as long as that process shows progress (journal heartbeat,
// journal ranges, allocated bytes), logs "still waiting" lines, and gives
// up only after LockTimeout without progress. shared reports that someone
// else held the lock (the caller re-checks the blob). held is nil when the
// blob appeared while waiting, or when locks are only hints on this
// filesystem and the wait was capped.
func (e *Engine) waitForBlob(ctx context.Context, it Item, fp *fileProgress) (held *lock.Held, shared bool, err error) {
	lp, err := e.blobs.LockPath(it.MD5)
	if err != nil {
		return nil, false, err
	}
	t := e.tune
	start := time.Now()
	lastChange := start
	nextLog := start.Add(t.WaitLogInterval)
	var nextSample time.Time
	var last holderState
	sampleEvery := 250 * time.Millisecond
	if t.LockTimeout > 0 {
		sampleEvery = max(min(sampleEvery, t.LockTimeout/4), t.LockPoll)
	}
	for {
		h, ok, err := e.locks.TryLock(ctx, lp)
		if err != nil {
			return nil, false, fmt.Errorf("blob %s: lock %s: %w", it.MD5, lp, err)
		}
		if ok {
			return h, shared, nil
		}
		if !shared {
			shared = true
			fp.setPhase(PhaseWaiting)
		}
		now := time.Now()
		if !now.Before(nextSample) {
			if ok, _ := e.blobs.Has(it.MD5); ok {
				return nil, true, nil
			}
			s := e.sampleHolder(it.MD5)
			if s != last {
				lastChange, last = now, s
			}
			fp.setHolder(s.bytes, s.size)
			nextSample = now.Add(sampleEvery)
		}
		idle := now.Sub(lastChange)
		if t.LockTimeout >= 0 && (idle >= t.LockTimeout || (e.unreliableLocks && now.Sub(start) >= t.LockTimeout)) {
			if e.unreliableLocks {
				e.log.Warn("lock wait capped on a filesystem where locks are hints; downloading in parallel (correctness does not depend on the lock)",
					"file", it.label(), "lock", lp)
				return nil, false, nil
			}
			return nil, false, &WaitTimeoutError{Name: it.label(), Lock: lp, Waited: now.Sub(start), Timeout: t.LockTimeout,
				HolderBytes: last.bytes, HolderSize: last.size, LastProgress: idle}
		}
		if !now.Before(nextLog) {
			nextLog = now.Add(t.WaitLogInterval)
			e.log.Info(fmt.Sprintf("still waiting for %s (%s of %s), downloaded by another process; last progress %s ago",
				it.label(), mbText(last.bytes), mbText(last.size), idle.Round(time.Second)),
				"blob", it.MD5, "lock", lp, "waited", now.Sub(start).Round(time.Second))
		}
		if err := retry.Sleep(ctx, t.LockPoll); err != nil {
			return nil, false, err
		}
	}
}

func mbText(n int64) string {
	if n < 0 {
		return "? MB"
	}
	return fmt.Sprintf("%d MB", n/1_000_000)
}
