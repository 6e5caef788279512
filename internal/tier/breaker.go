package tier

import (
	"sync"
	"time"
)

// Clock tells the time; tests move a fake one.
type Clock interface{ Now() time.Time }

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

// BreakerState is a circuit breaker's state.
type BreakerState int

const (
	// Closed: calls go to the tier.
	Closed BreakerState = iota
	// Open: calls skip the tier until the cooldown ends.
	Open
	// HalfOpen: the cooldown ended; one probe call is out, the others skip.
	HalfOpen
)

func (s BreakerState) String() string {
	switch s {
	case Open:
		return "open"
	case HalfOpen:
		return "half-open"
	}
	return "closed"
}

// Breaker is the tier's circuit breaker, the reference's semantics plus a
// single half-open probe:
//   - failures are counted leakily: a success takes one off instead of
//     resetting the count, so that with concurrent calls of different
//     durations an unrelated success cannot erase a run of failures;
//   - at threshold the breaker opens for the cooldown;
//   - every outcome is reported against the ticket (epoch) its call was
//     admitted under: a call admitted before a trip can neither re-close
//     the breaker nor count towards the next window;
//   - after the cooldown exactly one call is admitted as a probe: its
//     success closes the breaker, its failure opens it for another
//     cooldown. A probe never reported within a cooldown is given up and
//     another is admitted.
type Breaker struct {
	threshold int
	cooldown  time.Duration
	clock     Clock
	// onTrip runs (outside the lock) when the breaker opens; reopen is true
	// when a failed probe opened it again. onClose runs when a probe closed it.
	onTrip  func(reopen bool)
	onClose func()

	mu         sync.Mutex
	state      BreakerState
	failures   int
	openUntil  time.Time
	epoch      uint64
	probeSince time.Time
	trips      int64
}

// Ticket is what Admit hands out; report the call's outcome with it.
type Ticket struct {
	epoch uint64
	probe bool
	ok    bool
}

// NewBreaker returns a closed breaker.
func NewBreaker(threshold int, cooldown time.Duration, clock Clock) *Breaker {
	if threshold < 1 {
		threshold = 1
	}
	if clock == nil {
		clock = realClock{}
	}
	return &Breaker{threshold: threshold, cooldown: cooldown, clock: clock}
}

// Admit says whether a call may go to the tier now.
func (b *Breaker) Admit() (Ticket, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.clock.Now()
	switch b.state {
	case Open:
		if now.Before(b.openUntil) {
			return Ticket{}, false
		}
		b.state, b.probeSince = HalfOpen, now
		return Ticket{epoch: b.epoch, probe: true, ok: true}, true
	case HalfOpen:
		if now.Sub(b.probeSince) < b.cooldown {
			return Ticket{}, false
		}
		b.probeSince = now // the last probe never reported: another one
		return Ticket{epoch: b.epoch, probe: true, ok: true}, true
	}
	return Ticket{epoch: b.epoch, ok: true}, true
}

// Success reports a call that worked (a miss is a success: the tier answered).
func (b *Breaker) Success(t Ticket) {
	if !t.ok {
		return
	}
	b.mu.Lock()
	if t.epoch != b.epoch {
		b.mu.Unlock()
		return
	}
	closed := false
	switch {
	case b.state == HalfOpen && t.probe:
		b.state, b.failures, closed = Closed, 0, true
	case b.state == Closed && b.failures > 0:
		b.failures--
	}
	b.mu.Unlock()
	if closed && b.onClose != nil {
		b.onClose()
	}
}

// Failure reports a call that failed because of the tier.
func (b *Breaker) Failure(t Ticket) {
	if !t.ok {
		return
	}
	b.mu.Lock()
	if t.epoch != b.epoch {
		b.mu.Unlock()
		return
	}
	trip, reopen := false, false
	switch {
	case b.state == HalfOpen && t.probe:
		trip, reopen = true, true
	case b.state == Closed:
		b.failures++
		trip = b.failures >= b.threshold
	}
	if trip {
		b.state, b.failures = Open, 0
		b.openUntil = b.clock.Now().Add(b.cooldown)
		b.epoch++
		b.trips++
	}
	b.mu.Unlock()
	if trip && b.onTrip != nil {
		b.onTrip(reopen)
	}
}

// Release reports a call that ended without telling anything about the
// tier (the caller gave up): a probe slot is freed for the next call.
func (b *Breaker) Release(t Ticket) {
	if !t.ok || !t.probe {
		return
	}
	b.mu.Lock()
	if t.epoch == b.epoch && b.state == HalfOpen {
		b.state, b.openUntil = Open, time.Time{} // next Admit probes again
	}
	b.mu.Unlock()
}

// State is the current state (Open becomes HalfOpen only at the next Admit).
func (b *Breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// Trips counts how often the breaker opened.
func (b *Breaker) Trips() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.trips
}
