package modelcache

import (
	"context"
	"sync"

	"github.com/modelcache/modelcache/access"
)

// AccessManager is the seam through which an embedding application controls
// which models a caller may load (see package access).
type AccessManager = access.AccessManager

// AllowAll is the default AccessManager: everything is allowed, nothing recorded.
type AllowAll = access.AllowAll

// WithAccessGuard installs an access.ProviderGuard built from the client:
// unless opts say otherwise, it verifies keys with the client's Roboflow API
// settings and HTTP client (OFFLINE_MODE included), keeps its records in the
// client's cache, logs with the client's logger and uses its clock; an
// OfflineGrace of 0 takes MODELCACHE_GUARD_OFFLINE_GRACE from the client's
// config (access.NoOfflineGrace denies regardless). Invalid options make the
// guard deny every load (the error is logged).
func WithAccessGuard(opts access.Options) Option {
	return func(s *settings) { s.access = &clientGuard{c: &s.Client, opts: opts} }
}

// AccessGuard returns the guard installed by WithAccessGuard, or nil.
func (c *Client) AccessGuard() *access.ProviderGuard {
	cg, ok := c.access.(*clientGuard)
	if !ok {
		return nil
	}
	g, _ := cg.get()
	return g
}

// CheckAccess asks the client's access manager whether a Load of modelID
// with opts would be allowed, with the key Load would use (WithAPIKey, else
// ROBOFLOW_API_KEY). With WithAccessGuard the error is the guard's
// *access.AccessDeniedError (model, tenant, reason); with another manager a
// *AccessDeniedError. A guard's decision is remembered, so the Load that
// follows does not ask the provider again.
func (c *Client) CheckAccess(ctx context.Context, modelID string, opts ...LoadOption) error {
	o := newLoadOptions(opts)
	r := o.resolutionRequest(modelID, Runtime{}, c.cfg)
	key := r.EffectiveAPIKey()
	if cg, ok := c.access.(*clientGuard); ok {
		g, err := cg.get()
		if err != nil {
			return &access.AccessDeniedError{ModelID: modelID, Tenant: "unknown", Reason: access.ReasonMisconfigured, Err: err}
		}
		return g.Check(ctx, modelID, "", key)
	}
	if c.access.IsModelAccessForbidden(ctx, modelID, key) {
		return &AccessDeniedError{ModelID: modelID}
	}
	return nil
}

// clientGuard builds the guard on first use, when New has finished setting
// up the client (HTTP client, logger and clock may be given in any order).
type clientGuard struct {
	c    *Client
	opts access.Options
	once sync.Once
	g    *access.ProviderGuard
	err  error
}

func (cg *clientGuard) get() (*access.ProviderGuard, error) {
	cg.once.Do(func() {
		o, c := cg.opts, cg.c
		if o.Verifier == nil {
			// The client's Roboflow API client has no fallback key, so
			// anonymous stays anonymous.
			o.Verifier = access.ProviderVerifier(c.roboflow)
		}
		if o.Home == "" {
			o.Home = c.cfg.Home
		}
		if o.OfflineGrace == 0 {
			o.OfflineGrace = c.cfg.GuardOfflineGrace
		}
		if o.Logger == nil {
			o.Logger = c.log
		}
		if o.Now == nil {
			o.Now = c.now
		}
		cg.g, cg.err = access.NewProviderGuard(o)
		if cg.err != nil {
			c.log.Error("access guard not set up; every load is denied", "err", cg.err)
		}
	})
	return cg.g, cg.err
}

func (cg *clientGuard) IsModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) bool {
	g, err := cg.get()
	return err != nil || g.IsModelAccessForbidden(ctx, modelID, apiKey)
}

func (cg *clientGuard) OnModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) {
	if g, err := cg.get(); err == nil {
		g.OnModelAccessForbidden(ctx, modelID, apiKey)
	}
}

func (cg *clientGuard) CanUseCachedPackage(ctx context.Context, modelID, packageID string, apiKey *string) bool {
	g, err := cg.get()
	return err == nil && g.CanUseCachedPackage(ctx, modelID, packageID, apiKey)
}

// Check explains a refusal (access.Explainer).
func (cg *clientGuard) Check(ctx context.Context, modelID, packageID string, apiKey *string) error {
	g, err := cg.get()
	if err != nil {
		return &access.AccessDeniedError{ModelID: modelID, Tenant: "unknown", Reason: access.ReasonMisconfigured, Err: err}
	}
	return g.Check(ctx, modelID, packageID, apiKey)
}

func (cg *clientGuard) OnModelPackageAccessGranted(ctx context.Context, modelID, packageID string, apiKey *string) {
	if g, err := cg.get(); err == nil {
		g.OnModelPackageAccessGranted(ctx, modelID, packageID, apiKey)
	}
}
