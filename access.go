package modelcache

import (
	"context"

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
	return func(s *settings) {
		c := &s.Client
		s.access = access.NewDeferred(func() (*access.ProviderGuard, error) {
			o := opts
			if o.Verifier == nil {
				// The client's API client has no fallback key: anonymous stays anonymous.
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
			g, err := access.NewProviderGuard(o)
			if err != nil {
				c.log.Error("access guard not set up; every load is denied", "err", err)
			}
			return g, err
		})
	}
}

// AccessGuard returns the guard installed by WithAccessGuard, or nil.
func (c *Client) AccessGuard() *access.ProviderGuard {
	d, ok := c.access.(*access.Deferred)
	if !ok {
		return nil
	}
	g, _ := d.Guard()
	return g
}

// CheckAccess asks the client's access manager whether a Load of modelID
// with opts would be allowed, with the key Load would use (WithAPIKey, else
// ROBOFLOW_API_KEY). The error is the manager's explanation (with
// WithAccessGuard: *access.AccessDeniedError naming model, tenant and
// reason), else a *AccessDeniedError. A guard's decision is remembered, so
// the Load that follows does not ask the provider again.
func (c *Client) CheckAccess(ctx context.Context, modelID string, opts ...LoadOption) error {
	o := newLoadOptions(opts)
	r := o.resolutionRequest(modelID, Runtime{}, c.cfg)
	key := r.EffectiveAPIKey()
	if e, ok := c.access.(access.Explainer); ok {
		return e.Check(ctx, modelID, "", key)
	}
	if c.access.IsModelAccessForbidden(ctx, modelID, key) {
		return &AccessDeniedError{ModelID: modelID}
	}
	return nil
}
