package materialize

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/metadata"
)

// Source puts a package's bytes in place: the download engine, or any
// stream of bytes through StreamSource. Materialize owns the on-disk
// protocol; a Source owns the transfer.
type Source interface {
	// EnsureBlobs publishes the blob of every artifact in missing into
	// shared-blobs, verified against its MD5 (all of them carry one). It
	// returns, by MD5, the identity of each blob it verified as it wrote it
	// and published itself: step 6 does not read those again while the
	// identity holds. Blobs it found present, or that another process
	// published, must not be in the map.
	EnsureBlobs(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error)
	// FetchFile downloads an unhashed artifact to dest, which does not exist
	// (the handle's lock is held): through a private temp, with a size check
	// where the size is known, renamed into place.
	FetchFile(ctx context.Context, a metadata.Artifact, dest string) error
}

// OpenFunc opens the bytes of one artifact; size is -1 when unknown.
type OpenFunc func(ctx context.Context, a metadata.Artifact) (body io.ReadCloser, size int64, err error)

// StreamSource is a Source that streams each artifact from open, one at a
// time, through the blob store's verifying Put (blobs) or a private temp
// (unhashed files). It suits sources that hand out bytes (a bundle, a
// custom fetcher, tests); the download engine is the parallel one.
func StreamSource(blobs *blobfs.Store, open OpenFunc) Source { return streamSource{blobs, open} }

type streamSource struct {
	blobs *blobfs.Store
	open  OpenFunc
}

func (s streamSource) EnsureBlobs(ctx context.Context, missing []metadata.Artifact) (map[string]fsx.FileID, error) {
	verified := map[string]fsx.FileID{}
	for _, a := range missing {
		body, size, err := s.open(ctx, a)
		if err != nil {
			return verified, fmt.Errorf("fetch %q: %w", a.FileHandle, err)
		}
		res, err := s.blobs.PutDetailed(ctx, a.MD5(), body, size)
		body.Close()
		if err != nil {
			return verified, fmt.Errorf("store %q: %w", a.FileHandle, err)
		}
		if res.Published && res.File.Ino != 0 {
			verified[a.MD5()] = res.File
		}
	}
	return verified, nil
}

func (s streamSource) FetchFile(ctx context.Context, a metadata.Artifact, dest string) error {
	body, size, err := s.open(ctx, a)
	if err != nil {
		return err
	}
	defer body.Close()
	return writeFileFromStream(ctx, dest, body, size)
}

// writeFileFromStream publishes r at path: private temp, fsync, size check,
// rename, fsync dir. The final name never holds partial bytes.
func writeFileFromStream(ctx context.Context, path string, r io.Reader, size int64) error {
	dir, base := filepath.Split(path)
	tok, err := fsx.HexToken()
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+base+".partial-"+tok)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, fsx.ContextReader(ctx, r))
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		return fmt.Errorf("download of %s ended after %d of %d bytes", base, n, size)
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if isLink, _ := fsx.IsSymlink(path); isLink {
		return &fsx.UnsafePathError{Op: "write", Path: path, Kind: fsx.ErrSymlink}
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return fsx.SyncDir(dir)
}
