package access

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
)

// Defaults of Options.
const (
	DefaultPositiveTTL   = 10 * time.Minute
	DefaultNegativeTTL   = 30 * time.Second
	DefaultVerifyTimeout = time.Minute
	DefaultMaxEntries    = 100_000
	// NoOfflineGrace denies every load the provider cannot verify, whatever
	// the environment says (Options.OfflineGrace; 0 may be replaced by the
	// configured MODELCACHE_GUARD_OFFLINE_GRACE by the caller).
	NoOfflineGrace time.Duration = -1
)

// Options configure a ProviderGuard.
type Options struct {
	// Verifier asks the weights provider (required for NewProviderGuard;
	// modelcache.WithAccessGuard fills in the client's Roboflow API).
	Verifier Verifier
	// Home is the cache root H. The guard keeps its salt and verification
	// records under H/.meta/guard; "" keeps nothing on disk (no offline grace).
	Home string
	// PositiveTTL is how long an accepted key is trusted without asking again
	// (0: DefaultPositiveTTL).
	PositiveTTL time.Duration
	// NegativeTTL is how long a refusal, or the provider being unavailable,
	// is remembered (0: DefaultNegativeTTL).
	NegativeTTL time.Duration
	// OfflineGrace: while the provider cannot be asked (unreachable, or
	// OFFLINE_MODE), a key verified online for a model within this duration
	// may keep loading it. <= 0 denies (the default).
	OfflineGrace time.Duration
	// VerifyTimeout bounds one verification, however many callers wait for
	// it (0: DefaultVerifyTimeout).
	VerifyTimeout time.Duration
	// MaxEntries bounds the in-memory decisions (0: DefaultMaxEntries).
	MaxEntries int
	// Logger receives operational messages (nil: slog.Default()).
	Logger *slog.Logger
	// AuditLogger, when set, receives one record per decision at AuditLevel
	// (docs/multi-tenant.md describes the fields).
	AuditLogger *slog.Logger
	AuditLevel  slog.Level
	// Metrics, when set, is where the decision and verification counters
	// are registered (never the global registry unless passed here).
	Metrics prometheus.Registerer
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// OptionsError: an Options field is unusable.
type OptionsError struct {
	Field  string
	Reason string
}

func (e *OptionsError) Error() string {
	return fmt.Sprintf("access guard option %s: %s", e.Field, e.Reason)
}

// Unwrap classifies the error as a bad parameter.
func (e *OptionsError) Unwrap() error { return errdefs.ErrInvalidParameter }

// withDefaults validates o and fills in the defaults.
func (o Options) withDefaults() (Options, error) {
	if o.Verifier == nil {
		return o, &OptionsError{Field: "Verifier", Reason: "required (use ProviderVerifier, or modelcache.WithAccessGuard)"}
	}
	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"PositiveTTL", &o.PositiveTTL, DefaultPositiveTTL},
		{"NegativeTTL", &o.NegativeTTL, DefaultNegativeTTL},
		{"VerifyTimeout", &o.VerifyTimeout, DefaultVerifyTimeout},
	} {
		if *d.v < 0 {
			return o, &OptionsError{Field: d.name, Reason: fmt.Sprintf("%v is negative", *d.v)}
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if o.MaxEntries < 0 {
		return o, &OptionsError{Field: "MaxEntries", Reason: fmt.Sprintf("%d is negative", o.MaxEntries)}
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o, nil
}

// ProviderGuard is an AccessManager for multi-tenant hosts: a load, cached
// or not, is allowed only when the weights provider accepts the load's key
// (nil: the anonymous tenant) for the model, within the TTLs and the offline
// policy of its Options. One guard serves any number of tenants; it is safe
// for concurrent use.
type ProviderGuard struct {
	o      Options
	hash   *hasher
	recs   *records // nil: nothing on disk
	cache  *decisions
	flight singleflight.Group
	audit  *auditor

	warnWrite sync.Once
}

var _ AccessManager = (*ProviderGuard)(nil)

// NewProviderGuard returns a guard. Problems with H/.meta/guard (unwritable,
// a symlink, a corrupt salt) do not fail it: they are logged, and the guard
// keeps nothing on disk, so an unverifiable load is denied.
func NewProviderGuard(opts Options) (*ProviderGuard, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &ProviderGuard{o: o, cache: newDecisions(o.MaxEntries)}
	if g.audit, err = newAuditor(&o); err != nil {
		return nil, fmt.Errorf("access guard metrics: %w", err)
	}
	if o.Home != "" {
		home, err := layout.NewHome(o.Home)
		if err != nil {
			return nil, err
		}
		dirs := guardDirs{home: home}
		g.hash, err = cacheSalt(dirs)
		if err == nil {
			g.recs = &records{dirs: dirs}
		} else {
			o.Logger.Warn("access guard keeps no verification records: the cache's guard salt is unusable; loads the provider cannot verify are denied",
				"err", err)
		}
	}
	if g.hash == nil {
		if g.hash, err = processSalt(); err != nil {
			return nil, err
		}
	}
	return g, nil
}

// OfflineGrace is the guard's offline grace period (<= 0: none).
func (g *ProviderGuard) OfflineGrace() time.Duration { return g.o.OfflineGrace }

// Tenant returns the identity the guard logs for apiKey: a prefix of the
// key's salted hash, or Anonymous. It never reveals the key.
func (g *ProviderGuard) Tenant(apiKey *string) string { return g.hash.tenant(apiKey).id }

// Decision is one access decision.
type Decision struct {
	Allowed bool
	Reason  Reason
	Source  Source
	// Tenant is the key-hash prefix, or Anonymous.
	Tenant    string
	ModelID   string
	PackageID string
	// StatusCode is the provider's refusal status (0: none).
	StatusCode int
	// VerifiedAt is when the provider last accepted the key for the model,
	// for allowed decisions.
	VerifiedAt time.Time
	// Err is a *AccessDeniedError when the decision is a denial, else nil.
	Err error
}

func (d *Decision) verdict() string {
	if d.Allowed {
		return "allowed"
	}
	return "denied"
}

// Check decides whether apiKey may load modelID (packageID names the cached
// package asked for, "" for a model-level check): nil, or a
// *AccessDeniedError naming the model and the reason.
func (g *ProviderGuard) Check(ctx context.Context, modelID, packageID string, apiKey *string) error {
	return g.Decide(ctx, modelID, packageID, apiKey).Err
}

// Decide is Check with the whole decision. Every call is audited.
func (g *ProviderGuard) Decide(ctx context.Context, modelID, packageID string, apiKey *string) Decision {
	t := g.hash.tenant(apiKey)
	k := pairKey{t.hash, modelID}
	src := SourceCache
	o := g.cache.get(k, g.o.Now())
	if o == nil {
		var err error
		if o, err = g.verify(ctx, t, k, apiKey); err != nil {
			d := Decision{Reason: ReasonCanceled, Source: SourceVerified, Tenant: t.id, ModelID: modelID, PackageID: packageID}
			d.Err = &AccessDeniedError{ModelID: modelID, PackageID: packageID, Tenant: t.id, Reason: ReasonCanceled, Err: err}
			g.audit.decision(ctx, &d)
			return d
		}
		src = SourceVerified
	}
	d := g.judge(o, t, modelID, packageID, src)
	g.audit.decision(ctx, &d)
	return d
}

// judge turns an outcome into a decision, applying the offline grace period.
func (g *ProviderGuard) judge(o *outcome, t tenant, modelID, packageID string, src Source) Decision {
	d := Decision{Reason: o.reason, Source: src, Tenant: t.id, ModelID: modelID, PackageID: packageID, StatusCode: o.status}
	switch o.kind {
	case accepted:
		d.Allowed, d.VerifiedAt = true, o.verifiedAt
		return d
	case unavailable:
		if g.o.OfflineGrace > 0 && !o.verifiedAt.IsZero() && g.o.Now().Sub(o.verifiedAt) <= g.o.OfflineGrace {
			d.Allowed, d.Reason, d.Source, d.VerifiedAt = true, ReasonOfflineGrace, SourceRecord, o.verifiedAt
			return d
		}
	}
	d.Err = &AccessDeniedError{ModelID: modelID, PackageID: packageID, Tenant: t.id, Reason: o.reason, StatusCode: o.status, Err: o.cause}
	return d
}

// verify asks the provider once for every concurrent caller of the pair.
// The request outlives a caller that gives up (its context ends), bounded by
// VerifyTimeout, so the others still get the answer.
func (g *ProviderGuard) verify(ctx context.Context, t tenant, k pairKey, apiKey *string) (*outcome, error) {
	ch := g.flight.DoChan(k.tenant+"\x00"+k.model, func() (any, error) {
		// A caller that missed the cache just before a flight for the pair
		// ended finds its outcome here instead of asking again.
		if o := g.cache.get(k, g.o.Now()); o != nil {
			return o, nil
		}
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), g.o.VerifyTimeout)
		defer cancel()
		err := g.o.Verifier.Verify(vctx, k.model, apiKey)
		return g.settle(t, k, err), nil
	})
	select {
	case r := <-ch:
		return r.Val.(*outcome), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// settle records a verification's outcome: in memory, and on disk (an
// acceptance is recorded, a refusal erases the record).
func (g *ProviderGuard) settle(t tenant, k pairKey, verr error) *outcome {
	now := g.o.Now()
	kind, reason, status := classify(verr)
	o := &outcome{kind: kind, reason: reason, status: status, expires: now.Add(g.o.NegativeTTL)}
	switch kind {
	case accepted:
		o.verifiedAt, o.expires = now, now.Add(g.o.PositiveTTL)
		if g.recs != nil {
			if err := g.recs.write(t, k.model, now); err != nil {
				g.warnWrite.Do(func() {
					g.o.Logger.Warn("access guard cannot record verifications; other processes of this cache get no offline grace from them",
						"err", err)
				})
			}
		}
	case refused:
		o.cause = verr
		g.erase(t, k.model)
	case unavailable:
		o.cause = verr
		if g.o.OfflineGrace > 0 && g.recs != nil {
			at, ok, err := g.recs.read(t, k.model, now)
			if err != nil {
				g.o.Logger.Warn("access guard verification record unusable", "key_hash", t.id, "model_id", k.model, "err", err)
			}
			if ok {
				o.verifiedAt = at
			}
		}
	}
	g.cache.put(k, o, now)
	g.audit.verification(kind)
	return o
}

func (g *ProviderGuard) erase(t tenant, modelID string) {
	if g.recs == nil {
		return
	}
	if err := g.recs.remove(t, modelID); err != nil {
		g.o.Logger.Warn("access guard could not remove the verification record of a refused key", "key_hash", t.id, "model_id", modelID, "err", err)
	}
}

// Forget drops what this process remembers about apiKey for modelID (""
// for every model), so the next load asks the provider again. Records on
// disk are kept; a refusal at that next verification erases them.
func (g *ProviderGuard) Forget(apiKey *string, modelID string) {
	g.cache.forget(g.hash.tenant(apiKey).hash, modelID)
}

// IsModelAccessForbidden implements AccessManager: the model-level check
// before the provider is asked.
func (g *ProviderGuard) IsModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) bool {
	return !g.Decide(ctx, modelID, "", apiKey).Allowed
}

// CanUseCachedPackage implements AccessManager: an auto-resolution hit is
// served only to a tenant the provider accepts.
func (g *ProviderGuard) CanUseCachedPackage(ctx context.Context, modelID, packageID string, apiKey *string) bool {
	return g.Decide(ctx, modelID, packageID, apiKey).Allowed
}

// OnModelAccessForbidden implements AccessManager: the provider refused the
// load's own request, so the pair is refused for NegativeTTL and its record
// erased, whatever was verified before.
func (g *ProviderGuard) OnModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) {
	t := g.hash.tenant(apiKey)
	now := g.o.Now()
	g.cache.put(pairKey{t.hash, modelID}, &outcome{kind: refused, reason: ReasonRefused, expires: now.Add(g.o.NegativeTTL)}, now)
	g.erase(t, modelID)
	d := Decision{Reason: ReasonRefused, Source: SourceLoad, Tenant: t.id, ModelID: modelID}
	g.audit.decision(ctx, &d)
}

// OnModelPackageAccessGranted implements AccessManager (nothing to do: the
// decision was taken and audited before the load).
func (g *ProviderGuard) OnModelPackageAccessGranted(context.Context, string, string, *string) {}
