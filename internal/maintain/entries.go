package maintain

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// maxEntryFile bounds the read of one entry or manifest (entries list every
// file of a package and its dependencies; a few MiB at most).
const maxEntryFile = 64 << 20

// scanEntries reads every entry; with filter, only those whose bytes it
// accepts are parsed and kept.
func (m *Maintainer) scanEntries(ctx context.Context, inv *inventory, filter func([]byte) bool) error {
	t := inv.t
	if err := t.unsafe[topEntries]; err != nil {
		inv.EntryErr = err
		return nil
	}
	d := t.dir(topEntries)
	if d == nil {
		return nil
	}
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if entryRE.MatchString(e.Name) {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	out := make([]*entryScan, len(names))
	now := m.now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	const chunk = 64
	for lo := 0; lo < len(names); lo += chunk {
		hi := min(lo+chunk, len(names))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if err := gctx.Err(); err != nil {
					return err
				}
				out[i] = m.readEntry(d, names[i], now, filter)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, es := range out {
		if es != nil {
			inv.Entries = append(inv.Entries, es)
		}
	}
	return nil
}

// readEntry reads and parses one entry (nil when it vanished meanwhile).
func (m *Maintainer) readEntry(d *fsx.Dir, name string, now time.Time, filter func([]byte) bool) *entryScan {
	es := &entryScan{Key: strings.TrimSuffix(name, ".json"), Path: d.Join(name)}
	data, id, err := d.ReadFile(name, maxEntryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var ue *fsx.UnsafePathError
		if errors.As(err, &ue) {
			if lid, lerr := d.Lstat(name); lerr == nil {
				es.node = nodeOf(es.Path, lid)
			}
		}
		es.Err = err
		return es
	}
	es.node = nodeOf(es.Path, id)
	if filter != nil && !filter(data) {
		return nil
	}
	es.Entry, es.Err = autoresolve.ParseEntry(data)
	if es.Entry != nil {
		es.Expired = m.ttl <= 0 || now.Sub(es.Entry.CreatedAt.Time) > m.ttl
	}
	return es
}

// knownModelIDs maps slugs to model ids named by entries and records, for
// package dirs that have no manifest yet.
func (inv *inventory) knownModelIDs() map[string]string {
	out := map[string]string{}
	add := func(id *string) {
		if id == nil || *id == "" {
			return
		}
		if s, err := layout.Slug(*id); err == nil {
			if _, ok := out[s]; !ok {
				out[s] = *id
			}
		}
	}
	for _, e := range inv.Entries {
		if e.Entry != nil {
			add(e.Entry.CacheModelID)
			add(e.Entry.CanonicalModelID)
		}
	}
	for _, r := range inv.Records {
		for i := range r.Packages {
			add(&r.Packages[i].Owner)
		}
	}
	return out
}

// entryNames reports whether an entry names modelID (requested, owner or
// canonical id).
func entryNames(e *autoresolve.Entry, modelID string) bool {
	return e.ModelID == modelID || (e.CacheModelID != nil && *e.CacheModelID == modelID) ||
		(e.CanonicalModelID != nil && *e.CanonicalModelID == modelID)
}

// entryOwner is the model id whose dir holds the entry's package.
func entryOwner(e *autoresolve.Entry) string {
	if e.CacheModelID != nil && *e.CacheModelID != "" {
		return *e.CacheModelID
	}
	if e.CanonicalModelID != nil && *e.CanonicalModelID != "" {
		return *e.CanonicalModelID
	}
	return e.ModelID
}

// entryBlobs are the blobs an entry's resolved_files name (conservatively:
// any ".../shared-blobs/<md5>", whatever H it was written under).
func entryBlobs(e *autoresolve.Entry) []string {
	var out []string
	for _, f := range e.ResolvedFiles {
		base := filepath.Base(f)
		if md5NameRE.MatchString(base) && filepath.Base(filepath.Dir(f)) == blobfs.DirName {
			out = append(out, base)
		}
	}
	return out
}

// entryNamesPackage reports whether an entry resolves to the package dir
// <slug>/<packageID>.
func entryNamesPackage(e *autoresolve.Entry, slug, packageID string) bool {
	if e.ModelPackageID != packageID {
		return false
	}
	s, err := layout.Slug(entryOwner(e))
	return err == nil && s == slug
}
