// Package errdefs names the error kinds callers branch on. Each package returns
// its own typed errors (carrying the offending name and a remedy) that wrap one
// of these kinds, so callers can test with errors.Is without importing every
// package's types. The names follow the reference's exception classes.
package errdefs

import "errors"

var (
	// ErrInsecureIdentifier: a model or package id that is unsafe as a path (InsecureModelIdentifierError).
	ErrInsecureIdentifier = errors.New("insecure model identifier")
	// ErrCorruptPackage: a package whose metadata or files break the contract (CorruptedModelPackageError).
	ErrCorruptPackage = errors.New("corrupted model package")
	// ErrInvalidParameter: a caller-supplied argument is unusable (InvalidParameterError).
	ErrInvalidParameter = errors.New("invalid parameter")
	// ErrUntrustedFile: a file without a provider hash while hashless downloads are off (UntrustedFileError).
	ErrUntrustedFile = errors.New("untrusted file")
	// ErrSymlinkRefused: a path that must not be a symlink is one (never followed).
	ErrSymlinkRefused = errors.New("refusing to follow a symlink")
	// ErrLockTimeout: a file lock could not be acquired in time.
	ErrLockTimeout = errors.New("lock acquire timeout")
	// ErrDigestMismatch: content does not match its expected hash.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrOffline: the operation needs the network while OFFLINE_MODE is on.
	ErrOffline = errors.New("offline mode")
)
