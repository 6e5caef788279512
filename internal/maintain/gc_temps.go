package maintain

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
)

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
