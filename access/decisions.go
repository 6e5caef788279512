package access

import (
	"sync"
	"time"
)

// outcome is what this process learnt about one (tenant, model) pair.
type outcome struct {
	kind   outcomeKind
	reason Reason
	status int
	cause  error
	// verifiedAt is when the provider accepted the key (accepted), or the
	// time of the on-disk record read while it could not be asked
	// (unavailable; zero: no usable record).
	verifiedAt time.Time
	expires    time.Time
}

// pairKey identifies a (tenant, model) pair by the key's hash.
type pairKey struct{ tenant, model string }

// decisions is the in-memory TTL cache of outcomes. It is bounded: when
// full, expired outcomes are dropped first, then arbitrary ones (a dropped
// outcome only costs a verification request).
type decisions struct {
	mu  sync.RWMutex
	m   map[pairKey]*outcome
	max int
}

func newDecisions(max int) *decisions {
	return &decisions{m: map[pairKey]*outcome{}, max: max}
}

// get returns the pair's outcome while it is fresh.
func (d *decisions) get(k pairKey, now time.Time) *outcome {
	d.mu.RLock()
	o := d.m[k]
	d.mu.RUnlock()
	if o == nil || !now.Before(o.expires) {
		return nil
	}
	return o
}

func (d *decisions) put(k pairKey, o *outcome, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.m[k]; !ok && len(d.m) >= d.max {
		for pk, po := range d.m {
			if !now.Before(po.expires) {
				delete(d.m, pk)
			}
		}
		for pk := range d.m {
			if len(d.m) < d.max*3/4+1 {
				break
			}
			delete(d.m, pk)
		}
	}
	d.m[k] = o
}

// forget drops the outcomes of tenant for model ("" : every model).
func (d *decisions) forget(tenant, model string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if model != "" {
		delete(d.m, pairKey{tenant, model})
		return
	}
	for pk := range d.m {
		if pk.tenant == tenant {
			delete(d.m, pk)
		}
	}
}

func (d *decisions) len() int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.m)
}
