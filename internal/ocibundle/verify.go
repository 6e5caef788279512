package ocibundle

import (
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelcache/modelcache/errdefs"
)

// verifyingReader passes a blob's bytes through and, at their end, fails
// instead of returning io.EOF when the size or sha256 differs from the
// descriptor, so a consumer that stops at the first error never takes
// unverified bytes for good ones.
type verifyingReader struct {
	r    io.ReadCloser
	desc ocispec.Descriptor
	h    digest.Digester
	n    int64
	// Handle and Package name the file in errors.
	Handle, Package string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if rem := v.desc.Size - v.n; int64(len(p)) > rem+1 {
		p = p[:rem+1] // one byte more detects an overlong blob
	}
	n, err := v.r.Read(p)
	if n > 0 {
		v.h.Hash().Write(p[:n])
		v.n += int64(n)
		if v.n > v.desc.Size {
			return n, v.fail(ErrTooLarge, fmt.Sprintf("more than the %d bytes its descriptor declares", v.desc.Size))
		}
	}
	if err == io.EOF {
		if v.n != v.desc.Size {
			return n, v.fail(errdefs.ErrDigestMismatch, fmt.Sprintf("%d bytes, its descriptor declares %d", v.n, v.desc.Size))
		}
		if got := v.h.Digest(); got != v.desc.Digest {
			return n, v.fail(errdefs.ErrDigestMismatch, "its bytes hash to "+got.String())
		}
	}
	return n, err
}

func (v *verifyingReader) fail(err error, detail string) error {
	return &BlobError{Digest: v.desc.Digest.String(), Handle: v.Handle, Package: v.Package, Err: err, Detail: detail}
}

func (v *verifyingReader) Close() error { return v.r.Close() }

// newVerifyingReader wraps r; only sha256 descriptors are accepted.
func newVerifyingReader(r io.ReadCloser, desc ocispec.Descriptor) (*verifyingReader, error) {
	if err := checkDigest(desc.Digest); err != nil {
		r.Close()
		return nil, err
	}
	return &verifyingReader{r: r, desc: desc, h: digest.SHA256.Digester()}, nil
}

func checkDigest(d digest.Digest) error {
	if d.Algorithm() != digest.SHA256 || d.Validate() != nil {
		return invalid("digest %q is not a valid sha256 digest (only sha256 is supported)", d)
	}
	return nil
}
