package layout

import "fmt"

// Error reports an identifier, file handle or artefact declaration that
// breaks the on-disk contract. It wraps one errdefs kind (Kind), so callers
// test with errors.Is(err, errdefs.ErrCorruptPackage) and friends.
type Error struct {
	Subject string // what was checked: "package id", "file handle", ...
	Value   string // the offending value, as given
	Reason  string // what is wrong with it
	Kind    error  // errdefs.ErrInsecureIdentifier, ErrCorruptPackage or ErrInvalidParameter
}

func (e *Error) Error() string {
	return fmt.Sprintf("%v: %s %q: %s", e.Kind, e.Subject, e.Value, e.Reason)
}

// Unwrap returns the errdefs kind.
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, subject, value, format string, args ...any) *Error {
	return &Error{Subject: subject, Value: value, Reason: fmt.Sprintf(format, args...), Kind: kind}
}
