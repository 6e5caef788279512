package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// PurgeOptions select what Purge removes. At least one of ModelIDs, Models,
// ResolutionCache, Blobs or All is required.
type PurgeOptions struct {
	// ModelIDs: every package of these models (the dir of the id's slug,
	// and packages an offline record files under the id as an alias).
	ModelIDs []string
	// PackageIDs narrow ModelIDs to these packages.
	PackageIDs []string
	// Models: every package of every model.
	Models bool
	// ResolutionCache: auto-resolution entries; those naming ModelIDs when
	// given, else all of them.
	ResolutionCache bool
	// Blobs: every blob nothing names any more, without the grace period.
	Blobs bool
	// All: Models, ResolutionCache, Blobs and every offline record.
	All bool
	// DryRun reports what would be removed, changing nothing.
	DryRun bool
	// Grace and PartialGrace of the GC pass for temp files (see GCOptions).
	Grace, PartialGrace time.Duration
}

// PurgedPackage is one package dir removed (or to be removed).
type PurgedPackage struct {
	ModelID   string `json:"model_id"`
	PackageID string `json:"package_id"`
	Dir       string `json:"dir"`
	// Bytes: du -sb of the dir (its blobs are counted by the GC pass).
	Bytes   int64  `json:"bytes"`
	Removed bool   `json:"removed"`
	Skipped string `json:"skipped,omitempty"`
}

// RecordChange is an offline record updated or deleted because its packages
// went.
type RecordChange struct {
	Path             string   `json:"path"`
	CanonicalModelID string   `json:"canonical_model_id"`
	RemovedPackages  []string `json:"removed_packages"`
	// Deleted: no package was left, so the record went.
	Deleted bool   `json:"deleted"`
	Bytes   int64  `json:"bytes"`
	Error   string `json:"error,omitempty"`
}

// PurgeReport is the result of Purge.
type PurgeReport struct {
	DryRun   bool            `json:"dry_run"`
	Packages []PurgedPackage `json:"packages"`
	Entries  []Item          `json:"entries"`
	Records  []RecordChange  `json:"records"`
	// GC is the sweep pass that collects the blobs the purge orphaned.
	GC *GCReport `json:"gc"`
	// ReclaimedBytes: package dirs, entries, deleted records and the GC
	// pass (reclaimable in a dry run).
	ReclaimedBytes int64 `json:"reclaimed_bytes"`
}

// Purge removes packages, entries and records per on-disk contract §12 step 4,
// under H/.meta/gc.lock: first the auto-resolution entries naming a package
// and its offline-record entries (records left without packages are
// deleted), then, under the package's materialization lock, its manifest (so
// it is no longer complete), its links, and its dir. The blobs it leaves
// orphaned are swept by a GC pass of the same call, so nothing dangling or
// orphaned remains. Packages under an unexpired lease are skipped.
func (m *Maintainer) Purge(ctx context.Context, opts PurgeOptions) (*PurgeReport, error) {
	if len(opts.ModelIDs) == 0 && !opts.Models && !opts.ResolutionCache && !opts.Blobs && !opts.All {
		return nil, fmt.Errorf("purge: %w: name models, or pass --models, --resolution-cache, --blobs or --all", errdefs.ErrInvalidParameter)
	}
	if len(opts.PackageIDs) > 0 && len(opts.ModelIDs) == 0 {
		return nil, fmt.Errorf("purge: %w: --package needs a MODEL_ID", errdefs.ErrInvalidParameter)
	}
	for _, id := range opts.ModelIDs {
		if _, err := layout.Slug(id); err != nil {
			return nil, err
		}
	}
	for _, id := range opts.PackageIDs {
		if err := layout.ValidatePackageID(id); err != nil {
			return nil, err
		}
	}
	if !opts.DryRun && m.offline() {
		return nil, errOffline("purge")
	}
	if opts.All {
		opts.Models, opts.ResolutionCache, opts.Blobs = true, true, true
	}
	if !opts.DryRun {
		held, err := m.lockGC(ctx)
		if err != nil {
			return nil, err
		}
		defer m.unlock(held)
	}
	inv, err := m.scan(ctx)
	if err != nil {
		return nil, err
	}
	rep := &PurgeReport{DryRun: opts.DryRun, Packages: []PurgedPackage{}, Entries: []Item{}, Records: []RecordChange{}}
	ex := &exclusions{pkgDirs: map[string]bool{}, entries: map[string]bool{}, records: map[string]map[string]bool{}, allRecords: opts.All}

	pkgs, err := m.selectPackages(inv, opts)
	if err != nil {
		return nil, err
	}
	leased := inv.leasedPackages(m.now())
	dependents := inv.dependents(pkgs)
	var targets []*pkgScan
	freed := map[string]bool{}
	for _, p := range pkgs {
		pp := PurgedPackage{ModelID: p.ModelID, PackageID: p.PackageID, Dir: p.Dir, Bytes: p.DirBytes}
		if leased[p.Dir] {
			pp.Skipped = "protected by an unexpired lease (work in flight)"
			rep.Packages = append(rep.Packages, pp)
			continue
		}
		if d := dependents[p]; d != "" {
			// Removing it would leave the dependent's link dangling.
			pp.Skipped = "a dependency of " + d + ", which stays; purge that package too"
			rep.Packages = append(rep.Packages, pp)
			continue
		}
		rep.Packages = append(rep.Packages, pp)
		targets = append(targets, p)
		ex.pkgDirs[p.Dir] = true
		for _, md5 := range p.Blobs {
			freed[md5] = true
		}
		if p.Manifest != nil {
			for _, a := range p.Manifest.PackageArtifacts {
				if a.MD5Hash != nil {
					freed[*a.MD5Hash] = true
				}
			}
		}
	}

	// Entries: those resolving to a package that goes, and those asked for.
	for _, e := range inv.Entries {
		if e.Entry == nil && !(opts.ResolutionCache && len(opts.ModelIDs) == 0) {
			continue // unparsable ones go with --resolution-cache or by GC
		}
		hit := opts.ResolutionCache && len(opts.ModelIDs) == 0
		if e.Entry != nil {
			for _, p := range targets {
				hit = hit || entryNamesPackage(e.Entry, p.Slug, p.PackageID)
			}
			if opts.ResolutionCache {
				for _, id := range opts.ModelIDs {
					hit = hit || entryNames(e.Entry, id)
				}
			}
		}
		if hit {
			ex.entries[e.Path] = true
		}
	}
	// Records: drop the packages that go (all records with --all).
	changes := m.planRecords(inv, targets, opts.All, ex)

	// 1. Entries, under their locks.
	for _, e := range inv.Entries {
		if !ex.entries[e.Path] {
			continue
		}
		it := Item{Kind: "entry", Path: e.Path, Bytes: e.node.Size}
		if !opts.DryRun {
			if err := m.c.Resolutions.Invalidate(ctx, e.Key); err != nil {
				return rep, fmt.Errorf("purge entry %s: %w", e.Path, err)
			}
			if _, err := os.Lstat(e.Path); err == nil {
				it.Reason = "not removed (a symlink, or re-created concurrently)"
				rep.Entries = append(rep.Entries, it)
				continue
			}
		}
		rep.Entries = append(rep.Entries, it)
		rep.ReclaimedBytes += it.Bytes
	}
	// 2. Offline records, under their locks (never while holding a
	// materialization lock, §9 rule 6).
	for _, ch := range changes {
		if !opts.DryRun {
			if err := m.applyRecordChange(ctx, &ch); err != nil {
				ch.Error = err.Error()
			}
		}
		if ch.Deleted && ch.Error == "" {
			rep.ReclaimedBytes += ch.Bytes
		}
		rep.Records = append(rep.Records, ch)
	}
	// 3. Packages: manifest, links, dir, under the materialization lock.
	for i := range rep.Packages {
		pp := &rep.Packages[i]
		if pp.Skipped != "" {
			continue
		}
		if opts.DryRun {
			rep.ReclaimedBytes += pp.Bytes
			continue
		}
		if err := m.removePackage(ctx, inv, pp); err != nil {
			pp.Skipped = err.Error()
			continue
		}
		pp.Removed = true
		rep.ReclaimedBytes += pp.Bytes
	}
	// 4. The GC pass: blobs the purge orphaned go now; with --blobs every
	// unmarked blob does.
	if opts.Blobs {
		for md5 := range inv.Blobs {
			freed[md5] = true
		}
	}
	for _, pp := range rep.Packages {
		if !pp.Removed && pp.Skipped != "" {
			// A package that stayed keeps its blobs marked by its links.
			delete(ex.pkgDirs, pp.Dir)
		}
	}
	g := &gcRun{m: m, opts: GCOptions{DryRun: opts.DryRun, Grace: opts.Grace, PartialGrace: opts.PartialGrace},
		now: m.now(), rep: newGCReport(GCOptions{DryRun: opts.DryRun, Grace: opts.Grace, PartialGrace: opts.PartialGrace}), ex: ex}
	if err := g.run(ctx, freed); err != nil {
		rep.GC = g.rep
		return rep, err
	}
	rep.GC = g.rep
	rep.ReclaimedBytes += g.rep.ReclaimedBytes
	return rep, nil
}

func (m *Maintainer) selectPackages(inv *inventory, opts PurgeOptions) ([]*pkgScan, error) {
	if opts.Models {
		return inv.Packages, nil
	}
	var out []*pkgScan
	seen := map[*pkgScan]bool{}
	wantPkg := map[string]bool{}
	for _, id := range opts.PackageIDs {
		wantPkg[id] = true
	}
	for _, id := range opts.ModelIDs {
		ps := inv.modelPackages(id)
		found := len(ps) > 0
		if !found && !opts.ResolutionCache {
			for _, e := range inv.Entries {
				found = found || (e.Entry != nil && entryNames(e.Entry, id))
			}
			found = found || len(inv.recordsNaming(id)) > 0
			if !found {
				return nil, &NotFoundError{ModelID: id}
			}
		}
		for _, p := range ps {
			if seen[p] || (len(wantPkg) > 0 && !wantPkg[p.PackageID]) {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// dependents maps each selected package to a package outside the selection
// whose dependency link leads to it ("" when none).
func (inv *inventory) dependents(selected []*pkgScan) map[*pkgScan]string {
	sel := map[*pkgScan]bool{}
	byReal := map[string]*pkgScan{}
	for _, p := range selected {
		sel[p] = true
		byReal[realOr(p.Dir)] = p
	}
	out := map[*pkgScan]string{}
	for _, p := range inv.Packages {
		if sel[p] {
			continue
		}
		for rel, li := range p.Links {
			if !strings.HasPrefix(rel, layout.DependenciesDir+"/") {
				continue
			}
			if dep := byReal[li.Resolved]; dep != nil && out[dep] == "" {
				out[dep] = p.Dir
			}
		}
		if p.Manifest != nil {
			for _, d := range p.Manifest.DependencyPackagePaths {
				if dep := byReal[d.TargetPath]; dep != nil && out[dep] == "" {
					out[dep] = p.Dir
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
func (m *Maintainer) applyRecordChange(ctx context.Context, ch *RecordChange) error {
	dir := m.c.Registry.Dir()
	if fi, err := os.Lstat(dir); err != nil || !fi.IsDir() {
		if err == nil {
			err = &fsx.UnsafePathError{Op: "update record in", Path: dir, Kind: kindOf(fi)}
		}
		return err
	}
	lockPath := filepath.Join(dir, "."+filepath.Base(ch.Path)+".lock")
	held, err := m.c.Locks.Lock(ctx, lockPath)
	if err != nil {
		return err
	}
	defer m.unlock(held)
	data, err := readNoFollow(ch.Path, maxEntryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	rec, err := offlinereg.ParseRecord(data)
	if err != nil || ch.Deleted {
		// An unreadable record is skipped by every reader; it goes with its packages.
		if err := removeRegular(ch.Path); err != nil {
			return err
		}
		ch.Deleted = true
		return fsx.SyncDir(dir)
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
		if err := removeRegular(ch.Path); err != nil {
			return err
		}
		ch.Deleted = true
		return fsx.SyncDir(dir)
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
	return fsx.WriteFileAtomic(ch.Path, out, offlinereg.DefaultFileMode)
}

// removePackage deletes one package dir under its materialization lock:
// entries that re-appeared meanwhile, the manifest, the links, the dir, its
// last-used stamp. Nothing is followed: a symlinked model or package dir is
// refused, and links inside are unlinked, never their targets.
func (m *Maintainer) removePackage(ctx context.Context, inv *inventory, pp *PurgedPackage) error {
	models := m.home.ModelsCache()
	if fi, err := os.Lstat(models); err != nil || !fi.IsDir() {
		if err == nil {
			err = &fsx.UnsafePathError{Op: "purge in", Path: models, Kind: kindOf(fi)}
		}
		return err
	}
	modelDir := filepath.Dir(pp.Dir)
	for _, d := range []string{modelDir, pp.Dir} {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &fsx.UnsafePathError{Op: "purge", Path: d, Kind: kindOf(fi)}
		}
	}
	held, err := m.c.Locks.Lock(ctx, filepath.Join(modelDir, "."+pp.PackageID+".materialization.lock"))
	if err != nil {
		return fmt.Errorf("package is being materialized: %w", err)
	}
	defer m.unlock(held)
	// A load may have registered an entry since step 1.
	slug := filepath.Base(modelDir)
	if ents, err := m.rescanEntries(ctx); err == nil {
		for _, e := range ents {
			if e.Entry != nil && entryNamesPackage(e.Entry, slug, pp.PackageID) {
				if err := m.c.Resolutions.Invalidate(ctx, e.Key); err != nil {
					return err
				}
			}
		}
	}
	if err := removeRegular(filepath.Join(pp.Dir, layout.ManifestFile)); err != nil {
		return fmt.Errorf("remove manifest: %w", err)
	}
	if err := fsx.SyncDir(pp.Dir); err != nil {
		return err
	}
	// Links next, deepest first, each unlinked itself.
	var links []string
	err = filepath.WalkDir(pp.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type()&fs.ModeSymlink != 0 {
			links = append(links, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(links)))
	for _, l := range links {
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	// os.RemoveAll removes symlinks as entries and never descends through
	// them (unlinkat/openat with O_NOFOLLOW).
	if err := os.RemoveAll(pp.Dir); err != nil {
		return err
	}
	if err := fsx.SyncDir(modelDir); err != nil {
		return err
	}
	if dir, err := metaDirNoFollow(m.home, lastUsedDir, slug); err == nil && dir != "" {
		if err := removeRegular(filepath.Join(dir, pp.PackageID)); err != nil {
			m.log.Warn("removing last-used stamp failed", "package", pp.Dir, "err", err)
		}
	}
	return nil
}

func (m *Maintainer) rescanEntries(ctx context.Context) ([]*entryScan, error) {
	inv := &inventory{Home: m.home}
	if err := m.scanEntries(ctx, inv); err != nil {
		return nil, err
	}
	return inv.Entries, nil
}
