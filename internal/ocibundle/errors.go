package ocibundle

import (
	"errors"
	"fmt"
)

// Sentinels for errors.Is; every error of this package wraps one of them.
var (
	// ErrUnsafeEntry: a tar entry that is a link, device, FIFO or sparse
	// file, a name escaping the layout, an entry repeated, or any entry
	// that is not part of an OCI image layout.
	ErrUnsafeEntry = errors.New("unsafe or unknown bundle entry")
	// ErrTruncated: the archive ends inside an entry.
	ErrTruncated = errors.New("truncated bundle")
	// ErrTooLarge: a metadata file or blob above its size limit.
	ErrTooLarge = errors.New("bundle entry too large")
	// ErrMissingBlob: a manifest or index names a blob the bundle lacks.
	ErrMissingBlob = errors.New("blob missing from bundle")
	// ErrInvalid: malformed layout, index, manifest or package document.
	ErrInvalid = errors.New("invalid bundle")
	// ErrNotModelcache: an artifact that is not a modelcache package.
	ErrNotModelcache = errors.New("not a modelcache package artifact")
	// ErrUnsupportedPackage: a package that cannot travel in a bundle
	// (files without a provider MD5, local TRT packages, incomplete ones).
	ErrUnsupportedPackage = errors.New("package cannot be bundled")
	// ErrNotInCache: export found nothing to export for a model.
	ErrNotInCache = errors.New("model not in the cache")
)

const damaged = "the bundle is damaged or was tampered with; export it again from the source cache"

// EntryError is a refused entry of a bundle (a tar member or a layout file).
type EntryError struct {
	Entry  string
	Err    error // one of the sentinels
	Detail string
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("bundle entry %q: %s: %s; nothing was imported", e.Entry, e.Err, e.Detail)
}

func (e *EntryError) Unwrap() error { return e.Err }

// BlobError is a blob whose bytes or presence do not match what the bundle
// declares for it.
type BlobError struct {
	Digest string
	// Handle and Package name the file when the blob is a layer.
	Handle, Package string
	Err             error
	Detail          string
}

func (e *BlobError) Error() string {
	what := "blob " + e.Digest
	if e.Handle != "" {
		what = fmt.Sprintf("file %q of package %s (blob %s)", e.Handle, e.Package, e.Digest)
	}
	return fmt.Sprintf("%s: %s: %s; %s; nothing was imported", what, e.Err, e.Detail, damaged)
}

// Unwrap returns errdefs.ErrDigestMismatch for wrong bytes, ErrMissingBlob
// or ErrTooLarge.
func (e *BlobError) Unwrap() error { return e.Err }

// PackageError is a package whose description is unusable or unsupported.
type PackageError struct {
	ModelID, PackageID string
	Err                error
	Detail             string
}

func (e *PackageError) Error() string {
	id := e.PackageID
	if e.ModelID != "" {
		id = e.ModelID + " package " + e.PackageID
	}
	return fmt.Sprintf("%s: %s: %s", id, e.Err, e.Detail)
}

func (e *PackageError) Unwrap() error { return e.Err }

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
