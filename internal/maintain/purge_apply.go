package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// dependents maps each selected package to a package outside the selection
// whose dependency link leads to it ("" when none).
func (inv *inventory) dependents(selected []*pkgScan) map[*pkgScan]string {
	sel := map[*pkgScan]bool{}
	byRel := map[string]*pkgScan{}
	for _, p := range selected {
		sel[p] = true
		byRel[p.Rel] = p
	}
	out := map[*pkgScan]string{}
	for _, p := range append(append([]*pkgScan{}, inv.Packages...), inv.Others...) {
		if sel[p] {
			continue
		}
		for rel, li := range p.Links {
			if !strings.HasPrefix(rel, layout.DependenciesDir+"/") || !li.Inside {
				continue
			}
			if dep := byRel[li.Rel]; dep != nil && out[dep] == "" {
				out[dep] = p.Dir
			}
		}
		if p.Manifest != nil {
			for _, d := range p.Manifest.DependencyPackagePaths {
				for _, root := range []string{inv.RealHome, filepath.Clean(inv.Home.Root)} {
					if rel, ok := relWithin(filepath.Clean(d.TargetPath), root); ok {
						if dep := byRel[rel]; dep != nil && out[dep] == "" {
							out[dep] = p.Dir
						}
					}
				}
			}
		}
	}
	return out
}

// leasedPackages are the package dirs named by unexpired leases.
func (inv *inventory) leasedPackages(now time.Time) map[string]bool {
	out := map[string]bool{}
	for i := range inv.Leases {
		l := &inv.Leases[i]
		if l.Expired(now) {
			continue
		}
		for _, p := range l.Packages {
			if filepath.IsAbs(p) {
				out[filepath.Clean(p)] = true
				continue
			}
			i := strings.LastIndexByte(p, '/')
			if i <= 0 {
				continue
			}
			if dir, err := inv.Home.PackageDir(p[:i], p[i+1:]); err == nil {
				out[dir] = true
			}
		}
	}
	return out
}

// planRecords works out, per record, which packages go.
func (m *Maintainer) planRecords(inv *inventory, targets []*pkgScan, all bool, ex *exclusions) []RecordChange {
	var out []RecordChange
	for _, r := range inv.Records {
		ch := RecordChange{Path: r.Record.Path, RemovedPackages: []string{}, Bytes: r.node.Size}
		ch.CanonicalModelID, _ = r.Record.CanonicalModelID()
		removed := map[string]bool{}
		for _, rp := range r.Packages {
			slug, err := layout.Slug(rp.Owner)
			if err != nil {
				continue
			}
			for _, p := range targets {
				if p.Slug == slug && p.PackageID == rp.PackageID && !removed[rp.PackageID] {
					removed[rp.PackageID] = true
					ch.RemovedPackages = append(ch.RemovedPackages, rp.PackageID)
				}
			}
		}
		if len(removed) == 0 && !all {
			continue
		}
		ch.Deleted = all || len(removed) >= len(r.Packages)
		ex.records[r.Record.Path] = removed
		sort.Strings(ch.RemovedPackages)
		out = append(out, ch)
	}
	return out
}

// applyRecordChange rewrites (or deletes) one record under its lock,
// re-reading it there so that a concurrent warm-up is not lost.
func (m *Maintainer) applyRecordChange(ctx context.Context, inv *inventory, ch *RecordChange) error {
	d := inv.t.dir(topRecords)
	if d == nil {
		return nil
	}
	name := filepath.Base(ch.Path)
	held, err := m.c.Locks.Lock(ctx, d.Join("."+name+".lock"))
	if err != nil {
		return err
	}
	defer m.unlock(held)
	data, _, err := d.ReadFile(name, maxEntryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	remove := func() error {
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		ch.Deleted = true
		return d.Sync()
	}
	rec, err := offlinereg.ParseRecord(data)
	if err != nil || ch.Deleted {
		// An unreadable record is skipped by every reader; it goes with its packages.
		return remove()
	}
	gone := map[string]bool{}
	for _, id := range ch.RemovedPackages {
		gone[id] = true
	}
	pv, _ := rec.Doc.Get("packages")
	list, _ := pv.([]any)
	kept := make([]any, 0, len(list))
	for _, p := range list {
		if o, ok := p.(*pyjson.Object); ok {
			if id, ok := getString(o, "package_id"); ok && gone[id] {
				continue
			}
		}
		kept = append(kept, p)
	}
	if len(kept) == 0 {
		return remove()
	}
	rec.Doc.Set("packages", kept)
	if pr, ok := rec.Doc.Get("proven"); ok {
		if po, ok := pr.(*pyjson.Object); ok {
			po = po.Clone()
			for id := range gone {
				po.Delete(id)
			}
			rec.Doc.Set("proven", po)
		}
	}
	out, err := rec.Marshal()
	if err != nil {
		return err
	}
	ch.Deleted = false
	return d.WriteFileAtomic(name, out, offlinereg.DefaultFileMode)
}

// removePackage deletes one package dir under its materialization lock:
// entries that re-appeared meanwhile, the manifest, the links, the dir, its
// last-used stamp. Everything is unlinked through descriptors opened without
// following links: a symlinked model or package dir is refused, and links
// inside are unlinked, never their targets.
func (m *Maintainer) removePackage(ctx context.Context, inv *inventory, pp *PurgedPackage, progress func(step, path string)) error {
	models := inv.t.dir(topModels)
	if models == nil {
		return fmt.Errorf("purge: %s is not a directory", m.home.ModelsCache())
	}
	slug := filepath.Base(filepath.Dir(pp.Dir))
	md, err := models.Sub(slug)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone meanwhile
	}
	if err != nil {
		return err
	}
	defer md.Close()
	pd, err := md.Sub(pp.PackageID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer pd.Close()
	held, err := m.c.Locks.Lock(ctx, md.Join("."+pp.PackageID+".materialization.lock"))
	if err != nil {
		return fmt.Errorf("package is being materialized: %w", err)
	}
	defer m.unlock(held)
	// A load may have registered an entry since step 1.
	if d := inv.t.dir(topEntries); d != nil {
		ents, _ := d.Entries()
		now := m.now()
		for _, e := range ents {
			if !entryRE.MatchString(e.Name) {
				continue
			}
			es := m.readEntry(d, e.Name, now, nil)
			if es != nil && es.Entry != nil && entryNamesPackage(es.Entry, slug, pp.PackageID) {
				if err := m.c.Resolutions.Invalidate(ctx, es.Key); err != nil {
					return err
				}
			}
		}
	}
	if id, err := pd.Lstat(layout.ManifestFile); err == nil {
		if !id.IsRegular() {
			return &fsx.UnsafePathError{Op: "remove", Path: pd.Join(layout.ManifestFile), Kind: kindOfMode(id.Mode)}
		}
		if err := pd.Remove(layout.ManifestFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove manifest: %w", err)
		}
		if err := pd.Sync(); err != nil {
			return err
		}
		progress("manifest", pd.Join(layout.ManifestFile))
	}
	// The rest, links first (RemoveAll unlinks a link as an entry and never
	// descends through one).
	pd.Close()
	if err := md.RemoveAll(pp.PackageID); err != nil {
		return err
	}
	if err := md.Sync(); err != nil {
		return err
	}
	progress("package", pp.Dir)
	if err := meta.RemoveLastUsed(m.home, slug, pp.PackageID); err != nil {
		m.log.Warn("removing last-used stamp failed", "package", pp.Dir, "err", err)
	}
	return nil
}
