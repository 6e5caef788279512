package access

import (
	"errors"
	"fmt"
)

// Reason says why a decision went the way it did. The values are stable: they
// appear in the audit log and as a Prometheus label.
type Reason string

// Reasons of allowed decisions.
const (
	// ReasonAccepted: the weights provider accepted the key for the model.
	ReasonAccepted Reason = "accepted"
	// ReasonOfflineGrace: the provider cannot be asked, and the key was
	// verified online for the model within the offline grace period.
	ReasonOfflineGrace Reason = "offline_grace"
)

// Reasons of denied decisions. The first five are the provider's answers
// (HTTP 401, 402, 403, 404, 423).
const (
	ReasonUnauthorized    Reason = "unauthorized"
	ReasonPaymentRequired Reason = "payment_required"
	ReasonForbidden       Reason = "forbidden"
	ReasonNotFound        Reason = "not_found"
	ReasonUsagePaused     Reason = "usage_paused"
	// ReasonRefused: the provider refused the load's own metadata request
	// (401/403 reported through OnModelAccessForbidden).
	ReasonRefused Reason = "provider_refused"
	// ReasonOffline: OFFLINE_MODE is on, so the provider is not asked, and no
	// verification within the grace period allows the load.
	ReasonOffline Reason = "offline_mode"
	// ReasonUnreachable: the provider could not be reached (connection
	// error, timeout, retryable status after every try).
	ReasonUnreachable Reason = "provider_unreachable"
	// ReasonProviderError: the provider answered, but neither accepted nor
	// refused the key (an unexpected status, an unreadable answer).
	ReasonProviderError Reason = "provider_error"
	// ReasonCanceled: the caller's context ended before a decision.
	ReasonCanceled Reason = "canceled"
	// ReasonMisconfigured: the guard could not be set up; it denies everything.
	ReasonMisconfigured Reason = "guard_misconfigured"
)

// unavailable reports whether r means "the provider could not be asked".
func (r Reason) unavailable() bool {
	return r == ReasonOffline || r == ReasonUnreachable || r == ReasonProviderError
}

// Source says where a decision came from.
type Source string

// Sources of decisions.
const (
	// SourceVerified: a verification request was made for this decision (or
	// an identical one in flight was joined).
	SourceVerified Source = "verified"
	// SourceCache: a decision of this process still within its TTL.
	SourceCache Source = "cache"
	// SourceRecord: the on-disk verification record (offline grace).
	SourceRecord Source = "record"
	// SourceLoad: the load's own request to the provider was refused.
	SourceLoad Source = "load"
)

// ErrAccessDenied matches every *AccessDeniedError (errors.Is).
var ErrAccessDenied = errors.New("model access denied")

// AccessDeniedError is a refused load: it names the model, the tenant (a
// prefix of the key's hash, or "anonymous"; never the key) and the reason.
type AccessDeniedError struct {
	ModelID string
	// PackageID is the cached package that was asked for ("" for a model-level check).
	PackageID string
	// Tenant is the key-hash prefix of the audit log, or "anonymous".
	Tenant string
	Reason Reason
	// StatusCode is the provider's HTTP status (401, 402, 403, 404, 423), 0 when none.
	StatusCode int
	// Err is the provider's error or why it could not be asked; it never
	// contains the key (provider errors are redacted at the source).
	Err error
}

func (e *AccessDeniedError) Error() string {
	what := fmt.Sprintf("access to model %q denied for tenant %s", e.ModelID, e.Tenant)
	var why string
	switch e.Reason {
	case ReasonUnauthorized:
		why = "the weights provider does not accept this API key (401); check the key"
	case ReasonPaymentRequired:
		why = "the weights provider requires payment for this workspace (402)"
	case ReasonForbidden:
		why = "the API key has no access to this model (403)"
	case ReasonNotFound:
		why = "the weights provider does not know this model for this API key (404)"
	case ReasonUsagePaused:
		why = "usage is paused for this workspace (423)"
	case ReasonRefused:
		why = "the weights provider refused this API key for this model"
	case ReasonOffline:
		why = "OFFLINE_MODE is on and the key was not verified online for this model within the offline grace period; " +
			"load it once online, or allow a grace period (MODELCACHE_GUARD_OFFLINE_GRACE, pull --offline-grace)"
	case ReasonUnreachable, ReasonProviderError:
		why = "the weights provider could not verify the key and the key was not verified online for this model within the offline grace period; " +
			"retry when the provider is reachable, or allow a grace period (MODELCACHE_GUARD_OFFLINE_GRACE, pull --offline-grace)"
	case ReasonCanceled:
		why = "the request ended before the key could be verified"
	case ReasonMisconfigured:
		why = "the access guard is misconfigured and denies every load"
	default:
		why = string(e.Reason)
	}
	if e.Err != nil {
		return what + ": " + why + ": " + e.Err.Error()
	}
	return what + ": " + why
}

// Unwrap returns the provider's error (so errors.Is(err, provider.ErrForbidden) works).
func (e *AccessDeniedError) Unwrap() error { return e.Err }

// Is matches ErrAccessDenied.
func (e *AccessDeniedError) Is(target error) bool { return target == ErrAccessDenied }
