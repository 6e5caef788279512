package download

import (
	"fmt"
	"slices"
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

// plan lays out the job's parts (see layout) and derives whether the
// file is fetched as one stream, the part size and the hash lead.
func (j *job) plan(done []journal.Range) {
	t := j.e.tune
	step := int64(0)
	switch {
	case j.size < 0:
		j.single = true
	case j.size < t.RangeThreshold || !j.ranges:
		j.single = true
		step = max(j.size, 1)
	default:
		step = t.partSize(j.size)
	}
	if j.single && j.size < 0 {
		done = nil
	}
	j.parts = partLayout(j.size, step, done)
	j.setLead(step)
	j.initHashers()
}

// partLayout returns parts that tile [0, size) in order: the done ranges
// (sorted, disjoint) as done parts, the gaps between them cut into parts of
// step bytes, a last piece under a quarter step folded into its neighbour.
// size < 0 (unknown) is one open-ended part; size 0 one empty done part.
func partLayout(size, step int64, done []journal.Range) []*part {
	if size < 0 {
		return []*part{{start: 0, end: -1}}
	}
	if size == 0 {
		return []*part{{start: 0, end: 0, done: true}}
	}
	step = max(step, 1)
	var parts []*part
	add := func(a, b int64) {
		for a < b {
			e := min(b, a+step)
			if b-e < step/4 {
				e = b
			}
			parts = append(parts, &part{start: a, end: e, cur: a, reserved: a})
			a = e
		}
	}
	pos := int64(0)
	for _, r := range done {
		if r.First > pos {
			add(pos, r.First)
		}
		parts = append(parts, &part{start: r.First, end: r.Last + 1, cur: r.Last + 1, reserved: r.Last + 1, done: true, sum: r.Hash})
		pos = r.Last + 1
	}
	add(pos, size)
	return parts
}

// watermarkOf returns the end of the contiguous written prefix of parts
// and whether it covers a known size.
func watermarkOf(parts []*part, size int64) (int64, bool) {
	var w int64
	for _, p := range parts {
		if p.start != w {
			break
		}
		w = p.cur
		if p.end < 0 || p.cur < p.end {
			return w, false
		}
	}
	return w, size >= 0 && w >= size
}

// stealAlign aligns split points (64 KiB: whole pages and direct-I/O blocks).
const stealAlign = 64 << 10

// steal is work stealing (download.md §2.3): it splits the largest
// remainder of an in-flight part (above its reserved write; hedged parts,
// whose two streams share one end, excepted) at its middle, aligned up to
// stealAlign, if that remainder is at least minSplit. It returns parts with
// the new, already active part inserted in order, or parts and nil.
func steal(parts []*part, minSplit int64) ([]*part, *part) {
	var best *part
	var bestRem int64
	for _, p := range parts {
		if p.active && !p.done && !p.hedged && p.end >= 0 {
			if rem := p.end - max(p.reserved, p.cur); rem > bestRem {
				best, bestRem = p, rem
			}
		}
	}
	if best == nil || bestRem < minSplit {
		return parts, nil
	}
	mid := max(best.reserved, best.cur) + bestRem/2
	mid = (mid + stealAlign - 1) &^ (stealAlign - 1)
	if mid >= best.end {
		return parts, nil
	}
	np := &part{start: mid, end: best.end, cur: mid, reserved: mid, active: true}
	best.end = mid
	i := sort.Search(len(parts), func(i int) bool { return parts[i].start > best.start })
	parts = slices.Insert(parts, i, np)
	return parts, np
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

func (j *job) watermarkLocked() (int64, bool) { return watermarkOf(j.parts, j.size) }

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
	var np *part
	if j.parts, np = steal(j.parts, j.e.tune.MinSplit); np == nil {
		return nil
	}
	np.began = time.Now()
	if j.jpath != "" {
		np.h = journal.NewHasher(j.algo)
	}
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
