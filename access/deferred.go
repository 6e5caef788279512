package access

import (
	"context"
	"sync"
)

// Deferred is a ProviderGuard built on first use, for a caller whose guard
// settings are complete only after its own construction (the modelcache
// client: its HTTP client, logger and clock may be given in any order). A
// guard that cannot be built denies every load and says why.
type Deferred struct {
	build func() (*ProviderGuard, error)
	once  sync.Once
	g     *ProviderGuard
	err   error
}

// NewDeferred returns a Deferred guard that build makes on first use.
func NewDeferred(build func() (*ProviderGuard, error)) *Deferred { return &Deferred{build: build} }

var (
	_ AccessManager = (*Deferred)(nil)
	_ Explainer     = (*Deferred)(nil)
)

// Guard returns the guard, building it on the first call.
func (d *Deferred) Guard() (*ProviderGuard, error) {
	d.once.Do(func() { d.g, d.err = d.build() })
	return d.g, d.err
}

func (d *Deferred) IsModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) bool {
	g, err := d.Guard()
	return err != nil || g.IsModelAccessForbidden(ctx, modelID, apiKey)
}

func (d *Deferred) OnModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) {
	if g, err := d.Guard(); err == nil {
		g.OnModelAccessForbidden(ctx, modelID, apiKey)
	}
}

func (d *Deferred) CanUseCachedPackage(ctx context.Context, modelID, packageID string, apiKey *string) bool {
	g, err := d.Guard()
	return err == nil && g.CanUseCachedPackage(ctx, modelID, packageID, apiKey)
}

func (d *Deferred) OnModelPackageAccessGranted(ctx context.Context, modelID, packageID string, apiKey *string) {
	if g, err := d.Guard(); err == nil {
		g.OnModelPackageAccessGranted(ctx, modelID, packageID, apiKey)
	}
}

// Check explains a refusal; a guard that could not be built refuses as
// misconfigured.
func (d *Deferred) Check(ctx context.Context, modelID, packageID string, apiKey *string) error {
	g, err := d.Guard()
	if err != nil {
		return &AccessDeniedError{ModelID: modelID, Tenant: "unknown", Reason: ReasonMisconfigured, Err: err}
	}
	return g.Check(ctx, modelID, packageID, apiKey)
}
