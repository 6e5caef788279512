package maintain

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// scanModel builds the inventory `show` needs for one model id, touching
// only what that needs: the model's dirs (and those of packages an offline
// record files under the id) in full; of every other package only its links
// (readlinkat, for the blob reference counts of shared bytes); only the
// blobs these packages use (fstatat each); only the entries whose bytes
// name the id (the rest are read but not parsed); the records.
func (m *Maintainer) scanModel(ctx context.Context, modelID string) (*inventory, error) {
	slug, err := layout.Slug(modelID)
	if err != nil {
		return nil, err
	}
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	inv := &inventory{t: t, Home: m.home, RealHome: t.realRoot, Blobs: map[string]*blobScan{},
		Users: map[string][]*pkgScan{}, RecordMD5s: map[string]bool{}}
	fail := func(err error) (*inventory, error) { t.close(); return nil, err }
	if err := m.scanRecords(ctx, inv); err != nil {
		return fail(err)
	}
	needles := [][]byte{[]byte(`"` + modelID + `"`)}
	if enc, err := pyjson.Marshal(modelID); err == nil && !bytes.Equal(enc, needles[0]) {
		needles = append(needles, enc)
	}
	err = m.scanEntries(ctx, inv, func(data []byte) bool {
		for _, n := range needles {
			if bytes.Contains(data, n) {
				return true
			}
		}
		return false
	})
	if err != nil {
		return fail(err)
	}
	slugs := map[string]bool{slug: true}
	for _, r := range inv.recordsNaming(modelID) {
		for _, rp := range r.Packages {
			if s, err := layout.Slug(rp.Owner); err == nil {
				slugs[s] = true
			}
		}
	}
	names := make([]string, 0, len(slugs))
	for s := range slugs {
		names = append(names, s)
	}
	if err := m.scanPackages(ctx, inv, names); err != nil {
		return fail(err)
	}
	if err := m.countUsers(ctx, inv, slugs); err != nil {
		return fail(err)
	}
	if err := m.statBlobs(inv, nil); err != nil {
		return fail(err)
	}
	inv.recordPresence()
	return inv, nil
}

// countUsers adds to inv.Users the packages of every model dir not in skip,
// reading only their links.
func (m *Maintainer) countUsers(ctx context.Context, inv *inventory, skip map[string]bool) error {
	models := inv.t.dir(topModels)
	if models == nil {
		return nil
	}
	ents, err := models.Entries()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	for _, e := range ents {
		if !e.IsDir() || skip[e.Name] {
			continue
		}
		g.Go(func() error {
			pkgs, err := m.linksOf(gctx, inv.t, models, e.Name, nil)
			if err != nil {
				return err
			}
			mu.Lock()
			for _, p := range pkgs {
				for _, md5 := range p.Blobs {
					inv.Users[md5] = append(inv.Users[md5], p)
				}
			}
			mu.Unlock()
			return nil
		})
	}
	return g.Wait()
}

// linksOf walks one model dir for its packages' links only (blob links and
// dependency links). With candidates it also reads each manifest and notes
// which candidate md5s its bytes mention (conservative marks, no parse).
func (m *Maintainer) linksOf(ctx context.Context, t *tree, models *fsx.Dir, slug string, candidates map[string]bool) ([]*pkgScan, error) {
	md, err := models.Sub(slug)
	if err != nil {
		return nil, nil // gone, or not a real dir: never entered
	}
	defer md.Close()
	ents, err := md.Entries()
	if err != nil {
		return nil, err
	}
	var out []*pkgScan
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		pd, err := md.Sub(e.Name)
		if err != nil {
			continue
		}
		ps := &pkgScan{Rel: topModels + "/" + slug + "/" + e.Name, Links: map[string]linkInfo{}}
		ps.Slug, ps.PackageID, ps.Dir = slug, e.Name, pd.Path()
		blobs := map[string]bool{}
		if candidates != nil {
			if data, _, err := pd.ReadFile(layout.ManifestFile, maxEntryFile); err == nil {
				for md5 := range candidates {
					if bytes.Contains(data, []byte(md5)) {
						ps.MarkMD5s = append(ps.MarkMD5s, md5)
					}
				}
			}
		}
		var walk func(d *fsx.Dir, rel string) error
		walk = func(d *fsx.Dir, rel string) error {
			ents, err := d.Entries()
			if err != nil {
				return err
			}
			for _, e := range ents {
				if err := ctx.Err(); err != nil {
					return err
				}
				switch {
				case e.IsSymlink():
					text, err := d.Readlink(e.Name)
					if err != nil {
						continue
					}
					li := t.classifyLink(ps.Rel+dirSuffix(rel), text)
					if li.OurBlob {
						blobs[li.BlobMD5] = true
					}
					if li.BlobMD5 != "" {
						ps.MarkMD5s = append(ps.MarkMD5s, li.BlobMD5)
					}
					if rel == layout.DependenciesDir {
						ps.Links[rel+"/"+e.Name] = li
					}
				case e.IsDir():
					sub, err := d.Sub(e.Name)
					if err != nil {
						continue
					}
					r := e.Name
					if rel != "" {
						r = rel + "/" + e.Name
					}
					err = walk(sub, r)
					sub.Close()
					if err != nil {
						return err
					}
				}
			}
			return nil
		}
		err = walk(pd, "")
		pd.Close()
		if err != nil {
			return nil, err
		}
		for md5 := range blobs {
			ps.Blobs = append(ps.Blobs, md5)
		}
		sort.Strings(ps.Blobs)
		out = append(out, ps)
	}
	return out, nil
}

// statBlobs fills inv.Blobs for the blobs the walked packages link to or
// declare, and extra (fstatat each in shared-blobs, in parallel; the
// directory is not listed).
func (m *Maintainer) statBlobs(inv *inventory, extra []string) error {
	if err := inv.t.unsafe[topBlobs]; err != nil {
		inv.BlobsErr = err
		return nil
	}
	d := inv.t.dir(topBlobs)
	if d == nil {
		return nil
	}
	want := map[string]bool{}
	for _, md5 := range extra {
		want[md5] = true
	}
	for _, p := range inv.Packages {
		for _, md5 := range p.Blobs {
			want[md5] = true
		}
		if p.Manifest != nil {
			for _, a := range p.Manifest.PackageArtifacts {
				if a.MD5Hash != nil && md5NameRE.MatchString(*a.MD5Hash) {
					want[*a.MD5Hash] = true
				}
			}
		}
	}
	list := make([]string, 0, len(want))
	for md5 := range want {
		list = append(list, md5)
	}
	var mu sync.Mutex
	g := new(errgroup.Group)
	g.SetLimit(m.workers())
	const chunk = 512
	for lo := 0; lo < len(list); lo += chunk {
		hi := min(lo+chunk, len(list))
		g.Go(func() error {
			for _, md5 := range list[lo:hi] {
				id, err := d.Lstat(md5)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return err
				}
				if id.IsRegular() {
					n := nodeOf(d.Join(md5), id)
					mu.Lock()
					inv.Blobs[md5] = &blobScan{MD5: md5, Path: n.Path, Size: id.Size, ModTime: n.ModTime, node: n}
					mu.Unlock()
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// scanForList builds what ls needs: every package in full, the blobs they
// use (fstatat each, shared-blobs is not listed), and entries and records
// only when a package has no manifest to name its model.
func (m *Maintainer) scanForList(ctx context.Context) (*inventory, error) {
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	inv := &inventory{t: t, Home: m.home, RealHome: t.realRoot, Blobs: map[string]*blobScan{},
		Users: map[string][]*pkgScan{}, RecordMD5s: map[string]bool{}, partial: true}
	fail := func(err error) (*inventory, error) { t.close(); return nil, err }
	if err := m.scanPackages(ctx, inv, nil); err != nil {
		return fail(err)
	}
	unnamed := false
	for _, p := range inv.Packages {
		unnamed = unnamed || (p.Valid && p.ModelID == "")
	}
	if unnamed {
		if err := m.scanRecords(ctx, inv); err != nil {
			return fail(err)
		}
		if err := m.scanEntries(ctx, inv, nil); err != nil {
			return fail(err)
		}
		owners := inv.knownModelIDs()
		for _, p := range inv.Packages {
			if p.ModelID == "" {
				p.ModelID = owners[p.Slug]
			}
		}
	}
	if err := m.statBlobs(inv, nil); err != nil {
		return fail(err)
	}
	return inv, nil
}

// scanForPurge builds the inventory a purge of model ids needs, touching
// only: the records; the models' dirs (and those of packages a record files
// under an id) in full; of every other package its links and the candidate
// md5s its manifest mentions; the entries whose bytes name an id, a package
// that goes or a candidate blob; the leases; the candidate blobs.
func (m *Maintainer) scanForPurge(ctx context.Context, ids, extra []string) (*inventory, error) {
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	inv := &inventory{t: t, Home: m.home, RealHome: t.realRoot, Blobs: map[string]*blobScan{},
		Users: map[string][]*pkgScan{}, RecordMD5s: map[string]bool{}, partial: true}
	fail := func(err error) (*inventory, error) { t.close(); return nil, err }
	if err := m.scanRecords(ctx, inv); err != nil {
		return fail(err)
	}
	if err := m.scanLeases(ctx, inv); err != nil {
		return fail(err)
	}
	slugs := map[string]bool{}
	for _, id := range ids {
		s, err := layout.Slug(id)
		if err != nil {
			return fail(err)
		}
		slugs[s] = true
		for _, r := range inv.recordsNaming(id) {
			for _, rp := range r.Packages {
				if s, err := layout.Slug(rp.Owner); err == nil {
					slugs[s] = true
				}
			}
		}
	}
	names := make([]string, 0, len(slugs))
	for s := range slugs {
		names = append(names, s)
	}
	if err := m.scanPackages(ctx, inv, names); err != nil {
		return fail(err)
	}
	candidates := map[string]bool{}
	for _, md5 := range extra {
		candidates[md5] = true
	}
	var needles [][]byte
	for _, p := range inv.Packages {
		for _, md5 := range p.Blobs {
			candidates[md5] = true
		}
		if p.Manifest != nil {
			for _, a := range p.Manifest.PackageArtifacts {
				if a.MD5Hash != nil && md5NameRE.MatchString(*a.MD5Hash) {
					candidates[*a.MD5Hash] = true
				}
			}
		}
		needles = append(needles, []byte(`"`+p.PackageID+`"`))
	}
	for md5 := range candidates {
		needles = append(needles, []byte(md5))
	}
	for _, id := range ids {
		needles = append(needles, []byte(`"`+id+`"`))
		if enc, err := pyjson.Marshal(id); err == nil {
			needles = append(needles, enc)
		}
	}
	if err := m.scanEntries(ctx, inv, func(data []byte) bool {
		for _, n := range needles {
			if bytes.Contains(data, n) {
				return true
			}
		}
		return false
	}); err != nil {
		return fail(err)
	}
	// Other packages: their links and manifests, for marks and dependents.
	if models := t.dir(topModels); models != nil {
		ents, err := models.Entries()
		if err != nil {
			return fail(err)
		}
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(m.workers())
		for _, e := range ents {
			if !e.IsDir() || slugs[e.Name] {
				continue
			}
			g.Go(func() error {
				pkgs, err := m.linksOf(gctx, t, models, e.Name, candidates)
				mu.Lock()
				inv.Others = append(inv.Others, pkgs...)
				mu.Unlock()
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return fail(err)
		}
	}
	// The candidate blobs as shared-blobs entries (the GC pass sweeps those).
	if err := m.statBlobs(inv, extra); err != nil {
		return fail(err)
	}
	for md5, b := range inv.Blobs {
		inv.SBEntries = append(inv.SBEntries, sbEntry{Name: md5, Kind: blobfs.KindBlob, MD5: md5, node: b.node})
	}
	sort.Slice(inv.SBEntries, func(i, j int) bool { return inv.SBEntries[i].Name < inv.SBEntries[j].Name })
	inv.recordPresence()
	return inv, nil
}
