package fsx

import (
	"context"
	"io"
)

// ContextReader returns r ending with ctx's error once ctx is done, so a
// long copy stops at the next read after a cancellation.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// ContextReadCloser is ContextReader for a ReadCloser: Close closes rc.
func ContextReadCloser(ctx context.Context, rc io.ReadCloser) io.ReadCloser {
	return struct {
		io.Reader
		io.Closer
	}{ctxReader{ctx, rc}, rc}
}
