package provider

import (
	"errors"
	"fmt"
	"strings"
)

// HelpBase is the root of the reference's error help pages.
const HelpBase = "https://inference-models.roboflow.com/errors"

// Kind classifies a RetrievalError (the reference's exception class).
type Kind int

// Retrieval error kinds. All of them are ModelRetrievalError in the reference.
const (
	// KindRetrieval is a plain ModelRetrievalError (unexpected status, decode
	// failure, empty package list, unknown provider, offline mode …).
	KindRetrieval Kind = iota
	KindUnauthorized
	KindPaymentRequired
	KindForbidden
	KindNotFound
	KindUsagePaused
)

// ClassName returns the reference's exception class name for k.
func (k Kind) ClassName() string {
	switch k {
	case KindUnauthorized:
		return "UnauthorizedModelAccessError"
	case KindPaymentRequired:
		return "PaymentRequiredModelAccessError"
	case KindForbidden:
		return "ForbiddenModelAccessError"
	case KindNotFound:
		return "ModelNotFoundError"
	case KindUsagePaused:
		return "UsagePausedModelAccessError"
	}
	return "ModelRetrievalError"
}

// Sentinels for errors.Is. ErrModelRetrieval matches every RetrievalError;
// the others match their kind only.
var (
	ErrModelRetrieval  = errors.New("model retrieval error")
	ErrUnauthorized    = errors.New("unauthorized model access")
	ErrPaymentRequired = errors.New("payment required for model access")
	ErrForbidden       = errors.New("forbidden model access")
	ErrModelNotFound   = errors.New("model not found")
	ErrUsagePaused     = errors.New("usage paused")
	// ErrRetry matches *RetryError.
	ErrRetry = errors.New("retryable provider error")
)

func (k Kind) sentinel() error {
	switch k {
	case KindUnauthorized:
		return ErrUnauthorized
	case KindPaymentRequired:
		return ErrPaymentRequired
	case KindForbidden:
		return ErrForbidden
	case KindNotFound:
		return ErrModelNotFound
	case KindUsagePaused:
		return ErrUsagePaused
	}
	return nil
}

// HelpURL returns the help page of an error class.
func HelpURL(className string) string {
	return HelpBase + "/model-retrieval/#" + strings.ToLower(className)
}

// RetrievalError is the Go form of the reference's ModelRetrievalError family.
// Branch with errors.As and Kind, or errors.Is with the sentinels above.
type RetrievalError struct {
	Kind Kind
	// StatusCode is the HTTP status that caused the error (0 if none).
	StatusCode int
	// ModelID is the requested model id, when known.
	ModelID string
	// Message is the reference-compatible message, without the help suffix.
	// It never contains an API key.
	Message string
	// Err is the underlying cause, if any.
	Err error
}

// Error returns Message followed by the reference's help suffix.
func (e *RetrievalError) Error() string {
	return e.Message + " - VISIT " + HelpURL(e.Kind.ClassName()) + " FOR FURTHER SUPPORT"
}

// Unwrap returns the cause.
func (e *RetrievalError) Unwrap() error { return e.Err }

// Is matches ErrModelRetrieval and the sentinel of the error's kind.
func (e *RetrievalError) Is(target error) bool {
	if target == ErrModelRetrieval {
		return true
	}
	s := e.Kind.sentinel()
	return s != nil && target == s
}

// Retrievalf builds a KindRetrieval error.
func Retrievalf(format string, args ...any) *RetrievalError {
	return &RetrievalError{Kind: KindRetrieval, Message: fmt.Sprintf(format, args...)}
}

// RetryError is a transient failure (connection error, timeout, retryable
// status) that survived every try. It is not a RetrievalError, as in the
// reference.
type RetryError struct {
	// StatusCode of the last try (0 for transport errors).
	StatusCode int
	// Tries made.
	Tries   int
	Message string
	Err     error
}

func (e *RetryError) Error() string {
	return e.Message + " - VISIT " + HelpURL("RetryError") + " FOR FURTHER SUPPORT"
}

// Unwrap returns the cause.
func (e *RetryError) Unwrap() error { return e.Err }

// Is matches ErrRetry.
func (e *RetryError) Is(target error) bool { return target == ErrRetry }

// AssumptionError reports a programming error (e.g. a query parameter present
// both in the base URL and in the parameters added by the client).
type AssumptionError struct{ Message string }

func (e *AssumptionError) Error() string {
	return e.Message + " - VISIT " + HelpURL("AssumptionError") + " FOR FURTHER SUPPORT"
}
