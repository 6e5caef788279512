package access

import (
	"context"
	"errors"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/provider"
)

// Verifier asks the weights provider whether apiKey (nil: anonymous) may
// read modelID. It returns nil when the provider accepted the key; a
// *provider.RetrievalError of kind Unauthorized, PaymentRequired, Forbidden,
// NotFound or UsagePaused when it refused it; anything else means the
// provider could not be asked (errors matching errdefs.ErrOffline: it must
// not be, OFFLINE_MODE) and the offline policy decides.
type Verifier interface {
	Verify(ctx context.Context, modelID string, apiKey *string) error
}

// VerifierFunc adapts a function to Verifier.
type VerifierFunc func(ctx context.Context, modelID string, apiKey *string) error

// Verify calls f.
func (f VerifierFunc) Verify(ctx context.Context, modelID string, apiKey *string) error {
	return f(ctx, modelID, apiKey)
}

// ProviderVerifier verifies with one metadata request to p (for the Roboflow
// API: GET /models/v1/external/weights with the key as bearer token). p must
// not fall back to a key of its own for an anonymous request, or anonymous
// callers would be verified as that key's holder.
func ProviderVerifier(p provider.Provider) Verifier {
	return VerifierFunc(func(ctx context.Context, modelID string, apiKey *string) error {
		req := provider.Request{ModelID: modelID}
		if apiKey != nil {
			req.APIKey = *apiKey
		}
		_, err := p.ModelMetadata(ctx, req)
		return err
	})
}

// outcomeKind is what a verification established.
type outcomeKind uint8

const (
	accepted outcomeKind = iota + 1
	refused
	unavailable
)

// classify maps a Verifier's answer to an outcome and a reason.
func classify(err error) (outcomeKind, Reason, int) {
	if err == nil {
		return accepted, ReasonAccepted, 0
	}
	var re *provider.RetrievalError
	if errors.As(err, &re) {
		switch re.Kind {
		case provider.KindUnauthorized:
			return refused, ReasonUnauthorized, statusOr(re.StatusCode, 401)
		case provider.KindPaymentRequired:
			return refused, ReasonPaymentRequired, statusOr(re.StatusCode, 402)
		case provider.KindForbidden:
			return refused, ReasonForbidden, statusOr(re.StatusCode, 403)
		case provider.KindNotFound:
			return refused, ReasonNotFound, statusOr(re.StatusCode, 404)
		case provider.KindUsagePaused:
			return refused, ReasonUsagePaused, statusOr(re.StatusCode, 423)
		}
	}
	switch {
	case errors.Is(err, errdefs.ErrOffline):
		return unavailable, ReasonOffline, 0
	case errors.Is(err, provider.ErrRetry), errors.Is(err, context.DeadlineExceeded):
		return unavailable, ReasonUnreachable, 0
	}
	if re == nil {
		// Not the provider's own answer: a transport or programming error.
		return unavailable, ReasonUnreachable, 0
	}
	return unavailable, ReasonProviderError, re.StatusCode
}

func statusOr(got, def int) int {
	if got != 0 {
		return got
	}
	return def
}
