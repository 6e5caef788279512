package manifest

import (
	"fmt"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
)

// CorruptError reports a manifest (or a Spec) that breaks the contract: the
// reference's CorruptedModelPackageError. errors.Is(err, errdefs.ErrCorruptPackage)
// holds.
type CorruptError struct {
	// Path of the manifest, "" when the document did not come from disk.
	Path string
	// Field is the offending top-level key ("" for the document as a whole).
	Field  string
	Reason string
	Err    error
}

func (e *CorruptError) Error() string {
	var b strings.Builder
	b.WriteString("corrupted model package: ")
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if e.Field != "" {
		fmt.Fprintf(&b, "field %q: ", e.Field)
	}
	b.WriteString(e.Reason)
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *CorruptError) Unwrap() []error {
	if e.Err != nil {
		return []error{errdefs.ErrCorruptPackage, e.Err}
	}
	return []error{errdefs.ErrCorruptPackage}
}

// RefusalKind tells which rule refused a manifest write or a package reuse.
type RefusalKind int

// Refusal kinds.
const (
	// OwnerMismatch: the existing manifest names another cache owner (model_id).
	OwnerMismatch RefusalKind = iota + 1
	// CanonicalMismatch: the existing manifest names another canonical_model_id.
	CanonicalMismatch
	// ProvenanceMismatch: an existing v4 manifest differs from what the
	// writer would publish (§6.5 step 3).
	ProvenanceMismatch
	// Mutation: the §6.7 guard found a published package whose identity
	// differs from what is being materialized.
	Mutation
)

// RefusalError is returned when a published package would change meaning. The
// message names the differing field and the exact command that removes the
// package so that it can be re-materialized. It wraps
// errdefs.ErrCorruptPackage, as the reference raises CorruptedModelPackageError.
type RefusalError struct {
	Kind       RefusalKind
	PackageDir string
	// Field is the first differing key, in manifest write order.
	Field string
	// Cached and New are the two values of Field (pyjson values; Missing when
	// the cached manifest lacks the key).
	Cached, New any
	// CachedMissing is true when the cached manifest has no such key.
	CachedMissing bool
	// Fields lists every differing key.
	Fields []string
}

// RemoveCommand is the shell command that deletes the package directory.
func (e *RefusalError) RemoveCommand() string { return RemoveCommand(e.PackageDir) }

func (e *RefusalError) Error() string {
	var what string
	switch e.Kind {
	case OwnerMismatch:
		what = "Refusing to publish model metadata over a package attributed to a different cache owner"
	case CanonicalMismatch:
		what = "Refusing to publish model metadata over a package attributed to a different canonical model id"
	case ProvenanceMismatch:
		what = "Refusing to replace the manifest of a published package with a different provenance"
	default:
		what = "Refusing to mutate a current cached package"
	}
	cached := quote(e.Cached)
	if e.CachedMissing {
		cached = "(absent)"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): field %q differs: cached %s, new %s", what, e.PackageDir, e.Field, cached, quote(e.New))
	if len(e.Fields) > 1 {
		fmt.Fprintf(&b, " (differing fields: %s)", strings.Join(e.Fields, ", "))
	}
	fmt.Fprintf(&b, ". A published package id is immutable; to replace it, remove the package and load again: %s", e.RemoveCommand())
	return b.String()
}

func (e *RefusalError) Unwrap() error { return errdefs.ErrCorruptPackage }

// SymlinkError reports a symlink where the contract forbids following one
// (package dir, manifest, manifest lock; §11.3). It matches both
// errdefs.ErrSymlinkRefused and errdefs.ErrCorruptPackage.
type SymlinkError struct {
	Path string
	What string
}

func (e *SymlinkError) Error() string {
	return fmt.Sprintf("refusing to follow a symlink: %s %s is a symlink; remove it and load again", e.What, e.Path)
}

func (e *SymlinkError) Unwrap() []error {
	return []error{errdefs.ErrSymlinkRefused, errdefs.ErrCorruptPackage}
}

// RemoveCommand returns "rm -rf -- '<dir>'" with dir quoted for a POSIX shell.
func RemoveCommand(dir string) string {
	return "rm -rf -- '" + strings.ReplaceAll(dir, "'", `'\''`) + "'"
}
