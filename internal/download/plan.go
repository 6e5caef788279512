package download

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/modelcache/modelcache/internal/journal"
)

// part is a byte range [start, end) of the file that one stream owns at a
// time. Parts tile the file and stay sorted by start.
type part struct {
	start, end int64 // end < 0: until EOF (size unknown)
	cur        int64 // [start, cur) is written
	reserved   int64 // cur plus a write in flight: a split never cuts below it
	active     bool
	done       bool
	h          journal.Hasher // journal range hash of [start, cur); nil without journal
	sum        string
	began      time.Time
	hedged     bool       // a second request was sent for its rest
	wmu        sync.Mutex // serializes writes of the part's streams (two when hedged)
}

// plan lays out parts over [0, size), skipping the done ranges (sorted,
// non-overlapping), which become done parts.
func (j *job) plan(done []journal.Range) {
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
			p.h = journal.NewHasher(j.algo)
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
		np.h = journal.NewHasher(j.algo)
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
}

func (j *job) rangeText(p *part) string {
	if p.end < 0 {
		return fmt.Sprintf("bytes=%d-", p.cur)
	}
	return fmt.Sprintf("bytes=%d-%d", p.cur, p.end-1)
}
