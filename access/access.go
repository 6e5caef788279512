// Package access decides which caller may load which model from a shared
// cache.
//
// AccessManager is the seam a Client consults on every load (it mirrors the
// reference's model-access-manager hooks); AllowAll is the default.
// ProviderGuard is the ready implementation for multi-tenant hosts: a tenant
// (an API key, or "anonymous" without one) is served a model, cached or not,
// only after the weights provider accepted that key for that model. Positive
// answers are kept in memory for a TTL, negative ones for a shorter one,
// concurrent checks of one (tenant, model) pair share one request, and an
// explicit offline policy decides what happens when the provider cannot be
// asked: deny (the default) or a grace period backed by verification records
// on disk. Every decision can be written to an audit log and counted in
// Prometheus. docs/multi-tenant.md describes the threat model.
package access

import "context"

// AccessManager is the seam through which an embedding application controls
// which models a caller may load, mirroring the reference's ModelAccessManager
// hooks. apiKey is the load's effective key (nil: none). Methods must be safe
// for concurrent use.
type AccessManager interface {
	// IsModelAccessForbidden short-circuits a load before the provider is asked.
	IsModelAccessForbidden(ctx context.Context, modelID string, apiKey *string) bool
	// OnModelAccessForbidden is told about a 401/403 from the provider.
	OnModelAccessForbidden(ctx context.Context, modelID string, apiKey *string)
	// CanUseCachedPackage decides whether an auto-resolution hit may be served
	// without asking the provider (step 4 of the hit validation).
	CanUseCachedPackage(ctx context.Context, modelID, packageID string, apiKey *string) bool
	// OnModelPackageAccessGranted is told about every successful load.
	OnModelPackageAccessGranted(ctx context.Context, modelID, packageID string, apiKey *string)
}

// AllowAll is the default AccessManager: everything is allowed, nothing recorded.
type AllowAll struct{}

func (AllowAll) IsModelAccessForbidden(context.Context, string, *string) bool         { return false }
func (AllowAll) OnModelAccessForbidden(context.Context, string, *string)              {}
func (AllowAll) CanUseCachedPackage(context.Context, string, string, *string) bool    { return true }
func (AllowAll) OnModelPackageAccessGranted(context.Context, string, string, *string) {}

// Explainer is implemented by access managers that can say why they refuse:
// when IsModelAccessForbidden answered true (or CanUseCachedPackage false
// for a package the load then cannot get elsewhere), Load returns Check's
// error instead of a bare refusal. ProviderGuard implements it.
type Explainer interface {
	Check(ctx context.Context, modelID, packageID string, apiKey *string) error
}
