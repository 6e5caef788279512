package download

import (
	"context"
	"errors"
	"time"
)

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
	j.mu.Lock()
	j.diag.hedges++
	rng := j.rangeText(p)
	j.mu.Unlock()
	j.e.log.Info("part slow; racing it with a second request", "file", j.name, "url", j.safe, "range", rng)
	err := j.attempt(ctx, p)
	if err != nil && !errors.Is(err, errHedgeLost) && ctx.Err() == nil {
		j.e.log.Debug("hedge request failed", "file", j.name, "url", j.safe, "range", rng, "err", err.Error())
	}
}
