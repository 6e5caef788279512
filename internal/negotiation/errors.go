package negotiation

import (
	"errors"
	"strings"
)

// HelpBase is the root of the reference's help pages for negotiation errors.
const HelpBase = "https://inference-models.roboflow.com/errors/package-negotiation/#"

// Reference exception class names.
const (
	ClassModelPackageNegotiation         = "ModelPackageNegotiationError"
	ClassNoModelPackagesAvailable        = "NoModelPackagesAvailableError"
	ClassAmbiguousModelPackageResolution = "AmbiguousModelPackageResolutionError"
	ClassUnknownBackendType              = "UnknownBackendTypeError"
	ClassUnknownQuantization             = "UnknownQuantizationError"
	ClassInvalidRequestedBatchSize       = "InvalidRequestedBatchSizeError"
	ClassRuntimeIntrospection            = "RuntimeIntrospectionError"
	ClassTypeError                       = "TypeError"
)

// ErrNegotiation is matched (errors.Is) by every error of the reference's
// ModelPackageNegotiationError family, i.e. every error Negotiate returns
// except *PackageMetadataTypeError.
var ErrNegotiation = errors.New("model package negotiation error")

// HelpURL returns the reference's help page of an error class.
func HelpURL(class string) string { return HelpBase + strings.ToLower(class) }

// ClassName returns the reference's exception class name of err (the most
// specific one found in its chain), or "" when err is not a negotiation error.
func ClassName(err error) string {
	var c interface{ ClassName() string }
	if errors.As(err, &c) {
		return c.ClassName()
	}
	return ""
}

// Message returns the reference message of a negotiation error, without the
// " - VISIT <url> FOR FURTHER SUPPORT" suffix that Error() appends; for other
// errors it returns err.Error().
func Message(err error) string {
	var b *ModelPackageNegotiationError
	if errors.As(err, &b) {
		return b.Message
	}
	var t *PackageMetadataTypeError
	if errors.As(err, &t) {
		return t.Error()
	}
	return err.Error()
}

// ModelPackageNegotiationError is the base of the family. Negotiate returns it
// directly for aborts (a CUDA device index beyond the x-ray's GPUs, a package
// with unknown environment requirements, bad NMS preferences); the other
// classes below unwrap to it, so errors.As(err, &*ModelPackageNegotiationError)
// matches every one of them and exposes Class and Message.
type ModelPackageNegotiationError struct {
	// Class is the reference class name (ClassModelPackageNegotiation, or the
	// subclass this value was unwrapped from).
	Class string
	// Message is the reference-compatible message, without the help suffix.
	Message string
}

func (e *ModelPackageNegotiationError) Error() string {
	return e.Message + " - VISIT " + HelpURL(e.Class) + " FOR FURTHER SUPPORT"
}

// ClassName returns Class.
func (e *ModelPackageNegotiationError) ClassName() string { return e.Class }

// Is matches ErrNegotiation.
func (e *ModelPackageNegotiationError) Is(target error) bool { return target == ErrNegotiation }

func negotiationErrorf(msg string) *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassModelPackageNegotiation, Message: msg}
}

// NoModelPackagesAvailableError: nothing can be selected (empty announcement,
// an unknown or untrusted requested id, or every package rejected).
type NoModelPackagesAvailableError struct {
	Message string
	// Rejections lists every discarded package, in discard order, when the
	// error is the final one raised after the filters; nil otherwise.
	Rejections []Rejection
}

func (e *NoModelPackagesAvailableError) Error() string     { return e.base().Error() }
func (e *NoModelPackagesAvailableError) ClassName() string { return ClassNoModelPackagesAvailable }
func (e *NoModelPackagesAvailableError) Unwrap() error     { return e.base() }
func (e *NoModelPackagesAvailableError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassNoModelPackagesAvailable, Message: e.Message}
}

// AmbiguousModelPackageResolutionError: the requested package id matches
// several announced packages.
type AmbiguousModelPackageResolutionError struct {
	PackageID string
	Count     int
	Message   string
}

func (e *AmbiguousModelPackageResolutionError) Error() string { return e.base().Error() }
func (e *AmbiguousModelPackageResolutionError) ClassName() string {
	return ClassAmbiguousModelPackageResolution
}
func (e *AmbiguousModelPackageResolutionError) Unwrap() error { return e.base() }
func (e *AmbiguousModelPackageResolutionError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassAmbiguousModelPackageResolution, Message: e.Message}
}

// UnknownBackendTypeError: a requested backend is not a BackendType value.
type UnknownBackendTypeError struct {
	Value   string
	Message string
}

func (e *UnknownBackendTypeError) Error() string     { return e.base().Error() }
func (e *UnknownBackendTypeError) ClassName() string { return ClassUnknownBackendType }
func (e *UnknownBackendTypeError) Unwrap() error     { return e.base() }
func (e *UnknownBackendTypeError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassUnknownBackendType, Message: e.Message}
}

// UnknownQuantizationError: a requested quantization is not a Quantization
// value (matching is case-sensitive).
type UnknownQuantizationError struct {
	Value   string
	Message string
}

func (e *UnknownQuantizationError) Error() string     { return e.base().Error() }
func (e *UnknownQuantizationError) ClassName() string { return ClassUnknownQuantization }
func (e *UnknownQuantizationError) Unwrap() error     { return e.base() }
func (e *UnknownQuantizationError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassUnknownQuantization, Message: e.Message}
}

// InvalidRequestedBatchSizeError: the requested batch size cannot be parsed.
type InvalidRequestedBatchSizeError struct {
	// Detail is the specific problem, e.g. "`requested_batch_size` is <= 0".
	Detail  string
	Message string
}

func (e *InvalidRequestedBatchSizeError) Error() string { return e.base().Error() }
func (e *InvalidRequestedBatchSizeError) ClassName() string {
	return ClassInvalidRequestedBatchSize
}
func (e *InvalidRequestedBatchSizeError) Unwrap() error { return e.base() }
func (e *InvalidRequestedBatchSizeError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassInvalidRequestedBatchSize, Message: e.Message}
}

// RuntimeIntrospectionError: the runtime facts are inconsistent (a GPU named
// exactly "orin" without an L4T version) or hold an unparsable version.
type RuntimeIntrospectionError struct {
	Message string
}

func (e *RuntimeIntrospectionError) Error() string     { return e.base().Error() }
func (e *RuntimeIntrospectionError) ClassName() string { return ClassRuntimeIntrospection }
func (e *RuntimeIntrospectionError) Unwrap() error     { return e.base() }
func (e *RuntimeIntrospectionError) base() *ModelPackageNegotiationError {
	return &ModelPackageNegotiationError{Class: ClassRuntimeIntrospection, Message: e.Message}
}

// PackageMetadataTypeError replaces the reference's uncaught TypeError
// (golden cases tagged python-crash): a package without batch information
// (Hugging Face, Ultralytics) meeting a batch-size request, or an `nms_fused`
// model feature that is not an object (or holds non-numeric thresholds)
// meeting NMS preferences. It is not part of the ModelPackageNegotiationError
// family, as in the reference; ClassName returns "TypeError".
type PackageMetadataTypeError struct {
	PackageID string
	// Detail says what could not be compared.
	Detail string
}

func (e *PackageMetadataTypeError) Error() string {
	return "model package `" + e.PackageID + "`: " + e.Detail
}

// ClassName returns "TypeError", the class of the reference's crash.
func (e *PackageMetadataTypeError) ClassName() string { return ClassTypeError }
