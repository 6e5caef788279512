package download

import (
	"context"
	"fmt"
	"time"

	"github.com/modelcache/modelcache/internal/journal"
	"github.com/modelcache/modelcache/internal/retry"
)

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
				if retry.Sleep(ctx, minGap-d) != nil {
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
	var rs []journal.Range
	for _, p := range j.parts {
		if p.cur > p.start && p.sum != "" {
			rs = append(rs, journal.Range{First: p.start, Last: p.cur - 1, Hash: p.sum})
		}
	}
	size, etag := j.size, j.etag
	j.mu.Unlock()
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
	if err := journal.Write(j.jpath, &jf); err != nil {
		return err
	}
	j.lastJournal, j.lastJournalAt = key, time.Now()
	return nil
}
