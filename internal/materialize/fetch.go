package materialize

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/metadata"
)

// transfer is one Materialize call's use of its Source: it remembers which
// blobs the source verified as it published them.
type transfer struct {
	src      Source
	verified map[string]fsx.FileID
}

func (t *transfer) ensure(ctx context.Context, missing []metadata.Artifact) error {
	if t.src == nil {
		return fmt.Errorf("blob %s for %q is missing and no source is configured", missing[0].MD5(), missing[0].FileHandle)
	}
	got, err := t.src.EnsureBlobs(ctx, missing)
	for md5, id := range got {
		t.verified[md5] = id
	}
	return err
}

// verifiedByUs returns the identity a blob had when this call's source
// verified and published it.
func (t *transfer) verifiedByUs(md5 string) (fsx.FileID, bool) {
	id, ok := t.verified[md5]
	return id, ok
}

func artifactFor(arts []metadata.Artifact, handle string) metadata.Artifact {
	for _, a := range arts {
		if a.FileHandle == handle {
			return a
		}
	}
	return metadata.Artifact{FileHandle: handle}
}

// fetchAll is step 5: MD5 artifacts into shared-blobs (every missing one in
// one call to the source), then unhashed ones into the package dir; existing
// targets are skipped without hashing. Then links.
func (s *Store) fetchAll(ctx context.Context, pkgDir string, decls []layout.Declaration, arts []metadata.Artifact, t *transfer) error {
	var missing []metadata.Artifact
	for _, d := range decls {
		if d.Storage != layout.StorageSharedBlob {
			continue
		}
		if ok, err := s.blobs.Has(d.MD5Hash); err != nil {
			return err
		} else if !ok {
			missing = append(missing, artifactFor(arts, d.FileHandle))
		}
	}
	if len(missing) > 0 {
		if err := t.ensure(ctx, missing); err != nil {
			return err
		}
	}
	for _, d := range decls {
		if !d.Unhashed {
			continue
		}
		if err := s.fetchPackageFile(ctx, pkgDir, d, artifactFor(arts, d.FileHandle), t); err != nil {
			return err
		}
	}
	for _, d := range decls {
		if d.Storage != layout.StorageSharedBlob {
			continue
		}
		if err := s.linkBlob(ctx, pkgDir, d); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) fetchPackageFile(ctx context.Context, pkgDir string, d layout.Declaration, a metadata.Artifact, t *transfer) error {
	p, err := layout.HandlePath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	lp, err := layout.HandleLockPath(pkgDir, d.FileHandle)
	if err != nil {
		return err
	}
	if err := ensureHandleDirs(pkgDir, d.FileHandle); err != nil {
		return err
	}
	held, err := s.locks.Lock(ctx, lp)
	if err != nil {
		return err
	}
	defer held.Unlock()
	if _, err := fsx.RegularNoFollow(p); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if t.src == nil {
		return fmt.Errorf("file %q is missing and no source is configured", d.FileHandle)
	}
	if err := t.src.FetchFile(ctx, a, p); err != nil {
		return fmt.Errorf("fetch %q: %w", d.FileHandle, err)
	}
	return nil
}

// ensureHandleDirs creates the directories of a nested handle one level at a
// time, refusing a symlink at every level: checking only the last one would
// let a planted link higher up lead writes outside the cache.
func ensureHandleDirs(pkgDir, handle string) error {
	dir := pkgDir
	segs := strings.Split(handle, "/")
	for _, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		if err := fsx.EnsureDir(dir, 0o777); err != nil {
			return err
		}
	}
	return nil
}
