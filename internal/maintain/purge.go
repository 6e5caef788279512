package maintain

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
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
	// Progress, when set, is called after each step that changed the cache
	// (not in a dry run): a package removed, an entry or record updated.
	Progress func(PurgeEvent)
}

// PurgeEvent reports one completed step of a purge.
type PurgeEvent struct {
	// Step: "entry", "record", "manifest" (the package is no longer
	// complete), "package" (its dir is gone).
	Step string
	Path string
}

// PurgedModel says what a purge found for one requested model id.
type PurgedModel struct {
	ModelID string `json:"model_id"`
	// State: "removed" (its packages went), "gone" (nothing of it was left
	// to remove: purged before, or never cached), "kept" (something stayed;
	// see the packages' reasons).
	State string `json:"state"`
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
	DryRun bool `json:"dry_run"`
	// Models: one line per requested model id.
	Models   []PurgedModel   `json:"models"`
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
//
// Purge is idempotent: a model id of which nothing is left (an interrupted
// purge already removed it, or it was never cached) is reported as gone,
// and a rerun of an interrupted purge finishes what remains.
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
	// Models named without --models/--all/--blobs/--resolution-cache: only
	// they are walked in full (plus what the reference counts need).
	// Blobs an earlier purge was about to collect when it was killed.
	var pending []string
	pendingDone := func() error { return nil }
	if !opts.DryRun {
		var err error
		if pending, pendingDone, err = meta.PendingPurges(m.home); err != nil {
			m.log.Warn("reading purge intents failed", "err", err)
		}
	}
	var inv *inventory
	var err error
	if len(opts.ModelIDs) > 0 && !opts.Models && !opts.Blobs && !opts.ResolutionCache {
		inv, err = m.scanForPurge(ctx, opts.ModelIDs, pending)
	} else {
		inv, err = m.scan(ctx)
	}
	if err != nil {
		return nil, err
	}
	defer inv.t.close()
	progress := func(step, path string) {
		if opts.Progress != nil && !opts.DryRun {
			opts.Progress(PurgeEvent{Step: step, Path: path})
		}
	}
	rep := &PurgeReport{DryRun: opts.DryRun, Models: []PurgedModel{}, Packages: []PurgedPackage{}, Entries: []Item{}, Records: []RecordChange{}}
	ex := &exclusions{pkgDirs: map[string]bool{}, entries: map[string]bool{}, records: map[string]map[string]bool{}, allRecords: opts.All}

	pkgs, found := m.selectPackages(inv, opts)
	if (opts.Models || len(opts.ModelIDs) > 0) && inv.t.unsafe[topModels] != nil {
		return nil, fmt.Errorf("purge: %w", inv.t.unsafe[topModels])
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
			for _, id := range opts.ModelIDs {
				// An entry of a model of which no package is left (an
				// interrupted purge) goes too.
				hit = hit || (entryNames(e.Entry, id) && (opts.ResolutionCache || len(pkgs) == 0 || !found[id]))
			}
		}
		if hit {
			ex.entries[e.Path] = true
		}
	}
	// Records: drop the packages that go (all records with --all).
	changes := m.planRecords(inv, targets, opts.All, ex)

	if !opts.DryRun {
		for _, md5 := range pending {
			freed[md5] = true
		}
		// This run's intent, before anything is removed: a kill from here on
		// leaves it for the rerun.
		var mine []string
		for md5 := range freed {
			mine = append(mine, md5)
		}
		sort.Strings(mine)
		if len(mine) > 0 {
			done, err := meta.WritePurgeIntent(m.home, mine)
			if err != nil {
				return nil, fmt.Errorf("purge: %w", err)
			}
			defer func() {
				if err := done(); err != nil {
					m.log.Warn("removing the purge intent failed", "err", err)
				}
			}()
		}
	}

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
			if _, err := inv.t.dir(topEntries).Lstat(e.Key + ".json"); err == nil {
				it.Reason = "not removed (a symlink, or re-created concurrently)"
				rep.Entries = append(rep.Entries, it)
				continue
			}
			progress("entry", e.Path)
		}
		rep.Entries = append(rep.Entries, it)
		rep.ReclaimedBytes += it.Bytes
	}
	// 2. Offline records, under their locks (never while holding a
	// materialization lock, §9 rule 6).
	for _, ch := range changes {
		if !opts.DryRun {
			if err := m.applyRecordChange(ctx, inv, &ch); err != nil {
				ch.Error = err.Error()
			} else {
				progress("record", ch.Path)
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
		if err := m.removePackage(ctx, inv, pp, progress); err != nil {
			pp.Skipped = err.Error()
			continue
		}
		pp.Removed = true
		rep.ReclaimedBytes += pp.Bytes
	}
	for _, id := range opts.ModelIDs {
		state := "gone"
		if found[id] {
			state = "removed"
			slug, _ := layout.Slug(id)
			for _, pp := range rep.Packages {
				if pp.Skipped != "" && filepath.Base(filepath.Dir(pp.Dir)) == slug {
					state = "kept"
				}
			}
		}
		rep.Models = append(rep.Models, PurgedModel{ModelID: id, State: state})
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
	gopts := GCOptions{DryRun: opts.DryRun, Grace: opts.Grace, PartialGrace: opts.PartialGrace}
	g := &gcRun{m: m, opts: gopts, now: m.now(), rep: newGCReport(gopts), ex: ex}
	err = g.run(ctx, inv, freed)
	rep.GC = g.rep
	if err != nil {
		return rep, err
	}
	if err := pendingDone(); err != nil {
		m.log.Warn("removing finished purge intents failed", "err", err)
	}
	rep.ReclaimedBytes += g.rep.ReclaimedBytes
	return rep, nil
}

// selectPackages returns the packages the options select and, per requested
// model id, whether anything of it (packages, entries, records) was found.
func (m *Maintainer) selectPackages(inv *inventory, opts PurgeOptions) ([]*pkgScan, map[string]bool) {
	found := map[string]bool{}
	if opts.Models {
		var out []*pkgScan
		for _, p := range inv.Packages {
			if p.Valid {
				out = append(out, p)
			}
		}
		for _, id := range opts.ModelIDs {
			found[id] = true
		}
		return out, found
	}
	var out []*pkgScan
	seen := map[*pkgScan]bool{}
	wantPkg := map[string]bool{}
	for _, id := range opts.PackageIDs {
		wantPkg[id] = true
	}
	for _, id := range opts.ModelIDs {
		ps := inv.modelPackages(id)
		found[id] = len(ps) > 0
		for _, p := range ps {
			if seen[p] || (len(wantPkg) > 0 && !wantPkg[p.PackageID]) {
				continue
			}
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, found
}
