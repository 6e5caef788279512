package blobfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
)

// Seam returns the store behind the blobstore.Store interface, the seam the
// shared object-store tier and the conformance suite use. The richer methods
// of *Store (partials, commits, locks, repair) stay for the downloader and
// maintenance.
func (s *Store) Seam() blobstore.Store { return seam{s} }

type seam struct{ s *Store }

var _ blobstore.Store = seam{}

func notFound(md5 string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", md5, blobstore.ErrNotFound)
	}
	return err
}

func (b seam) Stat(ctx context.Context, md5 string) (blobstore.Info, error) {
	if err := ctx.Err(); err != nil {
		return blobstore.Info{}, err
	}
	fi, err := b.s.Stat(md5)
	if err != nil {
		return blobstore.Info{}, notFound(md5, err)
	}
	return blobstore.Info{MD5: md5, Size: fi.Size()}, nil
}

func (b seam) Open(ctx context.Context, md5 string, offset int64) (io.ReadCloser, blobstore.Info, error) {
	p, err := b.s.Path(md5)
	if err != nil {
		return nil, blobstore.Info{}, err
	}
	if err := b.s.checkDir(); err != nil {
		return nil, blobstore.Info{}, notFound(md5, err)
	}
	f, err := fsx.OpenNoFollow(p)
	if err != nil {
		return nil, blobstore.Info{}, notFound(md5, err)
	}
	fi, err := f.Stat()
	if err == nil && (offset < 0 || offset > fi.Size()) {
		err = fmt.Errorf("open blob %s at offset %d of %d bytes: %w", md5, offset, fi.Size(), errInvalidOffset)
	}
	if err == nil && offset > 0 {
		_, err = f.Seek(offset, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, blobstore.Info{}, err
	}
	return fsx.ContextReadCloser(ctx, f), blobstore.Info{MD5: md5, Size: fi.Size()}, nil
}

var errInvalidOffset = errors.New("offset outside the blob")

func (b seam) Put(ctx context.Context, md5 string, r io.Reader, size int64) error {
	_, err := b.s.PutDetailed(ctx, md5, r, size)
	return err
}

// Delete removes the blob under its lock. Package links that point at it
// dangle afterwards: callers (GC, eviction) delete only unreferenced blobs.
func (b seam) Delete(ctx context.Context, md5 string) error {
	p, err := b.s.Path(md5)
	if err != nil {
		return err
	}
	h, err := b.s.Lock(ctx, md5)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete blob %s: %w", md5, err)
	}
	defer h.Unlock()
	if _, err := fsx.RegularNoFollow(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete blob %s: %w", md5, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", md5, err)
	}
	return fsx.SyncDir(b.s.dir)
}

func (b seam) Walk(ctx context.Context, fn func(blobstore.Info) error) error {
	if err := b.s.checkDir(); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	d, err := os.Open(b.s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(1024)
		for _, n := range names {
			if err := ctx.Err(); err != nil {
				return err
			}
			if k, _ := Classify(n); k != KindBlob {
				continue
			}
			fi, err := os.Lstat(filepath.Join(b.s.dir, n))
			if err != nil || !fi.Mode().IsRegular() {
				continue // gone meanwhile, or not a blob we would serve
			}
			if err := fn(blobstore.Info{MD5: n, Size: fi.Size()}); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
