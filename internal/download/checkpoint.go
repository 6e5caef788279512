package download

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcache/modelcache/internal/journal"
)

// checkpointer records durable progress in the journal: whenever the
// streams have written journalStep bytes since the last checkpoint (write
// signals ckpt), and every JournalInterval (the heartbeat, at least every
// HeartbeatInterval). The byte trigger bounds what a kill loses; its cost
// is one fdatasync and one journal rewrite per journalStep bytes.
func (j *job) checkpointer(ctx context.Context) {
	t := time.NewTicker(j.e.tune.JournalInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-j.ckpt:
		}
		if err := j.checkpoint(false); err != nil {
			j.e.log.Warn("cannot update resume journal", "file", j.name, "journal", j.jpath, "err", err)
		}
	}
}

// journalStep is the byte count that makes a checkpoint due: JournalEvery
// per stream of the file.
func (j *job) journalStep() int64 {
	n := int64(1)
	if !j.single {
		n = int64(j.e.tune.StreamsPerFile)
	}
	return n * j.e.tune.JournalEvery
}

// journalThrottle makes a stream wait while the file has more than twice
// journalStep bytes written but not journaled (the checkpointer lags behind
// a slow disk), so that a kill loses a bounded number of bytes. The wait is
// a pause, not a stall.
func (j *job) journalThrottle(ctx context.Context, st *stream) error {
	var since time.Time
	paused := false
	defer func() {
		if paused {
			st.resume(since)
		}
	}()
	for {
		j.mu.Lock()
		if j.jpath == "" || j.journalOff || j.ckptDone == nil || j.written-j.journaled < 2*j.journalStep() {
			j.mu.Unlock()
			return nil
		}
		wait := j.ckptDone
		j.mu.Unlock()
		select {
		case j.ckpt <- struct{}{}:
		default:
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

// checkpoint fsyncs the data and then records every part's written prefix
// with its hash. Bytes are recorded only after they are durable (§3 rule 2).
func (j *job) checkpoint(force bool) (err error) {
	j.mu.Lock()
	if j.jpath == "" {
		j.mu.Unlock()
		return nil
	}
	var rs []journal.Range
	for _, p := range j.parts {
		if p.cur > p.start && p.sum != "" {
			rs = append(rs, journal.Range{First: p.start, Last: p.cur - 1, Hash: p.sum})
		}
	}
	size, etag, snap, jpath := j.size, j.etag, j.written, j.jpath
	j.ckptAt = snap
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		if err == nil {
			j.journaled = max(j.journaled, snap)
		} else {
			j.journalOff = true // streams stop waiting for a journal that fails
		}
		if j.ckptDone != nil {
			close(j.ckptDone)
			j.ckptDone = make(chan struct{})
		}
		j.mu.Unlock()
	}()
	jf := j.jtmpl
	jf.Size, jf.ETag, jf.RangeHash, jf.RangesDone = size, etag, j.algo, rs
	if jf.RangesDone == nil {
		jf.RangesDone = []journal.Range{}
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
	if err := journal.Write(jpath, &jf); err != nil {
		return err
	}
	j.lastJournal, j.lastJournalAt = key, time.Now()
	return nil
}
