package offlinereg

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/metadata"
)

// Records returns every readable record in file-name order (dotfiles and
// non-.json names are skipped). Unreadable records (symlinked, not regular,
// invalid JSON, not an object, bad or newer format_version) are skipped with
// a warning. A missing registry gives no records; a symlinked registry
// directory is refused (*SymlinkError) and nothing in it is read.
func (r *Registry) Records(ctx context.Context) ([]*Record, error) {
	names, err := r.recordNames()
	if err != nil || len(names) == 0 {
		return nil, err
	}
	var out []*Record
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rec, err := r.readLogged(ctx, filepath.Join(r.Dir(), name))
		if err != nil {
			return nil, err
		}
		if rec != nil {
			out = append(out, rec)
		}
	}
	return out, nil
}

// checkDir reports whether the registry directory exists; a symlink or
// non-directory there is refused with *SymlinkError.
func (r *Registry) checkDir() (bool, error) {
	dir := r.Dir()
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("offline registry: %w", err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return false, &SymlinkError{Path: dir, Err: &fsx.UnsafePathError{Op: "read records in", Path: dir, Kind: fsx.ErrSymlink}}
	case !fi.IsDir():
		return false, &SymlinkError{Path: dir, Err: &fsx.UnsafePathError{Op: "read records in", Path: dir, Kind: fsx.ErrNotDir}}
	}
	return true, nil
}

// recordNames lists candidate record files, sorted.
func (r *Registry) recordNames() ([]string, error) {
	dir := r.Dir()
	if ok, err := r.checkDir(); !ok || err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("offline registry: list %s: %w", dir, err)
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if strings.HasPrefix(n, ".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names) // code-point order, as Python's sorted(os.listdir())
	return names, nil
}

// readLogged reads one record; records that readers skip are logged and give
// (nil, nil). Only context cancellation is returned as an error.
func (r *Registry) readLogged(ctx context.Context, path string) (*Record, error) {
	rec, err := readRecordFile(ctx, path)
	if err == nil {
		return rec, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if errors.Is(err, ErrNewerFormat) {
		r.log.Warn("Skipping offline-weights registry record written by a newer inference-models release",
			"path", path, "error", err)
	} else {
		r.log.Warn("Could not read offline-weights registry record; ignoring it", "path", path, "error", err)
	}
	return nil, nil
}

// Lookup finds the record for modelID (offline.md §3.4): the record at
// slug(modelID) when it is readable, else the first record in file-name order
// whose requested_aliases lists modelID. It returns (nil, nil) when there is
// none. When several records claim the alias the first wins and the others
// are logged (the reference takes the first silently). A symlinked registry
// directory is refused with *SymlinkError.
func (r *Registry) Lookup(ctx context.Context, modelID string) (*Record, error) {
	if ok, err := r.checkDir(); !ok || err != nil {
		return nil, err
	}
	if path, err := r.home.OfflineRecordPath(modelID); err == nil {
		rec, err := r.readLogged(ctx, path)
		if err != nil || rec != nil {
			return rec, err
		}
	}
	recs, err := r.Records(ctx)
	if err != nil {
		return nil, err
	}
	var found *Record
	var others []string
	for _, rec := range recs {
		if !rec.HasAlias(modelID) {
			continue
		}
		if found == nil {
			found = rec
		} else {
			others = append(others, filepath.Base(rec.Path))
		}
	}
	if len(others) > 0 {
		r.log.Warn("offline registry: alias claimed by several records; using the first",
			"alias", modelID, "used", filepath.Base(found.Path), "ignored", strings.Join(others, ", "))
	}
	return found, nil
}

// LoadModelMetadata returns the recorded metadata for modelID (a canonical
// id or an alias), or (nil, nil) when no usable record exists. Packages are
// local-cache packages; their presence on disk is not checked here.
func (r *Registry) LoadModelMetadata(ctx context.Context, modelID string) (*metadata.ModelMetadata, error) {
	rec, err := r.Lookup(ctx, modelID)
	if err != nil || rec == nil {
		return nil, err
	}
	m, err := rec.ModelMetadata(r.log)
	if err != nil {
		r.log.Warn("offline registry: record found but unusable", "model_id", modelID, "error", err)
		return nil, nil
	}
	return m, nil
}
