package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/meta"
)

// Defaults of the GC grace periods (on-disk contract §12, download.md §3).
const (
	DefaultGrace        = time.Hour
	DefaultPartialGrace = 24 * time.Hour
)

// GCOptions configure GC. Zero durations mean zero (no grace): the CLI
// passes the defaults.
type GCOptions struct {
	// DryRun reports what would be removed; it writes, locks and deletes
	// nothing.
	DryRun bool
	// Grace: unmarked blobs and temp files younger than this (mtime) stay.
	Grace time.Duration
	// PartialGrace: resumable partials stay while younger than this, or while
	// their owner lives (download.md §3 rule 7).
	PartialGrace time.Duration
}

// Item is one file removed (or, in a dry run, to be removed) or skipped.
type Item struct {
	// Kind: blob, entry, lease, last-used, verified-stamp, or a TempKind.
	Kind  string `json:"kind"`
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	// Reason a file was skipped.
	Reason string `json:"reason,omitempty"`
}

// Problem is something wrong that a command reports but does not change.
type Problem struct {
	// Kind: dangling-link, outside-link, symlink-in-shared-blobs,
	// unreadable-lease, unsafe-dir, ...
	Kind   string `json:"kind"`
	Path   string `json:"path"`
	Detail string `json:"detail"`
}

// GCReport is the result of GC. Bytes are apparent sizes (du -b).
type GCReport struct {
	DryRun       bool   `json:"dry_run"`
	Grace        string `json:"grace"`
	PartialGrace string `json:"partial_grace"`
	// MarkedBlobs: blobs something still names (kept).
	MarkedBlobs int `json:"marked_blobs"`
	// Removed: what was removed, or in a dry run what would be.
	Removed  []Item    `json:"removed"`
	Skipped  []Item    `json:"skipped"`
	Problems []Problem `json:"problems"`
	// Totals of Removed by category.
	Blobs   Usage `json:"blobs"`
	Temps   Usage `json:"temps"`
	Entries Usage `json:"entries"`
	Meta    Usage `json:"meta"`
	// ReclaimedBytes: the sum (reclaimable in a dry run).
	ReclaimedBytes int64 `json:"reclaimed_bytes"`
}

func newGCReport(opts GCOptions) *GCReport {
	return &GCReport{DryRun: opts.DryRun, Grace: opts.Grace.String(), PartialGrace: opts.PartialGrace.String(),
		Removed: []Item{}, Skipped: []Item{}, Problems: []Problem{}}
}

func (r *GCReport) removed(it Item) {
	r.Removed = append(r.Removed, it)
	r.ReclaimedBytes += it.Bytes
	switch it.Kind {
	case "blob":
		r.Blobs.add(it.Bytes)
	case "entry":
		r.Entries.add(it.Bytes)
	case "lease", "last-used", "verified-stamp":
		r.Meta.add(it.Bytes)
	default:
		r.Temps.add(it.Bytes)
	}
}

func (r *GCReport) skip(kind, path string, bytes int64, reason string) {
	r.Skipped = append(r.Skipped, Item{Kind: kind, Path: path, Bytes: bytes, Reason: reason})
}

func (r *GCReport) problem(kind, path, detail string) {
	r.Problems = append(r.Problems, Problem{Kind: kind, Path: path, Detail: detail})
}

// GC collects garbage (on-disk contract §12) under H/.meta/gc.lock: it marks
// every blob a manifest, a package link, an unexpired auto-resolution entry,
// an offline record or an unexpired lease names, then removes unmarked blobs
// older than the grace period whose lock is free, stale temp files and
// partials, expired auto-resolution entries, expired leases and stale
// bookkeeping. Dangling links and symlinks planted in the cache are
// reported, not touched. When a source of marks cannot be read safely (a
// symlinked models-cache, auto-resolution-cache, offline-weights-registry
// or .meta), no blob is removed.
func (m *Maintainer) GC(ctx context.Context, opts GCOptions) (*GCReport, error) {
	if !opts.DryRun && m.offline() {
		return nil, errOffline("gc")
	}
	rep := newGCReport(opts)
	if !opts.DryRun {
		held, err := m.lockGC(ctx)
		if err != nil {
			return nil, err
		}
		defer m.unlock(held)
	}
	inv, err := m.scanWith(ctx, true, false)
	if err != nil {
		return nil, err
	}
	defer inv.t.close()
	// Blobs of purges killed before their GC pass go without grace.
	var freed map[string]bool
	done := func() error { return nil }
	if !opts.DryRun {
		pending, d, err := meta.PendingPurges(m.home)
		if err != nil {
			m.log.Warn("reading purge intents failed", "err", err)
		}
		done = d
		freed = map[string]bool{}
		for _, md5 := range pending {
			freed[md5] = true
		}
	}
	g := &gcRun{m: m, opts: opts, now: m.now(), rep: rep}
	if err := g.run(ctx, inv, freed); err != nil {
		return rep, err
	}
	if err := done(); err != nil {
		m.log.Warn("removing finished purge intents failed", "err", err)
	}
	return rep, nil
}

// lockGC takes H/.meta/gc.lock (creating .meta, never through a symlink).
func (m *Maintainer) lockGC(ctx context.Context) (*lock.Held, error) {
	d, err := meta.Ensure(m.home)
	if err != nil {
		return nil, fmt.Errorf("gc lock: %w", err)
	}
	d.Close()
	held, err := m.c.Locks.Lock(ctx, m.home.GCLockPath())
	if err != nil {
		return nil, fmt.Errorf("gc lock %s (another gc or purge is running?): %w", m.home.GCLockPath(), err)
	}
	return held, nil
}

func (m *Maintainer) unlock(h *lock.Held) {
	if err := h.Unlock(); err != nil {
		m.log.Warn("releasing lock failed", "lock", h.Path(), "err", err)
	}
}

type gcRun struct {
	m    *Maintainer
	opts GCOptions
	now  time.Time
	rep  *GCReport
	// ex: what a purge removes (or, dry, would remove) before this pass.
	ex *exclusions
	// goneEntries: entries this pass removed (they protect nothing).
	goneEntries map[string]bool
}

// exclusions let a purge compute its GC pass as if its packages, entries
// and record packages were already gone.
type exclusions struct {
	pkgDirs    map[string]bool
	entries    map[string]bool
	records    map[string]map[string]bool // record path -> package ids removed
	allRecords bool
}

func (x *exclusions) pkgDir(p string) bool { return x != nil && x.pkgDirs[p] }

func (x *exclusions) entry(p string) bool { return x != nil && x.entries[p] }

func (x *exclusions) recordPackage(path, id string) bool {
	return x != nil && (x.allRecords || x.records[path][id])
}

// run is one mark-and-sweep pass over inv (scanned once). freed, when set
// (purge), are blobs the caller just orphaned: they are swept without the
// grace period.
func (g *gcRun) run(ctx context.Context, inv *inventory, freed map[string]bool) error {
	g.goneEntries = map[string]bool{}
	for _, p := range inv.t.problems() {
		g.rep.problem(p.Kind, p.Path, p.Detail)
	}
	// Expired entries go first so that they no longer protect anything.
	if !inv.partial {
		if err := g.sweepEntries(ctx, inv); err != nil {
			return err
		}
	}
	marks := g.mark(inv)
	g.rep.MarkedBlobs = 0
	for md5 := range marks {
		if inv.Blobs[md5] != nil {
			g.rep.MarkedBlobs++
		}
	}
	if err := g.sweepBlobs(ctx, inv, marks, freed); err != nil {
		return err
	}
	if inv.partial {
		// A targeted purge: the blobs it orphaned and nothing else (gc does
		// the rest). Their verified records stay until gc or verify compacts
		// the log: a record never matches a later file of the same name
		// (another inode and mtime).
		return nil
	}
	if err := g.sweepTemps(ctx, inv); err != nil {
		return err
	}
	if err := g.sweepMeta(ctx, inv); err != nil {
		return err
	}
	g.reportLinks(inv)
	return nil
}

// mark returns every blob md5 something still names, with the first reason.
// Every package dir counts, legacy and oddly named ones included.
func (g *gcRun) mark(inv *inventory) map[string]string {
	marks := map[string]string{}
	set := func(md5, why string) {
		if _, ok := marks[md5]; !ok {
			marks[md5] = why
		}
	}
	for _, p := range inv.Others {
		for _, md5 := range p.MarkMD5s {
			set(md5, "package link or manifest")
		}
	}
	for _, p := range inv.Packages {
		if g.ex.pkgDir(p.Dir) {
			continue
		}
		if p.Manifest != nil {
			for _, a := range p.Manifest.PackageArtifacts {
				if a.MD5Hash != nil {
					set(*a.MD5Hash, "manifest")
				}
			}
		}
		for _, li := range p.Links {
			if li.BlobMD5 != "" {
				set(li.BlobMD5, "package link")
			}
		}
	}
	for _, e := range inv.Entries {
		if e.Entry != nil && !e.Expired && !g.ex.entry(e.Path) && !g.goneEntries[e.Path] {
			for _, md5 := range entryBlobs(e.Entry) {
				set(md5, "auto-resolution entry")
			}
		}
	}
	for _, r := range inv.Records {
		for _, p := range r.Packages {
			if g.ex.recordPackage(r.Record.Path, p.PackageID) {
				continue
			}
			for _, md5 := range p.MD5s {
				set(md5, "offline record")
			}
		}
	}
	if g.ex == nil {
		// Records that do not parse still protect every md5 they mention.
		for md5 := range inv.RecordMD5s {
			set(md5, "offline record")
		}
	}
	for i := range inv.Leases {
		if !inv.Leases[i].Expired(g.now) {
			for _, md5 := range inv.Leases[i].Blobs {
				set(md5, "lease")
			}
		}
	}
	return marks
}

func (g *gcRun) age(t time.Time) time.Duration { return g.now.Sub(t) }

// marksIncomplete names a source of marks that could not be read safely.
func marksIncomplete(inv *inventory) error {
	for _, name := range []string{topModels, topEntries, topRecords} {
		if err := inv.t.unsafe[name]; err != nil {
			return err
		}
	}
	if inv.LeaseErr != nil {
		return inv.LeaseErr
	}
	return nil
}

// sweepBlobs removes unmarked blobs: older than the grace period, or in
// freed (just orphaned by purge), and only while their lock is free.
func (g *gcRun) sweepBlobs(ctx context.Context, inv *inventory, marks map[string]string, freed map[string]bool) error {
	if inv.BlobsErr != nil {
		return nil // reported with the tree's problems
	}
	if err := marksIncomplete(inv); err != nil {
		g.rep.problem("blobs-kept", g.m.home.SharedBlobs(), "no blob is collected while a source of marks cannot be read safely: "+err.Error())
		return nil
	}
	for _, se := range inv.SBEntries {
		if err := ctx.Err(); err != nil {
			return err
		}
		if se.Kind != blobfs.KindBlob {
			continue
		}
		if !se.node.isRegular() {
			g.rep.problem("symlink-in-shared-blobs", se.node.Path, "not a regular file under a blob name; left alone (remove it by hand after checking)")
			continue
		}
		if _, ok := marks[se.MD5]; ok {
			continue
		}
		if inv.partial && !freed[se.MD5] {
			continue
		}
		if !freed[se.MD5] && g.age(se.node.ModTime) < g.opts.Grace {
			g.rep.skip("blob", se.node.Path, se.node.Size, "younger than the grace period")
			continue
		}
		if g.opts.DryRun {
			g.rep.removed(Item{Kind: "blob", Path: se.node.Path, Bytes: se.node.Size})
			continue
		}
		if err := g.removeBlob(ctx, inv, se); err != nil {
			return err
		}
	}
	return nil
}

// removeBlob deletes one blob while holding its lock, after checking it is
// still the file that was judged (unlinkat in the shared-blobs descriptor).
func (g *gcRun) removeBlob(ctx context.Context, inv *inventory, se sbEntry) error {
	m := g.m
	lockPath, err := m.c.Blobs.LockPath(se.MD5)
	if err != nil {
		return err
	}
	held, ok, err := m.c.Locks.TryLock(ctx, lockPath)
	if err != nil {
		g.rep.skip("blob", se.node.Path, se.node.Size, "lock: "+err.Error())
		return nil
	}
	if !ok {
		g.rep.skip("blob", se.node.Path, se.node.Size, "in use (its lock is held)")
		return nil
	}
	defer m.unlock(held)
	d := inv.t.dir(topBlobs)
	id, err := d.Lstat(se.Name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !id.IsRegular() || (se.node.HasIno && id.Ino != se.node.Ino) {
		g.rep.skip("blob", se.node.Path, se.node.Size, "changed since it was judged")
		return nil
	}
	if err := d.Remove(se.Name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob: %w", err)
	}
	delete(inv.Blobs, se.MD5)
	g.rep.removed(Item{Kind: "blob", Path: se.node.Path, Bytes: se.node.Size})
	return nil
}

// sweepEntries removes expired and invalid auto-resolution entries, each
// through autoresolve's own retrieve (under the entry lock, re-checked
// there), as a reference candidate scan would.
func (g *gcRun) sweepEntries(ctx context.Context, inv *inventory) error {
	if inv.EntryErr != nil {
		return nil // reported with the tree's problems
	}
	for _, e := range inv.Entries {
		if (e.Err == nil && !e.Expired) || g.ex.entry(e.Path) {
			continue
		}
		var ue *fsx.UnsafePathError
		if errors.As(e.Err, &ue) {
			g.rep.problem("unsafe-entry", e.Path, e.Err.Error())
			continue
		}
		if g.opts.DryRun {
			g.rep.removed(Item{Kind: "entry", Path: e.Path, Bytes: e.node.Size})
			g.goneEntries[e.Path] = true
			continue
		}
		if _, _, err := g.m.c.Resolutions.Retrieve(ctx, e.Key); err != nil {
			g.rep.skip("entry", e.Path, e.node.Size, err.Error())
			continue
		}
		if _, err := inv.t.dir(topEntries).Lstat(e.Key + ".json"); errors.Is(err, fs.ErrNotExist) {
			g.rep.removed(Item{Kind: "entry", Path: e.Path, Bytes: e.node.Size})
			g.goneEntries[e.Path] = true
		} else {
			g.rep.skip("entry", e.Path, e.node.Size, "still valid when re-read under its lock")
		}
	}
	return nil
}
