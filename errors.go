package modelcache

import (
	"fmt"
	"strings"

	"github.com/modelcache/modelcache/access"
)

// AccessDeniedError: the access manager refused the model.
type AccessDeniedError struct {
	ModelID string
	// Reason, when set, says why.
	Reason string
}

func (e *AccessDeniedError) Error() string {
	if e.Reason != "" {
		return fmt.Sprintf("access to model %q is forbidden by the access manager: %s", e.ModelID, e.Reason)
	}
	return fmt.Sprintf("access to model %q is forbidden by the access manager", e.ModelID)
}

// Unwrap classifies the refusal as access.ErrAccessDenied.
func (e *AccessDeniedError) Unwrap() error { return access.ErrAccessDenied }

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
