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
	inv, err := m.scan(ctx)
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

// sweepTemps removes stale transient files everywhere under H.
func (g *gcRun) sweepTemps(ctx context.Context, inv *inventory) error {
	var cands []walkedTemp
	// shared-blobs: blobstore's names.
	if inv.BlobsErr == nil {
		for _, se := range inv.SBEntries {
			if k := blobTempKind(se.Kind); k != "" {
				cands = append(cands, walkedTemp{n: se.node, kind: k, final: se.MD5, dir: topBlobs, name: se.Name})
			}
		}
	}
	for _, ms := range inv.Models {
		cands = append(cands, ms.Temps...)
		for _, p := range ms.Packages {
			if g.ex.pkgDir(p.Dir) {
				continue
			}
			declared := map[string]bool{}
			if p.Manifest != nil {
				for _, a := range p.Manifest.PackageArtifacts {
					declared[a.FileHandle] = true
				}
			}
			for _, t := range p.Temps {
				if t.kind == TempReference && declared[t.n.Rel] {
					continue // a declared handle that merely looks like a temp
				}
				cands = append(cands, t)
			}
		}
	}
	for _, top := range []string{topEntries, topRecords} {
		ts, err := flatTemps(inv.t, top)
		if err != nil {
			g.rep.problem("unsafe-dir", inv.t.path(top), err.Error())
			continue
		}
		cands = append(cands, ts...)
	}
	metaTemps, err := g.metaTemps(ctx, inv)
	if err != nil {
		return err
	}
	cands = append(cands, metaTemps...)

	// Journals by their partial's path, to judge the pair together.
	journals := map[string]walkedTemp{}
	for _, c := range cands {
		if c.kind == TempJournal {
			journals[strings.TrimSuffix(c.n.Path, ".json")] = c
		}
	}
	byPath := map[string]walkedTemp{}
	for _, c := range cands {
		byPath[c.n.Path] = c
	}
	handled := map[string]bool{}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return err
		}
		if handled[c.n.Path] {
			continue
		}
		switch c.kind {
		case TempPartial, TempJournal:
			partial := strings.TrimSuffix(c.n.Path, ".json")
			j, hasJournal := journals[partial]
			var jdata []byte
			if hasJournal {
				jdata = g.readTemp(inv, j)
				if jdata == nil {
					jdata = []byte{}
				}
			}
			mtime := c.n.ModTime
			if hasJournal && j.n.ModTime.After(mtime) {
				mtime = j.n.ModTime
			}
			group := []walkedTemp{c}
			if c.kind == TempPartial && hasJournal {
				group = append(group, j)
			}
			if c.kind == TempJournal {
				if p, ok := byPath[partial]; ok {
					group = append(group, p)
				}
			}
			for _, x := range group {
				handled[x.n.Path] = true
			}
			if !partialAbandoned(jdata, mtime, g.now, g.opts.PartialGrace) {
				for _, x := range group {
					g.rep.skip(string(x.kind), x.n.Path, x.n.Size, "resumable: owner alive or younger than the partial grace period")
				}
				continue
			}
			if err := g.removeTemps(ctx, inv, group); err != nil {
				return err
			}
		case TempCorrupt:
			// Known-bad bytes moved aside: no grace needed.
			handled[c.n.Path] = true
			if err := g.removeTemps(ctx, inv, []walkedTemp{c}); err != nil {
				return err
			}
		default:
			handled[c.n.Path] = true
			if g.age(c.n.ModTime) < g.opts.Grace {
				g.rep.skip(string(c.kind), c.n.Path, c.n.Size, "younger than the grace period")
				continue
			}
			if err := g.removeTemps(ctx, inv, []walkedTemp{c}); err != nil {
				return err
			}
		}
	}
	return nil
}

// readTemp reads a (small) journal through its directory's descriptor.
func (g *gcRun) readTemp(inv *inventory, t walkedTemp) []byte {
	d, closeDir, err := inv.t.openDirRel(t.dir)
	if err != nil {
		return nil
	}
	defer closeDir()
	data, _, err := d.ReadFile(t.base(), maxMetaFile)
	if err != nil {
		return nil
	}
	return data
}

// flatTemps lists transient names in a flat metadata dir (never through a
// symlinked dir).
func flatTemps(t *tree, top string) ([]walkedTemp, error) {
	if err := t.unsafe[top]; err != nil {
		return nil, nil // reported with the tree's problems
	}
	d := t.dir(top)
	if d == nil {
		return nil, nil
	}
	ents, err := d.Entries()
	if err != nil {
		return nil, err
	}
	var out []walkedTemp
	for _, e := range ents {
		k, final := classifyTemp(e.Name)
		if k == "" {
			continue
		}
		id, err := d.Lstat(e.Name)
		if err != nil {
			continue
		}
		out = append(out, walkedTemp{n: nodeOf(d.Join(e.Name), id), kind: k, final: final, dir: top, name: e.Name})
	}
	return out, nil
}

// metaTemps finds transient names anywhere below .meta.
func (g *gcRun) metaTemps(ctx context.Context, inv *inventory) ([]walkedTemp, error) {
	d := inv.t.dir(topMeta)
	if d == nil {
		return nil, nil
	}
	var out []walkedTemp
	var walk func(d *fsx.Dir, rel string, depth int) error
	walk = func(d *fsx.Dir, rel string, depth int) error {
		ents, err := d.Entries()
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if e.IsDir() {
				if depth >= 4 {
					continue
				}
				sub, err := d.Sub(e.Name)
				if err != nil {
					continue
				}
				err = walk(sub, rel+"/"+e.Name, depth+1)
				sub.Close()
				if err != nil {
					return err
				}
				continue
			}
			k, final := classifyTemp(e.Name)
			if k == "" {
				continue
			}
			id, err := d.Lstat(e.Name)
			if err != nil {
				continue
			}
			out = append(out, walkedTemp{n: nodeOf(d.Join(e.Name), id), kind: k, final: final, dir: rel, name: e.Name})
		}
		return nil
	}
	return out, walk(d, topMeta, 0)
}

// removeTemps deletes a group of transient files (a partial and its
// journal) while the lock of their final name is free. Only regular files
// and, for link temps, the symlink itself are removed (unlinkat in their
// directory's descriptor).
func (g *gcRun) removeTemps(ctx context.Context, inv *inventory, group []walkedTemp) error {
	if g.opts.DryRun {
		for _, t := range group {
			g.rep.removed(Item{Kind: string(t.kind), Path: t.n.Path, Bytes: t.n.Size})
		}
		return nil
	}
	first := group[0]
	d, closeDir, err := inv.t.openDirRel(first.dir)
	if err != nil {
		for _, t := range group {
			g.rep.skip(string(t.kind), t.n.Path, t.n.Size, "its directory cannot be opened safely: "+err.Error())
		}
		return nil
	}
	defer closeDir()
	lockName := "." + first.final + ".lock"
	useLock := first.final != "" && !strings.HasPrefix(first.final, ".")
	lockPath := d.Join(lockName)
	if first.dir == topBlobs && md5NameRE.MatchString(first.final) {
		lockPath, _ = g.m.c.Blobs.LockPath(first.final)
	}
	if useLock {
		id, err := d.Lstat(lockName)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Nobody has locked it: writers lock before they create temps.
		case err != nil:
			return err
		case !id.IsRegular():
			for _, t := range group {
				g.rep.skip(string(t.kind), t.n.Path, t.n.Size, "its lock file is not a regular file")
			}
			return nil
		default:
			held, ok, err := g.m.c.Locks.TryLock(ctx, lockPath)
			if err != nil || !ok {
				for _, t := range group {
					g.rep.skip(string(t.kind), t.n.Path, t.n.Size, "in use (its lock is held)")
				}
				return nil
			}
			defer g.m.unlock(held)
		}
	}
	for _, t := range group {
		id, err := d.Lstat(t.base())
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		isLinkTemp := t.kind == TempLink && id.Mode&fs.ModeSymlink != 0
		if !id.IsRegular() && !isLinkTemp {
			g.rep.skip(string(t.kind), t.n.Path, t.n.Size, "not a regular file")
			continue
		}
		if err := d.Remove(t.base()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		g.rep.removed(Item{Kind: string(t.kind), Path: t.n.Path, Bytes: id.Size})
	}
	return nil
}

// sweepMeta removes expired leases, last-used stamps of packages that are
// gone (older than grace) and compacts the verified records to the blobs
// that remain.
func (g *gcRun) sweepMeta(ctx context.Context, inv *inventory) error {
	for _, p := range inv.BadLeases {
		g.rep.problem("unreadable-lease", p, "not a lease document; it protects nothing")
	}
	md := inv.t.dir(topMeta)
	if md == nil {
		return nil
	}
	if ld, err := md.Sub(meta.LeasesDir); err == nil {
		for i := range inv.Leases {
			l := &inv.Leases[i]
			if l.Expired(g.now) {
				g.removeMeta(ld, filepath.Base(l.Path), "lease")
			}
		}
		ld.Close()
	}
	pkgs := map[string]bool{}
	for _, p := range inv.Packages {
		if !g.ex.pkgDir(p.Dir) {
			pkgs[p.Slug+"/"+p.PackageID] = true
		}
	}
	if lu, err := md.Sub(meta.LastUsedDir); err == nil {
		defer lu.Close()
		slugs, _ := lu.Entries()
		models := inv.t.dir(topModels)
		for _, s := range slugs {
			if !s.IsDir() {
				continue
			}
			sd, err := lu.Sub(s.Name)
			if err != nil {
				continue
			}
			files, _ := sd.Entries()
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					sd.Close()
					return err
				}
				if k, _ := classifyTemp(f.Name); k != "" || pkgs[s.Name+"/"+f.Name] {
					continue
				}
				// The package may be materializing right now without a dir
				// the scan saw: it must still be gone now.
				if models != nil && !g.ex.pkgDir(models.Join(s.Name)+"/"+f.Name) {
					if md, err := models.Sub(s.Name); err == nil {
						_, err := md.Lstat(f.Name)
						md.Close()
						if err == nil {
							continue
						}
					}
				}
				g.removeMeta(sd, f.Name, "last-used")
			}
			sd.Close()
		}
	}
	// Verified records of blobs that are gone (and legacy record files).
	if inv.BlobsErr == nil {
		keep := func(md5 string) bool { return inv.Blobs[md5] != nil }
		st, err := meta.CompactVerified(ctx, g.m.home, keep, g.opts.DryRun)
		if err != nil {
			g.m.log.Warn("compacting verified records failed", "err", err)
		} else if st.Dropped > 0 || st.Migrated > 0 {
			g.rep.removed(Item{Kind: "verified-records", Path: md.Join(meta.VerifiedLog), Bytes: st.Reclaimed()})
		}
	}
	return nil
}

// removeMeta unlinks a bookkeeping file older than grace in d.
func (g *gcRun) removeMeta(d *fsx.Dir, name, kind string) {
	id, err := d.Lstat(name)
	if err != nil {
		return
	}
	if !id.IsRegular() {
		g.rep.problem("unsafe-meta", d.Join(name), "not a regular file; left alone")
		return
	}
	if g.age(time.Unix(0, id.MtimeNS)) < g.opts.Grace {
		return
	}
	if !g.opts.DryRun {
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			g.m.log.Warn("removing bookkeeping failed", "path", d.Join(name), "err", err)
			return
		}
	}
	g.rep.removed(Item{Kind: kind, Path: d.Join(name), Bytes: id.Size})
}

// reportLinks reports links that dangle or lead out of the cache.
func (g *gcRun) reportLinks(inv *inventory) {
	for _, p := range inv.Packages {
		if g.ex.pkgDir(p.Dir) {
			continue
		}
		rels := make([]string, 0, len(p.Links))
		for rel := range p.Links {
			rels = append(rels, rel)
		}
		sort.Strings(rels)
		for _, rel := range rels {
			li := p.Links[rel]
			path := p.Dir + "/" + rel
			switch {
			case !li.Inside:
				g.rep.problem("outside-link", path, "symlink to "+li.Resolved+" leads outside the cache; never followed")
			case li.OurBlob && inv.Blobs[li.BlobMD5] == nil:
				g.rep.problem("dangling-link", path, "blob "+li.BlobMD5+" is missing; the next online load downloads it again")
			}
		}
	}
	for _, n := range inv.OddModels {
		if n.isLink() {
			g.rep.problem("outside-link", n.Path, "a symlinked model dir (to "+n.LinkText+"); never entered")
		}
	}
	sort.Slice(g.rep.Problems, func(i, j int) bool { return g.rep.Problems[i].Path < g.rep.Problems[j].Path })
}

// walkedTemp is a transient file found by a walk.
type walkedTemp struct {
	n     node
	kind  TempKind
	final string
	// dir is the directory relative to H; name the entry's name in it.
	dir  string
	name string
}

// base is the temp's name in its directory.
func (t walkedTemp) base() string {
	if t.name != "" {
		return t.name
	}
	return filepath.Base(t.n.Path)
}
