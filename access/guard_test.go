package access

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/provider"
)

// fakeProvider answers verifications from a table: key -> model -> error
// (missing model: 403; missing key: 401), or every request with down.
type fakeProvider struct {
	mu    sync.Mutex
	allow map[string][]string // "" is anonymous
	down  error
	calls atomic.Int64
	gate  chan struct{} // when set, each call waits for it to close
	enter chan struct{} // when set, each call signals it is in flight
}

func (f *fakeProvider) Verify(ctx context.Context, modelID string, apiKey *string) error {
	f.calls.Add(1)
	if f.enter != nil {
		f.enter <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down != nil {
		return f.down
	}
	k := ""
	if apiKey != nil {
		k = *apiKey
	}
	models, ok := f.allow[k]
	if !ok {
		return &provider.RetrievalError{Kind: provider.KindUnauthorized, StatusCode: 401, ModelID: modelID, Message: "Request unauthorised."}
	}
	for _, m := range models {
		if m == modelID {
			return nil
		}
	}
	return &provider.RetrievalError{Kind: provider.KindForbidden, StatusCode: 403, ModelID: modelID, Message: "Access forbidden to model " + modelID + "."}
}

func (f *fakeProvider) set(fn func()) { f.mu.Lock(); fn(); f.mu.Unlock() }

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }
func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

const (
	keyA = "rk-tenant-A-9f8e7d6c5b4a39281706"
	keyB = "rk-tenant-B-0a1b2c3d4e5f60718293"
)

func ptr(s string) *string { return &s }

func newGuard(t *testing.T, o Options) *ProviderGuard {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g, err := NewProviderGuard(o)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestClassify(t *testing.T) {
	re := func(k provider.Kind, status int) error {
		return fmt.Errorf("wrapped: %w", &provider.RetrievalError{Kind: k, StatusCode: status, Message: "m"})
	}
	cases := []struct {
		err    error
		kind   outcomeKind
		reason Reason
		status int
	}{
		{nil, accepted, ReasonAccepted, 0},
		{re(provider.KindUnauthorized, 401), refused, ReasonUnauthorized, 401},
		{re(provider.KindPaymentRequired, 402), refused, ReasonPaymentRequired, 402},
		{re(provider.KindForbidden, 403), refused, ReasonForbidden, 403},
		{re(provider.KindNotFound, 404), refused, ReasonNotFound, 404},
		{re(provider.KindUsagePaused, 423), refused, ReasonUsagePaused, 423},
		{re(provider.KindForbidden, 0), refused, ReasonForbidden, 403},
		{re(provider.KindRetrieval, 500), unavailable, ReasonProviderError, 500},
		{&provider.RetrievalError{Kind: provider.KindRetrieval, Err: errdefs.ErrOffline, Message: "offline"}, unavailable, ReasonOffline, 0},
		{&provider.RetryError{StatusCode: 503, Tries: 3, Message: "retry"}, unavailable, ReasonUnreachable, 0},
		{context.DeadlineExceeded, unavailable, ReasonUnreachable, 0},
		{errors.New("dial tcp: connection refused"), unavailable, ReasonUnreachable, 0},
	}
	for _, c := range cases {
		k, r, s := classify(c.err)
		if k != c.kind || r != c.reason || s != c.status {
			t.Errorf("classify(%v) = %v %s %d, want %v %s %d", c.err, k, r, s, c.kind, c.reason, c.status)
		}
	}
}

func TestOptionsValidated(t *testing.T) {
	v := VerifierFunc(func(context.Context, string, *string) error { return nil })
	for name, o := range map[string]Options{
		"no verifier":  {},
		"negative ttl": {Verifier: v, PositiveTTL: -time.Second},
		"negative neg": {Verifier: v, NegativeTTL: -time.Second},
		"negative max": {Verifier: v, MaxEntries: -1},
	} {
		_, err := NewProviderGuard(o)
		var oe *OptionsError
		if !errors.As(err, &oe) || !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("%s: %v, want an OptionsError", name, err)
		}
	}
}

func TestTTLs(t *testing.T) {
	clk := newClock()
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp, Now: clk.now, PositiveTTL: 10 * time.Minute, NegativeTTL: 30 * time.Second})
	ctx := context.Background()

	d := g.Decide(ctx, "ws/x/1", "", ptr(keyA))
	if !d.Allowed || d.Source != SourceVerified || d.Reason != ReasonAccepted || fp.calls.Load() != 1 {
		t.Fatalf("first: %+v after %d calls", d, fp.calls.Load())
	}
	clk.advance(9 * time.Minute)
	if d := g.Decide(ctx, "ws/x/1", "pkg", ptr(keyA)); !d.Allowed || d.Source != SourceCache || fp.calls.Load() != 1 {
		t.Fatalf("within the positive TTL: %+v after %d calls", d, fp.calls.Load())
	}
	clk.advance(2 * time.Minute)
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyA)); !d.Allowed || d.Source != SourceVerified || fp.calls.Load() != 2 {
		t.Fatalf("after the positive TTL: %+v after %d calls", d, fp.calls.Load())
	}

	// B is refused; the refusal is remembered for the negative TTL only.
	d = g.Decide(ctx, "ws/x/1", "", ptr(keyB))
	var ade *AccessDeniedError
	if d.Allowed || !errors.As(d.Err, &ade) || ade.Reason != ReasonUnauthorized || ade.StatusCode != 401 || ade.ModelID != "ws/x/1" {
		t.Fatalf("B: %+v", d)
	}
	if !errors.Is(d.Err, ErrAccessDenied) || !errors.Is(d.Err, provider.ErrUnauthorized) {
		t.Errorf("B's error does not match ErrAccessDenied and provider.ErrUnauthorized: %v", d.Err)
	}
	fp.set(func() { fp.allow[keyB] = []string{"ws/x/1"} })
	clk.advance(20 * time.Second)
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyB)); d.Allowed || d.Source != SourceCache {
		t.Fatalf("B within the negative TTL: %+v", d)
	}
	clk.advance(11 * time.Second)
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyB)); !d.Allowed || d.Source != SourceVerified {
		t.Fatalf("B after the negative TTL, now allowed upstream: %+v", d)
	}

	// Revocation: after the positive TTL the provider's refusal wins.
	fp.set(func() { fp.allow[keyA] = nil })
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyA)); !d.Allowed {
		t.Fatalf("A within its TTL: %+v", d)
	}
	clk.advance(11 * time.Minute)
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyA)); d.Allowed || d.Reason != ReasonForbidden {
		t.Fatalf("A revoked: %+v", d)
	}
	// Forget makes the next decision ask again.
	fp.set(func() { fp.allow[keyA] = []string{"ws/x/1"} })
	g.Forget(ptr(keyA), "")
	if d := g.Decide(ctx, "ws/x/1", "", ptr(keyA)); !d.Allowed || d.Source != SourceVerified {
		t.Fatalf("after Forget: %+v", d)
	}
}

func TestAnonymousIsATenant(t *testing.T) {
	fp := &fakeProvider{allow: map[string][]string{"": {"public/m/1"}, keyA: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp})
	ctx := context.Background()
	if err := g.Check(ctx, "public/m/1", "", nil); err != nil {
		t.Errorf("anonymous, public model: %v", err)
	}
	if err := g.Check(ctx, "public/m/1", "", ptr("")); err != nil {
		t.Errorf("empty key is anonymous: %v", err)
	}
	err := g.Check(ctx, "ws/x/1", "", nil)
	var ade *AccessDeniedError
	if !errors.As(err, &ade) || ade.Tenant != Anonymous {
		t.Errorf("anonymous, private model: %v", err)
	}
	if g.Tenant(nil) != Anonymous || len(g.Tenant(ptr(keyA))) != tenantIDLen || g.Tenant(ptr(keyA)) == g.Tenant(ptr(keyB)) {
		t.Errorf("tenants: %q %q %q", g.Tenant(nil), g.Tenant(ptr(keyA)), g.Tenant(ptr(keyB)))
	}
}

// TestCoalesced: concurrent checks of one pair make one request, and a
// caller that gives up does not cancel it for the others.
func TestCoalesced(t *testing.T) {
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}, gate: make(chan struct{}), enter: make(chan struct{}, 64)}
	g := newGuard(t, Options{Verifier: fp})
	impatient, cancel := context.WithCancel(context.Background())
	first := make(chan Decision, 1)
	go func() { first <- g.Decide(impatient, "ws/x/1", "", ptr(keyA)) }()
	<-fp.enter // the verification is in flight
	cancel()
	if d := <-first; d.Allowed || d.Reason != ReasonCanceled {
		t.Fatalf("canceled caller: %+v", d)
	}
	const n = 32
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if g.Decide(context.Background(), "ws/x/1", "", ptr(keyA)).Allowed {
				allowed.Add(1)
			}
		}()
	}
	close(fp.gate)
	wg.Wait()
	if allowed.Load() != n || fp.calls.Load() != 1 {
		t.Errorf("%d of %d allowed with %d provider calls, want all with 1", allowed.Load(), n, fp.calls.Load())
	}
}

func TestOfflineGraceAcrossProcesses(t *testing.T) {
	home := t.TempDir()
	clk := newClock()
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}, keyB: {"ws/y/1"}}}
	ctx := context.Background()
	online := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now})
	for _, c := range []struct{ key, model string }{{keyA, "ws/x/1"}, {keyB, "ws/y/1"}, {keyB, "ws/x/1"}} {
		online.Decide(ctx, c.model, "", ptr(c.key))
	}
	offline := errdefs.ErrOffline
	unreachable := &provider.RetryError{Tries: 3, Message: "connection refused"}
	for _, down := range []error{offline, unreachable} {
		fp.set(func() { fp.down = down })
		clk.advance(30 * time.Minute)
		// Each guard is a new process: nothing in memory.
		deny := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now})
		grace := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now, OfflineGrace: time.Hour})
		short := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now, OfflineGrace: 10 * time.Minute})
		for _, c := range []struct {
			key, model string
			want       bool
		}{{keyA, "ws/x/1", true}, {keyB, "ws/y/1", true}, {keyB, "ws/x/1", false}, {keyA, "ws/y/1", false}} {
			if d := deny.Decide(ctx, c.model, "", ptr(c.key)); d.Allowed || !d.Reason.unavailable() {
				t.Errorf("%v, deny policy, %s: %+v", down, c.model, d)
			}
			d := grace.Decide(ctx, c.model, "", ptr(c.key))
			if d.Allowed != c.want {
				t.Errorf("%v, 1h grace, %s by %s: %+v, want allowed=%v", down, c.model, grace.Tenant(ptr(c.key)), d, c.want)
			}
			if c.want && (d.Reason != ReasonOfflineGrace || d.Source != SourceRecord || d.VerifiedAt.IsZero()) {
				t.Errorf("grace decision: %+v", d)
			}
			if d := short.Decide(ctx, c.model, "", ptr(c.key)); d.Allowed {
				t.Errorf("%v, grace shorter than the record's age: %+v", down, d)
			}
		}
		clk.advance(-30 * time.Minute)
		fp.set(func() { fp.down = nil })
	}

	// A refusal erases the record: revoked keys get no grace.
	fp.set(func() { fp.allow[keyA] = nil })
	online.Forget(ptr(keyA), "")
	if d := online.Decide(ctx, "ws/x/1", "", ptr(keyA)); d.Allowed {
		t.Fatalf("revoked: %+v", d)
	}
	fp.set(func() { fp.down = offline })
	if d := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now, OfflineGrace: time.Hour}).Decide(ctx, "ws/x/1", "", ptr(keyA)); d.Allowed {
		t.Errorf("grace after a refusal: %+v", d)
	}
	// The load's own refusal (OnModelAccessForbidden) erases B's record too.
	fp.set(func() { fp.down = nil })
	online.OnModelAccessForbidden(ctx, "ws/y/1", ptr(keyB))
	if d := online.Decide(ctx, "ws/y/1", "", ptr(keyB)); d.Allowed || d.Reason != ReasonRefused {
		t.Errorf("after OnModelAccessForbidden: %+v", d)
	}
	fp.set(func() { fp.down = offline })
	if d := newGuard(t, Options{Verifier: fp, Home: home, Now: clk.now, OfflineGrace: time.Hour}).Decide(ctx, "ws/y/1", "", ptr(keyB)); d.Allowed {
		t.Errorf("grace after the load was refused: %+v", d)
	}
	assertNoSecret(t, home, nil, keyA, keyB)
}

// assertNoSecret fails if any key appears in a file name or file under dir,
// or in any of the captured outputs.
func assertNoSecret(t *testing.T, dir string, outputs map[string]string, keys ...string) {
	t.Helper()
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return nil
		}
		for _, k := range keys {
			if strings.Contains(p, k) {
				t.Errorf("a path names the key: %s", p)
			}
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			for _, k := range keys {
				if bytes.Contains(b, []byte(k)) {
					t.Errorf("%s holds an API key in clear", p)
				}
			}
		}
		return nil
	})
	for name, out := range outputs {
		for _, k := range keys {
			if strings.Contains(out, k) {
				t.Errorf("%s contains an API key", name)
			}
		}
	}
}

func TestAuditAndMetrics(t *testing.T) {
	var audit bytes.Buffer
	reg := prometheus.NewPedanticRegistry()
	fp := &fakeProvider{allow: map[string][]string{keyA: {"ws/x/1"}}}
	g := newGuard(t, Options{Verifier: fp, Home: t.TempDir(), Metrics: reg,
		AuditLogger: slog.New(slog.NewJSONHandler(&audit, nil))})
	ctx := context.Background()
	g.Decide(ctx, "ws/x/1", "", ptr(keyA))
	g.Decide(ctx, "ws/x/1", "pkgA", ptr(keyA))
	g.Decide(ctx, "ws/x/1", "", ptr(keyB))
	g.Decide(ctx, "ws/x/1", "", nil)

	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(audit.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	want := []map[string]any{
		{"msg": auditMessage, "key_hash": g.Tenant(ptr(keyA)), "model_id": "ws/x/1", "package_id": "", "decision": "allowed", "reason": "accepted", "source": "verified"},
		{"key_hash": g.Tenant(ptr(keyA)), "package_id": "pkgA", "decision": "allowed", "source": "cache"},
		{"key_hash": g.Tenant(ptr(keyB)), "decision": "denied", "reason": "unauthorized", "source": "verified", "status": 401.0},
		{"key_hash": "anonymous", "decision": "denied", "reason": "unauthorized"},
	}
	if len(lines) != len(want) {
		t.Fatalf("%d audit lines, want %d:\n%s", len(lines), len(want), audit.String())
	}
	for i, w := range want {
		for k, v := range w {
			if lines[i][k] != v {
				t.Errorf("audit line %d: %s = %v, want %v", i, k, lines[i][k], v)
			}
		}
		if _, ok := lines[i]["time"]; !ok {
			t.Errorf("audit line %d has no time", i)
		}
	}
	if _, ok := lines[0]["verified_at"]; !ok {
		t.Errorf("an accepted decision does not say when it was verified: %v", lines[0])
	}

	series := gather(t, reg)
	if n := len(series[MetricDecisions]); n != 3 {
		t.Errorf("%d decision series, want 3: %v", n, series[MetricDecisions])
	}
	if v := series[MetricDecisions]["decision=denied,reason=unauthorized,source=verified"]; v != 2 {
		t.Errorf("denied/unauthorized/verified = %v, want 2", v)
	}
	if v := series[MetricVerifications]["outcome=accepted"]; v != 1 {
		t.Errorf("accepted verifications = %v, want 1", v)
	}
	// A second guard on the same registry shares the counters.
	g2 := newGuard(t, Options{Verifier: fp, Metrics: reg})
	g2.Decide(ctx, "ws/x/1", "", ptr(keyA))
	if v := gather(t, reg)[MetricVerifications]["outcome=accepted"]; v != 2 {
		t.Errorf("accepted verifications after a second guard = %v, want 2", v)
	}
	var exposition bytes.Buffer
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		fmt.Fprintln(&exposition, mf.String())
	}
	assertNoSecret(t, t.TempDir(), map[string]string{"audit log": audit.String(), "metrics": exposition.String()}, keyA, keyB)
}

// gather returns counter values by metric name and "label=value,..." (labels sorted).
func gather(t *testing.T, g prometheus.Gatherer) map[string]map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		m := map[string]float64{}
		for _, metric := range mf.GetMetric() {
			var ls []string
			for _, lp := range metric.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			m[strings.Join(ls, ",")] = metric.GetCounter().GetValue()
		}
		out[mf.GetName()] = m
	}
	return out
}

func TestDecisionsBounded(t *testing.T) {
	clk := newClock()
	fp := &fakeProvider{allow: map[string][]string{keyA: {"m/0"}}}
	g := newGuard(t, Options{Verifier: fp, Now: clk.now, MaxEntries: 100})
	for i := 0; i < 1000; i++ {
		g.Decide(context.Background(), fmt.Sprintf("m/%d", i), "", ptr(keyA))
		if n := g.cache.len(); n > 100 {
			t.Fatalf("%d entries with MaxEntries 100", n)
		}
	}
	// Evictions never drop the decision just stored.
	for i := 1000; i < 1100; i++ {
		g.Decide(context.Background(), fmt.Sprintf("m/%d", i), "", ptr(keyA))
	}
	calls := fp.calls.Load()
	if d := g.Decide(context.Background(), "m/1099", "", ptr(keyA)); d.Source != SourceCache || fp.calls.Load() != calls {
		t.Errorf("the newest decision was evicted: %+v", d)
	}
}
