package maintain

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/meta"
)

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
