package tier

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/tier/s3store"
)

// Blob is a blob of the local cache: its name, size and file.
type Blob struct {
	MD5  string
	Size int64
	Path string
}

// Tally counts blobs and their bytes.
type Tally struct {
	Count int   `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (c *Tally) add(n int64) { c.Count++; c.Bytes += n }

// StatusReport is what `modelcache tier status` prints.
type StatusReport struct {
	Enabled bool `json:"enabled"`
	// Disabled says why the tier does nothing ("" when enabled).
	Disabled        string `json:"disabled,omitempty"`
	Endpoint        string `json:"endpoint"`
	Bucket          string `json:"bucket"`
	Prefix          string `json:"prefix"`
	Region          string `json:"region"`
	AddressingStyle string `json:"addressing_style"`
	Credentials     string `json:"credentials"` // static or aws-chain
	// Reachable: the bucket answered and the credentials may see it.
	Reachable bool   `json:"reachable"`
	Error     string `json:"error,omitempty"`
	// Breakers after the checks: closed, open or half-open.
	ReadBreaker  string `json:"read_breaker"`
	WriteBreaker string `json:"write_breaker"`
	// The local blobs checked, and where they stand in the bucket.
	Local      Tally `json:"local"`
	InTier     Tally `json:"in_tier"`
	Missing    Tally `json:"missing"`
	Mismatched Tally `json:"size_mismatch"`
	// Unchecked: a HEAD failed, or the breaker opened before it was sent.
	Unchecked Tally `json:"unchecked"`
}

// Status checks the bucket and which of blobs it holds (one HEAD each,
// concurrency at a time, through the read breaker). It never fails: what
// went wrong is in the report.
func (t *Tier) Status(ctx context.Context, blobs []Blob, concurrency int) StatusReport {
	r := StatusReport{ReadBreaker: Closed.String(), WriteBreaker: Closed.String()}
	if t != nil {
		b := t.cfg
		r.Endpoint, r.Bucket, r.Prefix, r.Region, r.AddressingStyle = b.EndpointURL, b.Bucket, b.KeyPrefix(), b.Region, b.AddressingStyle
		r.Credentials = "aws-chain"
		if b.StaticCredentials() {
			r.Credentials = "static"
		}
	}
	for _, bl := range blobs {
		r.Local.add(bl.Size)
	}
	if err := t.Disabled(); err != nil {
		r.Disabled = err.(*DisabledError).Reason
		r.Unchecked = r.Local
		return r
	}
	r.Enabled = true
	if err := t.store.Ping(ctx); err != nil {
		r.Error = err.Error()
	} else {
		r.Reachable = true
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(concurrency, 1))
	for _, bl := range blobs {
		g.Go(func() error {
			where := &r.Unchecked
			if tk, ok := t.read.Admit(); ok {
				o, err := t.store.Head(gctx, bl.MD5)
				switch {
				case errors.Is(err, blobstore.ErrNotFound):
					t.read.Success(tk)
					where = &r.Missing
				case err != nil && gctx.Err() != nil:
					t.read.Release(tk)
				case err != nil:
					t.failed(t.read, tk, err)
					mu.Lock()
					if r.Error == "" {
						r.Error = err.Error()
					}
					mu.Unlock()
				case o.Size != bl.Size:
					t.read.Success(tk)
					where = &r.Mismatched
				default:
					t.read.Success(tk)
					where = &r.InTier
				}
			}
			mu.Lock()
			where.add(bl.Size)
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	rb, wb := t.Breakers()
	r.ReadBreaker, r.WriteBreaker = rb.String(), wb.String()
	return r
}

// PushReport is what `modelcache tier push` prints.
type PushReport struct {
	Local    Tally `json:"local"`
	Uploaded Tally `json:"uploaded"`
	Existed  Tally `json:"existed"`
	// LocalMismatch: the local file is not the blob (corrupt or changed);
	// nothing was uploaded for it.
	LocalMismatch Tally `json:"local_mismatch"`
	Failed        Tally `json:"failed"`
	// Skipped: not attempted, the write breaker being open (or the push
	// interrupted).
	Skipped Tally       `json:"skipped"`
	Errors  []PushError `json:"errors"`
}

// PushError is one blob that did not reach the tier.
type PushError struct {
	MD5   string `json:"md5"`
	Path  string `json:"path"`
	Error string `json:"error"`
}

// Push seeds the bucket with blobs from the local cache, concurrency at a
// time: objects that exist are skipped (HEAD), every upload re-verifies
// the local file's size and MD5 as it streams and publishes nothing on a
// mismatch. Failures count in the write breaker; once it opens the rest is
// skipped. Push fails only when the tier is disabled (*DisabledError) or
// ctx ends.
func (t *Tier) Push(ctx context.Context, blobs []Blob, concurrency int) (*PushReport, error) {
	if err := t.Disabled(); err != nil {
		return nil, err
	}
	r := &PushReport{Errors: []PushError{}}
	var mu sync.Mutex
	note := func(where *Tally, b Blob, err error) {
		mu.Lock()
		defer mu.Unlock()
		where.add(b.Size)
		if err != nil {
			r.Errors = append(r.Errors, PushError{MD5: b.MD5, Path: b.Path, Error: err.Error()})
		}
	}
	g := errgroup.Group{}
	g.SetLimit(max(concurrency, 1))
	for _, b := range blobs {
		r.Local.add(b.Size)
		g.Go(func() error {
			if ctx.Err() != nil {
				note(&r.Skipped, b, nil)
				return nil
			}
			tk, ok := t.write.Admit()
			if !ok {
				note(&r.Skipped, b, nil)
				return nil
			}
			res, err := t.uploadFile(ctx, b.MD5, b.Path, b.Size, false)
			var re *s3store.RequestError
			switch {
			case err == nil:
				t.write.Success(tk)
				if res.Existed {
					note(&r.Existed, b, nil)
				} else {
					t.metrics.Uploads.WithLabelValues(UploadStored).Inc()
					t.metrics.UploadBytes.Add(float64(res.Bytes))
					note(&r.Uploaded, b, nil)
				}
			case ctx.Err() != nil:
				t.write.Release(tk)
				note(&r.Skipped, b, nil)
			case errors.As(err, &re):
				t.failed(t.write, tk, err)
				t.metrics.Uploads.WithLabelValues(UploadFailed).Inc()
				note(&r.Failed, b, err)
			default:
				t.write.Release(tk)
				t.metrics.Uploads.WithLabelValues(UploadLocalMismatch).Inc()
				note(&r.LocalMismatch, b, err)
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return r, err
	}
	return r, nil
}
