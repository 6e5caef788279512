package tier

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_800_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func admit(t *testing.T, b *Breaker) Ticket {
	t.Helper()
	tk, ok := b.Admit()
	if !ok {
		t.Fatalf("not admitted (state %s)", b.State())
	}
	return tk
}

func refused(t *testing.T, b *Breaker) {
	t.Helper()
	if _, ok := b.Admit(); ok {
		t.Fatalf("admitted in state %s", b.State())
	}
}

func TestBreakerOpensAtThresholdAndProbesOnce(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(3, time.Minute, clk)
	var trips, reopens, closes int
	b.onTrip = func(reopen bool) {
		trips++
		if reopen {
			reopens++
		}
	}
	b.onClose = func() { closes++ }

	for i := 0; i < 2; i++ {
		b.Failure(admit(t, b))
	}
	if b.State() != Closed {
		t.Fatalf("open after 2 of 3 failures")
	}
	b.Failure(admit(t, b))
	if b.State() != Open || trips != 1 || b.Trips() != 1 {
		t.Fatalf("after 3 failures: state %s, trips %d", b.State(), trips)
	}
	refused(t, b)
	clk.Advance(time.Minute - time.Nanosecond)
	refused(t, b)

	clk.Advance(time.Nanosecond)
	probe := admit(t, b)
	if b.State() != HalfOpen {
		t.Fatalf("state %s after the cooldown, want half-open", b.State())
	}
	refused(t, b) // one probe only
	b.Failure(probe)
	if b.State() != Open || trips != 2 || reopens != 1 {
		t.Fatalf("failed probe: state %s, trips %d, reopens %d", b.State(), trips, reopens)
	}
	refused(t, b)
	clk.Advance(time.Minute)
	b.Success(admit(t, b))
	if b.State() != Closed || closes != 1 {
		t.Fatalf("successful probe: state %s, closes %d", b.State(), closes)
	}
	// Closed again with a fresh count: it takes the threshold again.
	b.Failure(admit(t, b))
	b.Failure(admit(t, b))
	if b.State() != Closed {
		t.Fatal("a closed breaker kept failures from before it opened")
	}
}

// TestBreakerLeakyCount: a success takes one failure off; it does not
// erase a run of failures.
func TestBreakerLeakyCount(t *testing.T) {
	b := NewBreaker(3, time.Minute, newFakeClock())
	b.Failure(admit(t, b))
	b.Failure(admit(t, b))
	b.Success(admit(t, b)) // 2 -> 1
	b.Failure(admit(t, b)) // 2
	if b.State() != Closed {
		t.Fatal("opened at a leaky count of 2")
	}
	b.Failure(admit(t, b)) // 3
	if b.State() != Open {
		t.Fatal("not open at a leaky count of 3")
	}
	b2 := NewBreaker(3, time.Minute, newFakeClock())
	for i := 0; i < 10; i++ {
		b2.Success(admit(t, b2))
	}
	b2.Failure(admit(t, b2))
	b2.Failure(admit(t, b2))
	b2.Failure(admit(t, b2))
	if b2.State() != Open {
		t.Fatal("successes before the failures banked credit")
	}
}

// TestBreakerStaleOutcomes: calls admitted before a trip report into the
// old epoch: they neither close the breaker nor count afterwards.
func TestBreakerStaleOutcomes(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(2, time.Minute, clk)
	slowOK := admit(t, b)
	slowBad := admit(t, b)
	b.Failure(admit(t, b))
	b.Failure(admit(t, b))
	if b.State() != Open {
		t.Fatal("not open")
	}
	b.Success(slowOK)
	if b.State() != Open {
		t.Fatal("a success admitted before the trip closed the breaker")
	}
	clk.Advance(time.Minute)
	probe := admit(t, b)
	b.Failure(slowBad) // stale: must not fail the probe's window
	if b.State() != HalfOpen {
		t.Fatalf("stale failure changed the state to %s", b.State())
	}
	b.Success(probe)
	if b.State() != Closed {
		t.Fatalf("probe success: %s", b.State())
	}
}

// TestBreakerLostProbe: a probe that never reports is given up after a
// cooldown; a released one frees the slot at once.
func TestBreakerLostProbe(t *testing.T) {
	clk := newFakeClock()
	b := NewBreaker(1, time.Minute, clk)
	b.Failure(admit(t, b))
	clk.Advance(time.Minute)
	admit(t, b) // lost
	refused(t, b)
	clk.Advance(time.Minute)
	p := admit(t, b)
	b.Release(p)
	p2 := admit(t, b)
	b.Success(p2)
	if b.State() != Closed {
		t.Fatalf("state %s", b.State())
	}
}

func TestBreakerConcurrentUse(t *testing.T) {
	b := NewBreaker(5, time.Hour, newFakeClock())
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if tk, ok := b.Admit(); ok {
					if j%3 == 0 {
						b.Failure(tk)
					} else {
						b.Success(tk)
					}
				}
			}
		}()
	}
	wg.Wait()
	_ = b.State()
}
