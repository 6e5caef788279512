package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
)

// Put implements blobstore.Store. An object that exists with the expected
// size is kept and r is left unread; one of another size is replaced (it
// cannot be the blob). Nothing becomes visible unless the bytes read hash to
// md5 and have the expected size.
func (s *Store) Put(ctx context.Context, md5 string, r io.Reader, size int64) error {
	_, err := s.PutDetailed(ctx, md5, r, size)
	return err
}

// PutResult says what a put did.
type PutResult struct {
	// Existed: the object was there already with the right size; nothing
	// was read or sent.
	Existed bool
	// Bytes uploaded (0 when Existed).
	Bytes int64
	// Parts of the multipart upload; 0 for a single PUT.
	Parts int
}

// PutDetailed is Put, telling what it did.
func (s *Store) PutDetailed(ctx context.Context, md5 string, r io.Reader, size int64) (PutResult, error) {
	if err := s.checkPut(md5, size); err != nil {
		return PutResult{}, err
	}
	o, err := s.Head(ctx, md5)
	switch {
	case err == nil && (size < 0 || o.Size == size):
		return PutResult{Existed: true}, nil
	case err != nil && !errors.Is(err, blobstore.ErrNotFound):
		return PutResult{}, err
	}
	return s.upload(ctx, md5, r, size)
}

// Replace stores the blob whether or not an object exists: the way to heal
// an object found corrupt. The same verification as Put applies.
func (s *Store) Replace(ctx context.Context, md5 string, r io.Reader, size int64) (PutResult, error) {
	if err := s.checkPut(md5, size); err != nil {
		return PutResult{}, err
	}
	return s.upload(ctx, md5, r, size)
}

func (s *Store) checkPut(md5 string, size int64) error {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return err
	}
	if size > s.o.MaxObjectBytes {
		return &TooLargeError{Key: s.Key(md5), Size: size, Max: s.o.MaxObjectBytes}
	}
	return nil
}

// upload reads r part by part, hashing as it goes. A blob that fits in one
// part is checked completely before its single PUT is sent; a larger one
// goes up as a multipart upload whose parts stay invisible until the final
// check passes and it is completed, and which is aborted otherwise.
func (s *Store) upload(ctx context.Context, md5sum string, r io.Reader, size int64) (PutResult, error) {
	partSize := s.o.PartSize
	if size > 0 && (size+partSize-1)/partSize > maxParts {
		partSize = (size + maxParts - 1) / maxParts
	}
	limit := s.o.MaxObjectBytes
	if size >= 0 {
		limit = size
	}
	in := &countingReader{r: fsx.ContextReader(ctx, r), h: md5.New(), limit: limit, unknown: size < 0}
	key := s.Key(md5sum)

	if size >= 0 && size <= partSize {
		b := make([]byte, size)
		n, err := io.ReadFull(in, b)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return PutResult{}, in.cause(err, key)
		}
		if err == nil {
			if err := in.atEnd(key); err != nil {
				return PutResult{}, err
			}
		}
		if err := in.verify(md5sum, size, key); err != nil {
			return PutResult{}, err
		}
		return s.putSingle(ctx, md5sum, b[:n])
	}
	pool := s.partPool(partSize)
	first := pool.Get().(*[]byte)
	defer pool.Put(first)
	n, err := io.ReadFull(in, *first)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if err := in.verify(md5sum, size, key); err != nil {
			return PutResult{}, err
		}
		return s.putSingle(ctx, md5sum, (*first)[:n])
	case err != nil:
		return PutResult{}, in.cause(err, key)
	}
	return s.putMultipart(ctx, md5sum, in, (*first)[:n], size, pool)
}

// Bodies are sent as UNSIGNED-PAYLOAD with Content-MD5: the server checks
// every byte against the MD5 we computed from the verified data (a SHA-256
// payload signature would add a second full hash for no more safety, and
// minio-go's chunked streaming signature leaves an empty body's final chunk
// unread by some servers, poisoning the kept-alive connection).
func (s *Store) putSingle(ctx context.Context, md5sum string, b []byte) (PutResult, error) {
	raw, _ := hex.DecodeString(md5sum)
	_, err := s.core.PutObject(ctx, s.o.Bucket, s.Key(md5sum), bytes.NewReader(b), int64(len(b)),
		base64.StdEncoding.EncodeToString(raw), "", minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		return PutResult{}, s.wrap("PUT", md5sum, err)
	}
	return PutResult{Bytes: int64(len(b))}, nil
}

// partPool hands out part buffers: the store's own pool for the usual part
// size (reused across uploads: no fresh pages to fault in per part), a
// throw-away one for the larger parts of a huge blob.
func (s *Store) partPool(partSize int64) *sync.Pool {
	if partSize == s.o.PartSize {
		return &s.bufs
	}
	return &sync.Pool{New: func() any { b := make([]byte, partSize); return &b }}
}

func (s *Store) putMultipart(ctx context.Context, md5sum string, in *countingReader, first []byte, size int64, pool *sync.Pool) (res PutResult, err error) {
	key := s.Key(md5sum)
	id, err := s.core.NewMultipartUpload(ctx, s.o.Bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
	if err != nil {
		return PutResult{}, s.wrap("create multipart upload", md5sum, err)
	}
	completed := false
	defer func() {
		if !completed {
			s.abort(ctx, md5sum, id)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.o.PartConcurrency)
	var (
		mu    sync.Mutex
		parts []minio.CompletePart
	)
	send := func(num int, b []byte, buf *[]byte) {
		g.Go(func() error {
			if buf != nil {
				defer pool.Put(buf)
			}
			sum := md5.Sum(b)
			p, err := s.core.PutObjectPart(gctx, s.o.Bucket, key, id, num, bytes.NewReader(b), int64(len(b)),
				minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(sum[:]), DisableContentSha256: true})
			if err != nil {
				return s.wrap(fmt.Sprintf("upload part %d of", num), md5sum, err)
			}
			mu.Lock()
			parts = append(parts, minio.CompletePart{PartNumber: num, ETag: p.ETag})
			mu.Unlock()
			return nil
		})
	}
	send(1, first, nil)
	num := 1
	var readErr error
	for {
		if gctx.Err() != nil {
			break // a part failed: stop reading
		}
		buf := pool.Get().(*[]byte)
		n, err := io.ReadFull(in, *buf)
		if n > 0 {
			num++
			if num > maxParts {
				pool.Put(buf)
				readErr = &TooLargeError{Key: key, Size: in.n, Max: int64(maxParts) * int64(len(first))}
				break
			}
			send(num, (*buf)[:n], buf)
		} else {
			pool.Put(buf)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			readErr = in.cause(err, key)
			break
		}
	}
	if readErr == nil && gctx.Err() == nil {
		// All bytes read: the blob must be right before anything completes.
		readErr = in.verify(md5sum, size, key)
	}
	if werr := g.Wait(); readErr == nil {
		readErr = werr
	}
	if readErr != nil {
		return PutResult{}, readErr
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].PartNumber < parts[j].PartNumber })
	// Completing concatenates the parts server-side, which can take a while
	// for a large blob before the first response byte: a wider budget here.
	cctx := withBudget(ctx, s.o.StallTimeout+time.Duration(in.n/(64<<20))*time.Second+30*time.Second)
	if _, err := s.core.CompleteMultipartUpload(cctx, s.o.Bucket, key, id, parts, minio.PutObjectOptions{}); err != nil {
		return PutResult{}, s.wrap("complete multipart upload", md5sum, err)
	}
	completed = true
	return PutResult{Bytes: in.n, Parts: len(parts)}, nil
}

// abort removes an unfinished multipart upload's parts. It runs even when
// ctx was cancelled (that is often why), bounded on its own. A part whose
// request was cut may still land after an abort (S3 documents this), so
// abort is repeated until the upload is gone, a few times at most; the
// bucket's AbortIncompleteMultipartUpload rule (docs/fleet.md) is the
// backstop.
func (s *Store) abort(ctx context.Context, md5sum, id string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*(s.o.ConnectTimeout+s.o.StallTimeout)+10*time.Second)
	defer cancel()
	key := s.Key(md5sum)
	for try := 0; try < 3; try++ {
		if err := s.core.AbortMultipartUpload(actx, s.o.Bucket, key, id); err != nil {
			if minio.ToErrorResponse(err).Code == "NoSuchUpload" {
				return
			}
			continue
		}
		if _, err := s.core.ListObjectParts(actx, s.o.Bucket, key, id, 0, 1); minio.ToErrorResponse(err).Code == "NoSuchUpload" {
			return
		}
	}
}

// countingReader hashes and counts what passes and refuses to pass more
// than limit bytes: one byte past the limit is a size error, not data.
type countingReader struct {
	r       io.Reader
	h       hash.Hash
	n       int64
	limit   int64
	unknown bool // limit is MaxObjectBytes, not an announced size
	over    bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if room := c.limit - c.n; int64(len(p)) > room {
		if room == 0 {
			var one [1]byte
			if n, _ := io.ReadFull(c.r, one[:]); n > 0 {
				c.over = true
				return 0, errOverLimit
			}
			return 0, io.EOF
		}
		p = p[:room]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

var errOverLimit = errors.New("more bytes than expected")

// cause turns a read error into the error Put returns.
func (c *countingReader) cause(err error, key string) error {
	if errors.Is(err, errOverLimit) {
		return c.overError(key)
	}
	return fmt.Errorf("read the blob for %s after %d bytes: %w", key, c.n, err)
}

func (c *countingReader) overError(key string) error {
	if c.unknown {
		return &TooLargeError{Key: key, Size: c.n + 1, Max: c.limit}
	}
	return &blobstore.SizeMismatchError{Expected: c.limit, Actual: c.n + 1, AtLeast: true}
}

// atEnd checks that nothing follows the bytes read so far.
func (c *countingReader) atEnd(key string) error {
	var one [1]byte
	n, err := c.Read(one[:])
	switch {
	case errors.Is(err, errOverLimit) || n > 0:
		return c.overError(key)
	case err == nil || errors.Is(err, io.EOF):
		return nil
	}
	return c.cause(err, key)
}

// verify checks size and digest once everything has been read.
func (c *countingReader) verify(md5sum string, size int64, key string) error {
	if c.over {
		return c.overError(key)
	}
	if size >= 0 && c.n != size {
		return &blobstore.SizeMismatchError{Expected: size, Actual: c.n}
	}
	if got := hex.EncodeToString(c.h.Sum(nil)); got != md5sum {
		return &blobstore.DigestMismatchError{Expected: md5sum, Actual: got, Size: c.n}
	}
	return nil
}
