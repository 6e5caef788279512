package modelcache

import "context"

// AccessManager is the seam through which an embedding application controls
// which models a caller may load, mirroring the reference's ModelAccessManager
// hooks. Methods must be safe for concurrent use.
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
