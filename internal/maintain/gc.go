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

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
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
// partials, expired auto-resolution entries, expired leases and stale stamps.
// Dangling links and symlinks planted in the cache are reported, not touched.
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
	g := &gcRun{m: m, opts: opts, now: m.now(), rep: rep}
	if err := g.run(ctx, nil); err != nil {
		return rep, err
	}
	return rep, nil
}

// lockGC takes H/.meta/gc.lock (creating .meta, never through a symlink).
func (m *Maintainer) lockGC(ctx context.Context) (*lock.Held, error) {
	if _, err := ensureMetaDir(m.home); err != nil {
		return nil, fmt.Errorf("gc lock: %w", err)
	}
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
}

// exclusions let a dry-run purge compute its GC pass as if its packages,
// entries and record packages were already gone.
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

// run is one mark-and-sweep pass. freed, when set (purge), are blobs the
// caller just orphaned: they are swept without the grace period.
func (g *gcRun) run(ctx context.Context, freed map[string]bool) error {
	m := g.m
	inv, err := m.scan(ctx)
	if err != nil {
		return err
	}
	// Expired entries go first so that they no longer protect anything.
	if err := g.sweepEntries(ctx, inv); err != nil {
		return err
	}
	if !g.opts.DryRun {
		if inv, err = m.scan(ctx); err != nil {
			return err
		}
	}
	mw, err := g.walkModels(ctx, inv)
	if err != nil {
		return err
	}
	marks := g.mark(inv, mw)
	g.rep.MarkedBlobs = 0
	for md5 := range marks {
		if inv.Blobs[md5] != nil {
			g.rep.MarkedBlobs++
		}
	}
	if err := g.sweepBlobs(ctx, inv, marks, freed); err != nil {
		return err
	}
	if err := g.sweepTemps(ctx, inv, mw); err != nil {
		return err
	}
	if err := g.sweepMeta(ctx, inv); err != nil {
		return err
	}
	g.reportLinks(inv, mw)
	return nil
}

// modelsWalk is what one walk of models-cache found.
type modelsWalk struct {
	// links: every symlink below models-cache.
	links []walkedLink
	// manifestMD5s: every MD5 of every parseable manifest.
	manifestMD5s map[string]bool
	// temps: transient files, with the package dir they are in ("" outside).
	temps []walkedTemp
	// declared: "<package dir>/<handle>" of parseable manifests.
	declared map[string]bool
}

type walkedLink struct {
	path string
	text string
	info linkInfo
}

type walkedTemp struct {
	n     node
	kind  TempKind
	final string
}

// walkModels walks all of models-cache (legacy and oddly named dirs too:
// marking must be conservative). A symlinked models-cache is walked for
// marks only; nothing is deleted through it.
func (g *gcRun) walkModels(ctx context.Context, inv *inventory) (*modelsWalk, error) {
	mw := &modelsWalk{manifestMD5s: map[string]bool{}, declared: map[string]bool{}}
	root := g.m.home.ModelsCache()
	fi, err := os.Lstat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return mw, nil
	}
	if err != nil {
		return nil, err
	}
	linked := fi.Mode()&fs.ModeSymlink != 0
	if linked {
		g.rep.problem("unsafe-dir", root, "models-cache is a symlink: walked for marks only, nothing below it is removed")
	}
	walkRoot := root
	if linked {
		walkRoot = root + "/"
	}
	err = filepath.WalkDir(walkRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if g.ex.pkgDir(p) {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n := nodeOf(p, fi)
		name := d.Name()
		switch {
		case n.isLink():
			mw.links = append(mw.links, walkedLink{path: p, text: n.LinkText, info: inv.resolveLink(p, n.LinkText)})
		case name == layout.ManifestFile && n.isRegular():
			data, err := readNoFollow(p, maxEntryFile)
			if err != nil {
				return nil
			}
			mf, err := manifest.Parse(data)
			if err != nil {
				return nil // its links protect its blobs (§12 step 1)
			}
			for _, a := range mf.PackageArtifacts {
				if a.MD5Hash != nil {
					mw.manifestMD5s[*a.MD5Hash] = true
				}
				mw.declared[filepath.Join(filepath.Dir(p), a.FileHandle)] = true
			}
		}
		if k, final := classifyTemp(name); k != "" && !linked {
			mw.temps = append(mw.temps, walkedTemp{n: n, kind: k, final: final})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("walk %s: %w", root, err)
	}
	return mw, nil
}

// mark returns every blob md5 something still names, with the first reason.
func (g *gcRun) mark(inv *inventory, mw *modelsWalk) map[string]string {
	marks := map[string]string{}
	set := func(md5, why string) {
		if _, ok := marks[md5]; !ok {
			marks[md5] = why
		}
	}
	for md5 := range mw.manifestMD5s {
		set(md5, "manifest")
	}
	for _, l := range mw.links {
		if l.info.BlobMD5 != "" {
			set(l.info.BlobMD5, "package link")
		}
	}
	for _, e := range inv.Entries {
		if e.Entry != nil && !e.Expired && !g.ex.entry(e.Path) {
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

// sweepBlobs removes unmarked blobs: older than the grace period, or in
// freed (just orphaned by purge), and only while their lock is free.
func (g *gcRun) sweepBlobs(ctx context.Context, inv *inventory, marks map[string]string, freed map[string]bool) error {
	if inv.BlobsErr != nil {
		g.rep.problem("unsafe-dir", g.m.home.SharedBlobs(), inv.BlobsErr.Error())
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
		if !freed[se.MD5] && g.age(se.node.ModTime) < g.opts.Grace {
			g.rep.skip("blob", se.node.Path, se.node.Size, "younger than the grace period")
			continue
		}
		if g.opts.DryRun {
			g.rep.removed(Item{Kind: "blob", Path: se.node.Path, Bytes: se.node.Size})
			continue
		}
		if err := g.removeBlob(ctx, se); err != nil {
			return err
		}
	}
	return nil
}

// removeBlob deletes one blob while holding its lock, after checking it is
// still the file that was judged.
func (g *gcRun) removeBlob(ctx context.Context, se sbEntry) error {
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
	id, err := fsx.LstatID(se.node.Path)
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
	if err := os.Remove(se.node.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove blob %s: %w", se.node.Path, err)
	}
	g.rep.removed(Item{Kind: "blob", Path: se.node.Path, Bytes: se.node.Size})
	// The blob's verified stamp goes with it, and counts in what was reclaimed.
	var stampBytes int64 = -1
	if sp, err := VerifiedStampPath(m.home, se.MD5); err == nil {
		if fi, err := os.Lstat(sp); err == nil && fi.Mode().IsRegular() {
			stampBytes = fi.Size()
		}
	}
	if err := RemoveVerifiedStamp(m.home, se.MD5); err != nil {
		m.log.Warn("removing verified stamp failed", "md5", se.MD5, "err", err)
	} else if stampBytes >= 0 {
		sp, _ := VerifiedStampPath(m.home, se.MD5)
		g.rep.removed(Item{Kind: "verified-stamp", Path: sp, Bytes: stampBytes})
	}
	return nil
}

// sweepEntries removes expired and invalid auto-resolution entries, each
// through autoresolve's own retrieve (under the entry lock, re-checked
// there), as a reference candidate scan would.
func (g *gcRun) sweepEntries(ctx context.Context, inv *inventory) error {
	if inv.EntryErr != nil {
		g.rep.problem("unsafe-dir", g.m.home.AutoResolutionCache(), inv.EntryErr.Error())
		return nil
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
			continue
		}
		if _, _, err := g.m.c.Resolutions.Retrieve(ctx, e.Key); err != nil {
			g.rep.skip("entry", e.Path, e.node.Size, err.Error())
			continue
		}
		if _, err := os.Lstat(e.Path); errors.Is(err, fs.ErrNotExist) {
			g.rep.removed(Item{Kind: "entry", Path: e.Path, Bytes: e.node.Size})
		} else {
			g.rep.skip("entry", e.Path, e.node.Size, "still valid when re-read under its lock")
		}
	}
	return nil
}

// sweepTemps removes stale transient files everywhere under H.
func (g *gcRun) sweepTemps(ctx context.Context, inv *inventory, mw *modelsWalk) error {
	var cands []walkedTemp
	// shared-blobs: blobstore's names.
	if inv.BlobsErr == nil {
		for _, se := range inv.SBEntries {
			if k := blobTempKind(se.Kind); k != "" {
				final := se.MD5
				cands = append(cands, walkedTemp{n: se.node, kind: k, final: final})
			}
		}
	}
	for _, t := range mw.temps {
		if t.kind == TempReference && mw.declared[t.n.Path] {
			continue // a declared handle that merely looks like a temp
		}
		cands = append(cands, t)
	}
	for _, dir := range []string{g.m.home.AutoResolutionCache(), g.m.home.OfflineRegistry()} {
		ts, err := flatTemps(dir)
		if err != nil {
			g.rep.problem("unsafe-dir", dir, err.Error())
			continue
		}
		cands = append(cands, ts...)
	}
	metaTemps, err := g.metaTemps(ctx)
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
				jdata, _ = readNoFollow(j.n.Path, maxMetaFile)
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
				if p, err := os.Lstat(partial); err == nil {
					group = append(group, walkedTemp{n: nodeOf(partial, p), kind: TempPartial, final: c.final})
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
			if err := g.removeTemps(ctx, group); err != nil {
				return err
			}
		case TempCorrupt:
			// Known-bad bytes moved aside: no grace needed.
			handled[c.n.Path] = true
			if err := g.removeTemps(ctx, []walkedTemp{c}); err != nil {
				return err
			}
		default:
			handled[c.n.Path] = true
			if g.age(c.n.ModTime) < g.opts.Grace {
				g.rep.skip(string(c.kind), c.n.Path, c.n.Size, "younger than the grace period")
				continue
			}
			if err := g.removeTemps(ctx, []walkedTemp{c}); err != nil {
				return err
			}
		}
	}
	return nil
}

// flatTemps lists transient names in a flat metadata dir (never through a
// symlinked dir).
func flatTemps(dir string) ([]walkedTemp, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, &fsx.UnsafePathError{Op: "sweep", Path: dir, Kind: kindOf(fi)}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []walkedTemp
	for _, e := range ents {
		k, final := classifyTemp(e.Name())
		if k == "" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil {
			continue
		}
		out = append(out, walkedTemp{n: nodeOf(p, fi), kind: k, final: final})
	}
	return out, nil
}

func (g *gcRun) metaTemps(ctx context.Context) ([]walkedTemp, error) {
	dir, err := metaDirNoFollow(g.m.home)
	if err != nil {
		g.rep.problem("unsafe-dir", g.m.home.Meta(), err.Error())
		return nil, nil
	}
	if dir == "" {
		return nil, nil
	}
	var out []walkedTemp
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		k, final := classifyTemp(d.Name())
		if k == "" {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		out = append(out, walkedTemp{n: nodeOf(p, fi), kind: k, final: final})
		return nil
	})
	return out, err
}

// removeTemps deletes a group of transient files (a partial and its
// journal) while the lock of their final name is free. Only regular files
// and, for link temps, the symlink itself are removed.
func (g *gcRun) removeTemps(ctx context.Context, group []walkedTemp) error {
	if g.opts.DryRun {
		for _, t := range group {
			g.rep.removed(Item{Kind: string(t.kind), Path: t.n.Path, Bytes: t.n.Size})
		}
		return nil
	}
	first := group[0]
	lockPath := filepath.Join(filepath.Dir(first.n.Path), "."+first.final+".lock")
	if first.final == "" || strings.HasPrefix(first.final, ".") {
		lockPath = "" // a temp of a dotfile (e.g. a journal's temp): judged by age only
	}
	if filepath.Dir(first.n.Path) == g.m.home.SharedBlobs() && md5NameRE.MatchString(first.final) {
		lockPath, _ = g.m.c.Blobs.LockPath(first.final)
	}
	if lockPath != "" {
		fi, err := os.Lstat(lockPath)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Nobody has locked it: writers lock before they create temps.
		case err != nil:
			return err
		case !fi.Mode().IsRegular():
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
		fi, err := os.Lstat(t.n.Path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		isLinkTemp := t.kind == TempLink && fi.Mode()&fs.ModeSymlink != 0
		if !fi.Mode().IsRegular() && !isLinkTemp {
			g.rep.skip(string(t.kind), t.n.Path, t.n.Size, "not a regular file")
			continue
		}
		if err := os.Remove(t.n.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", t.n.Path, err)
		}
		g.rep.removed(Item{Kind: string(t.kind), Path: t.n.Path, Bytes: fi.Size()})
	}
	return nil
}

// sweepMeta removes expired leases, last-used stamps of packages that are
// gone and verified stamps of blobs that are gone (all older than grace).
func (g *gcRun) sweepMeta(ctx context.Context, inv *inventory) error {
	for _, p := range inv.BadLeases {
		g.rep.problem("unreadable-lease", p, "not a lease document; it protects nothing")
	}
	for i := range inv.Leases {
		l := &inv.Leases[i]
		if !l.Expired(g.now) {
			continue
		}
		if err := g.removeMeta(l.Path, "lease"); err != nil {
			return err
		}
	}
	pkgs := map[string]bool{}
	for _, p := range inv.Packages {
		if !g.ex.pkgDir(p.Dir) {
			pkgs[p.Slug+"/"+p.PackageID] = true
		}
	}
	if dir, err := metaDirNoFollow(g.m.home, lastUsedDir); err == nil && dir != "" {
		slugs, _ := os.ReadDir(dir)
		for _, s := range slugs {
			if !s.IsDir() {
				continue
			}
			files, _ := os.ReadDir(filepath.Join(dir, s.Name()))
			for _, f := range files {
				if err := ctx.Err(); err != nil {
					return err
				}
				if k, _ := classifyTemp(f.Name()); k != "" || pkgs[s.Name()+"/"+f.Name()] {
					continue
				}
				// The package may be materializing right now without a dir
				// visible to the scan yet: the model dir must be gone too, or
				// the package dir, checked again here.
				if _, err := os.Lstat(filepath.Join(g.m.home.ModelsCache(), s.Name(), f.Name())); err == nil {
					continue
				}
				if err := g.removeMeta(filepath.Join(dir, s.Name(), f.Name()), "last-used"); err != nil {
					return err
				}
			}
		}
	}
	if dir, err := metaDirNoFollow(g.m.home, verifiedDir); err == nil && dir != "" {
		files, _ := os.ReadDir(dir)
		for _, f := range files {
			if !md5NameRE.MatchString(f.Name()) || inv.Blobs[f.Name()] != nil {
				continue
			}
			if _, err := os.Lstat(filepath.Join(g.m.home.SharedBlobs(), f.Name())); err == nil {
				continue
			}
			if err := g.removeMeta(filepath.Join(dir, f.Name()), "verified-stamp"); err != nil {
				return err
			}
		}
	}
	return nil
}

func (g *gcRun) removeMeta(p, kind string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil
	}
	if !fi.Mode().IsRegular() {
		g.rep.problem("unsafe-meta", p, "not a regular file; left alone")
		return nil
	}
	if g.age(fi.ModTime()) < g.opts.Grace {
		return nil
	}
	if !g.opts.DryRun {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	g.rep.removed(Item{Kind: kind, Path: p, Bytes: fi.Size()})
	return nil
}

// reportLinks reports links that dangle or lead out of the cache.
func (g *gcRun) reportLinks(inv *inventory, mw *modelsWalk) {
	gone := map[string]bool{}
	if !g.opts.DryRun {
		for _, it := range g.rep.Removed {
			if it.Kind == "blob" {
				gone[filepath.Base(it.Path)] = true
			}
		}
	}
	for _, l := range mw.links {
		switch {
		case !l.info.Inside:
			g.rep.problem("outside-link", l.path, "symlink to "+l.text+" leads outside the cache; never followed")
		case l.info.OurBlob && (inv.Blobs[l.info.BlobMD5] == nil || gone[l.info.BlobMD5]):
			g.rep.problem("dangling-link", l.path, "blob "+l.info.BlobMD5+" is missing; the next online load downloads it again")
		}
	}
	sort.Slice(g.rep.Problems, func(i, j int) bool { return g.rep.Problems[i].Path < g.rep.Problems[j].Path })
}
