package modelcache

import (
	"fmt"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
)

// AccessDeniedError: the access manager refused the model.
type AccessDeniedError struct{ ModelID string }

func (e *AccessDeniedError) Error() string {
	return fmt.Sprintf("access to model %q is forbidden by the access manager", e.ModelID)
}

// PackageFailure is why one negotiated package could not be loaded.
type PackageFailure struct {
	PackageID string
	Err       error
}

// AllPackagesFailedError: every negotiated package was tried and failed.
type AllPackagesFailedError struct {
	ModelID  string
	Failures []PackageFailure
}

func (e *AllPackagesFailedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "could not load any package of model %q:", e.ModelID)
	for _, f := range e.Failures {
		fmt.Fprintf(&b, "\n  - %s: %v", f.PackageID, f.Err)
	}
	return b.String()
}

// Unwrap exposes every package's error to errors.Is / errors.As.
func (e *AllPackagesFailedError) Unwrap() []error {
	out := make([]error, len(e.Failures))
	for i, f := range e.Failures {
		out[i] = f.Err
	}
	return out
}

// OfflineError: OFFLINE_MODE is on and the offline-weights registry cannot
// serve the model (no record, or its packages are incomplete on disk).
type OfflineError struct {
	ModelID    string
	Incomplete []string
}

func (e *OfflineError) Error() string {
	if len(e.Incomplete) == 0 {
		return fmt.Sprintf("No offline-weights record found for model '%s'. Build the offline cache by running once with network access and OFFLINE_MODE_WARM_UP=True, then restart with OFFLINE_MODE=True.", e.ModelID)
	}
	return fmt.Sprintf("offline-weights record for model '%s' found, but its packages are incomplete on disk: %s; run `modelcache verify %s`, or warm the cache again with network access",
		e.ModelID, strings.Join(e.Incomplete, "; "), e.ModelID)
}

func (e *OfflineError) Unwrap() error { return errdefs.ErrOffline }
