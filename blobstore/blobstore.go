// Package blobstore defines the seam every store of verified, content-addressed
// files implements: the cache's own shared-blobs directory, and the shared
// object-store tier of a fleet. Blobs are named by the lower-case hex MD5 the
// weights provider announces for a file (on-disk contract §4.5), so a blob's
// name is a claim about its bytes: a Store publishes nothing it has not
// verified against that name.
//
// The package holds the interface, the error types implementations return and
// callers branch on, and (in blobstoretest) the conformance suite every
// implementation runs.
package blobstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/modelcache/modelcache/errdefs"
)

// Info describes one stored blob.
type Info struct {
	// MD5 is the blob's name: 32 lower-case hex characters.
	MD5 string
	// Size is its length in bytes.
	Size int64
}

// Store is a content-addressed store of verified blobs. Implementations are
// safe for concurrent use by many goroutines (and, where the medium is shared,
// by many processes): concurrent Puts of one blob all succeed and leave one
// blob.
type Store interface {
	// Stat returns the blob's Info, or an error matching ErrNotFound.
	Stat(ctx context.Context, md5 string) (Info, error)
	// Open returns a reader of the blob's bytes from offset to the end (and
	// its Info). A missing blob is an error matching ErrNotFound.
	Open(ctx context.Context, md5 string, offset int64) (io.ReadCloser, Info, error)
	// Put stores size bytes read from r as blob md5 (size -1: unknown).
	// Nothing becomes visible unless the bytes hash to md5 and, when size is
	// not -1, have that length: a mismatch is a *DigestMismatchError or a
	// *SizeMismatchError and leaves no trace. Putting a blob that exists
	// already succeeds (the reader may then be left unread).
	Put(ctx context.Context, md5 string, r io.Reader, size int64) error
	// Delete removes the blob; a missing blob is not an error.
	Delete(ctx context.Context, md5 string) error
	// Walk calls fn for every blob, in no particular order, until fn returns
	// an error (which Walk returns).
	Walk(ctx context.Context, fn func(Info) error) error
}

// ErrNotFound: the store holds no blob of that name.
var ErrNotFound = errors.New("blob not found")

// ValidateMD5 accepts exactly 32 lower-case hex characters (on-disk contract
// §4.5: an upper-case provider MD5 is rejected). Stores run it before any
// other work, so that a name never becomes a path or an object key unchecked.
func ValidateMD5(md5 string) error {
	if len(md5) != 32 {
		return &InvalidDigestError{Value: md5}
	}
	for i := 0; i < len(md5); i++ {
		c := md5[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return &InvalidDigestError{Value: md5}
		}
	}
	return nil
}

// InvalidDigestError: a string that is not a lower-case hex MD5.
type InvalidDigestError struct{ Value string }

func (e *InvalidDigestError) Error() string {
	return fmt.Sprintf("invalid blob MD5 %q: want 32 lower-case hex characters", e.Value)
}

// Unwrap classifies the error as an invalid parameter.
func (e *InvalidDigestError) Unwrap() error { return errdefs.ErrInvalidParameter }

// DigestMismatchError: the bytes do not hash to the expected MD5. Nothing was
// published. It carries no URL; a downloader wraps it with one (sans query).
type DigestMismatchError struct {
	Expected, Actual string
	Size             int64 // bytes hashed
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("MD5 mismatch: expected %s, got %s over %d bytes; the data was not stored", e.Expected, e.Actual, e.Size)
}

// Unwrap classifies the error as a digest mismatch.
func (e *DigestMismatchError) Unwrap() error { return errdefs.ErrDigestMismatch }

// SizeMismatchError: the stream length differs from the expected size.
// AtLeast means reading stopped at Actual bytes without draining the rest.
type SizeMismatchError struct {
	Expected, Actual int64
	AtLeast          bool
}

func (e *SizeMismatchError) Error() string {
	if e.AtLeast {
		return fmt.Sprintf("size mismatch: expected %d bytes, got more; the data was not stored", e.Expected)
	}
	return fmt.Sprintf("size mismatch: expected %d bytes, got %d; the data was not stored", e.Expected, e.Actual)
}

// Unwrap classifies the error as a digest mismatch (the bytes are not the
// blob's).
func (e *SizeMismatchError) Unwrap() error { return errdefs.ErrDigestMismatch }
