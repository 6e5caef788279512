package download

import (
	"context"
	"sort"
	"sync/atomic"
	"time"
)

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
	if j := s.job; j != nil {
		j.mu.Lock()
		j.diag.pauses += now.Sub(since)
		j.mu.Unlock()
	}
	s.last.Store(now.UnixNano())
	s.paused.Store(false)
}

// activeAge is the stream's age minus the time it was paused.
func (s *stream) activeAge(now int64) time.Duration {
	return time.Duration(now - s.started - s.pausedNanos.Load())
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
