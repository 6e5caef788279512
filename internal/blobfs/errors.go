package blobfs

import (
	"fmt"
	"regexp"
)

var md5RE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ValidateMD5 accepts exactly 32 lower-case hex characters (on-disk contract
// §4.5: an upper-case provider MD5 is rejected). It runs before any path work.
func ValidateMD5(md5 string) error {
	if !md5RE.MatchString(md5) {
		return &InvalidDigestError{Value: md5}
	}
	return nil
}

// InvalidDigestError: a string that is not a lower-case hex MD5.
type InvalidDigestError struct{ Value string }

func (e *InvalidDigestError) Error() string {
	return fmt.Sprintf("invalid blob MD5 %q: want 32 lower-case hex characters", e.Value)
}

// DigestMismatchError: the bytes do not hash to the expected MD5. Nothing was
// published. It carries no URL; the downloader wraps it with one (sans query).
type DigestMismatchError struct {
	Expected, Actual string
	Size             int64 // bytes hashed
}

func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("MD5 mismatch: expected %s, got %s over %d bytes; the data was not stored", e.Expected, e.Actual, e.Size)
}

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
