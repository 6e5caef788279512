package access_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/provider"
)

type tenant struct{ name, key string }

var (
	tenants = []tenant{{"A", keyA}, {"B", keyB}, {"anonymous", ""}}
	models  = []string{modelX, modelY}
)

// upstreamAllows is access.json's answer: A may read X and Y, B only Y,
// anonymous nothing.
func upstreamAllows(key, model string) bool {
	return key == keyA || (key == keyB && model == modelY)
}

// verdict checks one load against the expectation: allowed exactly when
// want, and a denial is the guard's (an AccessDeniedError), with no package.
func verdict(t *testing.T, state string, tn tenant, model string, pkg *modelcache.Package, err error, want bool) {
	t.Helper()
	got := err == nil && pkg != nil
	if got != want {
		t.Errorf("%s: tenant %s, model %s: allowed=%v, want %v (err: %v)", state, tn.name, model, got, want, err)
		return
	}
	// Load returns the guard's typed refusal (model, tenant, reason).
	var ade *access.AccessDeniedError
	if !want && (!errors.As(err, &ade) || !errors.Is(err, access.ErrAccessDenied)) {
		t.Errorf("%s: tenant %s, model %s: denied by %v, want the access guard's AccessDeniedError", state, tn.name, model, err)
	}
}

// TestTenantMatrix: for every (tenant, model) × (cold, warm-by-other-tenant,
// warm-by-self, upstream down with deny, upstream down with grace, and the
// same two under OFFLINE_MODE), through real HTTP to the registry server
// with access.json, the load is allowed exactly when the upstream allows it
// (and, when the upstream cannot be asked, the grace rule). Then every
// home, log, error and metric is searched for the keys.
func TestTenantMatrix(t *testing.T) {
	w := newWorld(t)
	up := newUpstream(t, w, modelX, modelY)

	t.Run("cold", func(t *testing.T) {
		for _, tn := range tenants {
			for _, m := range models {
				c := w.client(t, proc{home: w.home(t), apiHost: up.URL})
				pkg, err := w.load(t, c, tn.key, m)
				verdict(t, "cold", tn, m, pkg, err, upstreamAllows(tn.key, m))
			}
		}
	})

	t.Run("warm-by-other-tenant", func(t *testing.T) {
		for _, tn := range tenants {
			for _, m := range models {
				// One process serves every tenant from one cache.
				c := w.client(t, proc{home: w.home(t), apiHost: up.URL})
				warm, err := w.load(t, c, keyWarmer, m)
				if err != nil {
					t.Fatalf("operator warm-up of %s: %v", m, err)
				}
				pkg, err := w.load(t, c, tn.key, m)
				verdict(t, "warm-by-other", tn, m, pkg, err, upstreamAllows(tn.key, m))
				if pkg != nil && pkg.Dir != warm.Dir {
					t.Errorf("warm-by-other: %s got %s, not the cached %s", tn.name, pkg.Dir, warm.Dir)
				}
			}
		}
	})

	t.Run("warm-by-self", func(t *testing.T) {
		for _, tn := range tenants {
			for _, m := range models {
				home := w.home(t)
				first := w.client(t, proc{home: home, apiHost: up.URL})
				w.load(t, first, tn.key, m)
				for i, c := range []*modelcache.Client{first, w.client(t, proc{home: home, apiHost: up.URL})} {
					pkg, err := w.load(t, c, tn.key, m)
					verdict(t, []string{"warm-by-self (same process)", "warm-by-self (new process)"}[i], tn, m, pkg, err, upstreamAllows(tn.key, m))
					if pkg != nil && !pkg.FromCache {
						t.Errorf("warm-by-self: %s's second load of %s did not come from the auto-resolution cache", tn.name, m)
					}
				}
			}
		}
	})

	// warmAll fills one home the way a multi-tenant host's would be: the
	// operator loads every model, every tenant loads every model it may.
	warmAll := func(t *testing.T, home, apiHost string, warmUp bool) {
		c := w.client(t, proc{home: home, apiHost: apiHost, warmUp: warmUp})
		for _, m := range models {
			if _, err := w.load(t, c, keyWarmer, m); err != nil {
				t.Fatalf("warm-up of %s: %v", m, err)
			}
		}
		for _, tn := range tenants {
			for _, m := range models {
				w.load(t, c, tn.key, m)
			}
		}
	}

	t.Run("upstream-down", func(t *testing.T) {
		home := w.home(t)
		own := newUpstream(t, w, modelX, modelY)
		warmAll(t, home, own.URL, false)
		own.down()
		deny := w.client(t, proc{home: home, apiHost: own.URL})
		grace := w.client(t, proc{home: home, apiHost: own.URL, grace: time.Hour})
		later := func() time.Time { return time.Now().Add(2 * time.Hour) }
		expired := w.client(t, proc{home: home, apiHost: own.URL, grace: time.Hour, now: later})
		for _, tn := range tenants {
			for _, m := range models {
				pkg, err := w.load(t, deny, tn.key, m)
				verdict(t, "down, deny", tn, m, pkg, err, false)
				pkg, err = w.load(t, grace, tn.key, m)
				verdict(t, "down, 1h grace", tn, m, pkg, err, upstreamAllows(tn.key, m))
				pkg, err = w.load(t, expired, tn.key, m)
				verdict(t, "down, grace expired", tn, m, pkg, err, false)
			}
		}
	})

	t.Run("offline-mode", func(t *testing.T) {
		home := w.home(t)
		own := newUpstream(t, w, modelX, modelY)
		warmAll(t, home, own.URL, true) // OFFLINE_MODE_WARM_UP: offline records for X and Y
		deny := w.client(t, proc{home: home, apiHost: own.URL, offline: true})
		grace := w.client(t, proc{home: home, apiHost: own.URL, offline: true, grace: time.Hour})
		for _, tn := range tenants {
			for _, m := range models {
				pkg, err := w.load(t, deny, tn.key, m)
				verdict(t, "OFFLINE_MODE, deny", tn, m, pkg, err, false)
				pkg, err = w.load(t, grace, tn.key, m)
				verdict(t, "OFFLINE_MODE, 1h grace", tn, m, pkg, err, upstreamAllows(tn.key, m))
			}
		}
		// Without the guard (the reference's behaviour) the warmed cache
		// serves everybody: this is the hole the matrix shows closed.
		open := w.client(t, proc{home: home, apiHost: own.URL, offline: true, allowAll: true})
		for _, tn := range []tenant{{"anonymous", ""}, {"B", keyB}} {
			if _, err := w.load(t, open, tn.key, modelX); err != nil {
				t.Errorf("without a guard, OFFLINE_MODE should serve X to %s (the scenario would not test the guard): %v", tn.name, err)
			}
		}
	})

	w.assertNoKeyAnywhere(t)
}

// TestRefusalsMappedOverHTTP: the provider's 401/402/403/404/423 become an
// AccessDeniedError naming the model and the reason, never the key.
func TestRefusalsMappedOverHTTP(t *testing.T) {
	w := newWorld(t)
	up := newUpstream(t, w, modelX, modelY, "acme-ws/missing/*")
	c := w.client(t, proc{home: w.home(t), apiHost: up.URL})
	cases := []struct {
		key, model string
		reason     access.Reason
		status     int
		sentinel   error
	}{
		{"", modelX, access.ReasonUnauthorized, 401, provider.ErrUnauthorized},
		{keyUnknown, modelX, access.ReasonUnauthorized, 401, provider.ErrUnauthorized},
		{keyTrial, modelX, access.ReasonPaymentRequired, 402, provider.ErrPaymentRequired},
		{keyB, modelX, access.ReasonForbidden, 403, provider.ErrForbidden},
		{keyA, "acme-ws/missing/1", access.ReasonNotFound, 404, provider.ErrModelNotFound},
		{keyPaused, modelY, access.ReasonUsagePaused, 423, provider.ErrUsagePaused},
	}
	for _, cs := range cases {
		var opts []modelcache.LoadOption
		if cs.key != "" {
			opts = append(opts, modelcache.WithAPIKey(cs.key))
		}
		err := c.CheckAccess(context.Background(), cs.model, opts...)
		w.noteErr(err)
		var ade *access.AccessDeniedError
		if !errors.As(err, &ade) || ade.Reason != cs.reason || ade.StatusCode != cs.status || ade.ModelID != cs.model {
			t.Errorf("%s: %v, want %s (%d)", cs.model, err, cs.reason, cs.status)
			continue
		}
		if !errors.Is(err, cs.sentinel) || !errors.Is(err, access.ErrAccessDenied) {
			t.Errorf("%v does not match %v and ErrAccessDenied", err, cs.sentinel)
		}
		if !strings.Contains(err.Error(), cs.model) || !strings.Contains(err.Error(), ade.Tenant) {
			t.Errorf("the error does not name the model and tenant: %v", err)
		}
		// The load itself is refused too, without a second request.
		before := up.metadata.Load()
		if _, err := w.load(t, c, cs.key, cs.model); err == nil {
			t.Errorf("%s loaded", cs.model)
		}
		if up.metadata.Load() != before {
			t.Errorf("a refused pair was asked again within the negative TTL")
		}
	}
	if err := c.CheckAccess(context.Background(), modelX, modelcache.WithAPIKey(keyA)); err != nil {
		t.Errorf("A on X: %v", err)
	}
	w.assertNoKeyAnywhere(t)
}

// TestRevocationOverHTTP: a key that loaded a model once loses it, cached
// copy included, once the provider refuses it and the positive TTL is over;
// its verification record is erased, so no offline grace either.
func TestRevocationOverHTTP(t *testing.T) {
	w := newWorld(t)
	up := newUpstream(t, w, modelX, modelY)
	home := w.home(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c := w.client(t, proc{home: home, apiHost: up.URL, now: clock})
	if _, err := w.load(t, c, keyA, modelX); err != nil {
		t.Fatal(err)
	}
	up.swap(t, w, modelY) // A loses X upstream
	if pkg, err := w.load(t, c, keyA, modelX); err != nil || !pkg.FromCache {
		t.Fatalf("within the positive TTL the cached decision holds: %v", err)
	}
	mu.Lock()
	now = now.Add(access.DefaultPositiveTTL + time.Second)
	mu.Unlock()
	pkg, err := w.load(t, c, keyA, modelX)
	verdict(t, "revoked, same process", tenant{"A", keyA}, modelX, pkg, err, false)
	fresh := w.client(t, proc{home: home, apiHost: up.URL, now: clock})
	pkg, err = w.load(t, fresh, keyA, modelX)
	verdict(t, "revoked, new process", tenant{"A", keyA}, modelX, pkg, err, false)
	if pkg, err := w.load(t, fresh, keyA, modelY); err != nil || pkg == nil {
		t.Errorf("A still reads Y: %v", err)
	}
	up.down()
	grace := w.client(t, proc{home: home, apiHost: up.URL, now: clock, grace: 24 * time.Hour})
	pkg, err = w.load(t, grace, keyA, modelX)
	verdict(t, "revoked, then upstream down with grace", tenant{"A", keyA}, modelX, pkg, err, false)
	w.assertNoKeyAnywhere(t)
}

// TestCoalescedOverHTTP: concurrent warm loads of one tenant in a fresh
// process make one verification request between them.
func TestCoalescedOverHTTP(t *testing.T) {
	w := newWorld(t)
	up := newUpstream(t, w, modelX, modelY)
	home := w.home(t)
	if _, err := w.load(t, w.client(t, proc{home: home, apiHost: up.URL}), keyA, modelX); err != nil {
		t.Fatal(err)
	}
	c := w.client(t, proc{home: home, apiHost: up.URL})
	before := up.metadata.Load()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pkg, err := c.Load(context.Background(), modelX, modelcache.WithAPIKey(keyA))
			if err == nil && !pkg.FromCache {
				err = errors.New("not served from the auto-resolution cache")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := up.metadata.Load() - before; got != 1 {
		t.Errorf("%d concurrent warm loads made %d metadata requests, want 1", n, got)
	}
}
