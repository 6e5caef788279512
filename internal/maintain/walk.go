package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/meta"
)

// scanPackages walks models-cache in parallel across model directories:
// only the given slugs when slugs is not nil.
func (m *Maintainer) scanPackages(ctx context.Context, inv *inventory, slugs []string) error {
	t := inv.t
	if err := t.unsafe[topModels]; err != nil {
		return nil // reported by the caller through t.problems
	}
	models := t.dir(topModels)
	if models == nil {
		return nil
	}
	var names []string
	if slugs == nil {
		ents, err := models.Entries()
		if err != nil {
			return err
		}
		for _, e := range ents {
			if !e.IsDir() {
				p := models.Join(e.Name)
				n := node{Path: p, Mode: e.Type}
				if id, err := models.Lstat(e.Name); err == nil {
					n = nodeOf(p, id)
				}
				if e.IsSymlink() {
					n.LinkText, _ = models.Readlink(e.Name)
				}
				inv.OddModels = append(inv.OddModels, n)
				continue
			}
			names = append(names, e.Name)
		}
	} else {
		names = slugs
	}
	sort.Strings(names)
	out := make([]*modelScan, len(names))
	var meta0 *fsx.Dir
	if d := t.dir(topMeta); d != nil {
		if lu, err := d.Sub(meta.LastUsedDir); err == nil {
			meta0 = lu
			defer lu.Close()
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	for i, name := range names {
		g.Go(func() error {
			ms, err := m.walkModel(gctx, inv, models, name, meta0)
			out[i] = ms
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	owners := inv.knownModelIDs()
	for _, ms := range out {
		if ms == nil {
			continue
		}
		inv.Models = append(inv.Models, ms)
		for _, ps := range ms.Packages {
			if ps.ModelID == "" {
				ps.ModelID = owners[ps.Slug]
			}
			inv.Packages = append(inv.Packages, ps)
			for _, md5 := range ps.Blobs {
				inv.Users[md5] = append(inv.Users[md5], ps)
			}
		}
	}
	return nil
}

var slugPattern = regexp.MustCompile(`^v2-[A-Za-z0-9_-]+-[0-9a-f]{32}$`)

// walkModel walks one model dir and its packages (nil when it is gone or
// is not a real directory: a symlinked model dir is never entered).
func (m *Maintainer) walkModel(ctx context.Context, inv *inventory, models *fsx.Dir, slug string, lastUsed *fsx.Dir) (*modelScan, error) {
	md, err := models.Sub(slug)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotDir) || errors.Is(err, fs.ErrInvalid) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer md.Close()
	self, err := md.Stat()
	if err != nil {
		return nil, err
	}
	ms := &modelScan{Slug: slug, Dir: md.Path(), Bytes: self.Size}
	seen := map[[2]uint64]bool{}
	count := func(n node) int64 {
		if n.Nlink > 1 && !n.Mode.IsDir() {
			k := [2]uint64{n.Dev, n.Ino}
			if seen[k] {
				return 0
			}
			seen[k] = true
		}
		return n.Size
	}
	ents, err := md.Entries()
	if err != nil {
		return nil, err
	}
	sort.SliceStable(ents, func(i, j int) bool { return strings.ToLower(ents[i].Name) < strings.ToLower(ents[j].Name) })
	var slugDir *fsx.Dir
	if lastUsed != nil {
		if d, err := lastUsed.Sub(slug); err == nil {
			slugDir = d
			defer d.Close()
		}
	}
	validSlug := slugPattern.MatchString(slug)
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !e.IsDir() {
			id, err := md.Lstat(e.Name)
			if err != nil {
				continue
			}
			n := nodeOf(md.Join(e.Name), id)
			ms.Bytes += count(n)
			if k, final := classifyTemp(e.Name); k != "" {
				ms.Temps = append(ms.Temps, walkedTemp{n: n, kind: k, final: final, dir: "models-cache/" + slug})
			}
			continue
		}
		pd, err := md.Sub(e.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ps := &pkgScan{PackageInfo: cache.PackageInfo{Slug: slug, PackageID: e.Name, Dir: pd.Path()},
			Rel: topModels + "/" + slug + "/" + e.Name, Links: map[string]linkInfo{}}
		ps.Valid = validSlug && layout.ValidatePackageID(e.Name) == nil
		err = m.walkPackage(ctx, inv, pd, ps, count)
		pd.Close()
		if err != nil {
			return nil, err
		}
		ms.Bytes += ps.DirBytes
		if slugDir != nil {
			if at, ok, _ := meta.StampTime(slugDir, e.Name); ok {
				ps.LastUsed = &at
			}
		}
		ms.Packages = append(ms.Packages, ps)
	}
	return ms, nil
}

// walkPackage reads one package dir: every node below it (links by their
// text, never followed), its manifest, its temps.
func (m *Maintainer) walkPackage(ctx context.Context, inv *inventory, pd *fsx.Dir, ps *pkgScan, count func(node) int64) error {
	self, err := pd.Stat()
	if err != nil {
		return err
	}
	root := nodeOf(pd.Path(), self)
	root.Rel = "."
	ps.Nodes = append(ps.Nodes, root)
	ps.DirBytes = self.Size
	blobs := map[string]bool{}
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
			r := e.Name
			if rel != "" {
				r = rel + "/" + e.Name
			}
			p := d.Join(e.Name)
			var n node
			switch {
			case e.IsSymlink():
				text, err := d.Readlink(e.Name)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return err
				}
				// A symlink's apparent size is its text's length.
				n = node{Path: p, Mode: fs.ModeSymlink | 0o777, Size: int64(len(text)), LinkText: text, Nlink: 1}
				li := inv.t.classifyLink(ps.Rel+dirSuffix(rel), text)
				ps.Links[r] = li
				if li.OurBlob {
					blobs[li.BlobMD5] = true
				}
				if k, _ := classifyTemp(e.Name); k == TempLink {
					if id, err := d.Lstat(e.Name); err == nil {
						n = nodeOf(p, id)
						n.LinkText = text
						ps.Temps = append(ps.Temps, walkedTemp{n: n, kind: k, final: strings.TrimSuffix(e.Name, ""), dir: ps.Rel + dirSuffix(rel)})
					}
				}
			case e.IsDir():
				sub, err := d.Sub(e.Name)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return err
				}
				id, err := sub.Stat()
				if err == nil {
					n = nodeOf(p, id)
					n.Rel = r
					ps.Nodes = append(ps.Nodes, n)
					ps.DirBytes += count(n)
					err = walk(sub, r)
				}
				sub.Close()
				if err != nil {
					return err
				}
				continue
			default:
				if e.Name == layout.ManifestFile && rel == "" {
					data, id, err := d.ReadFile(e.Name, maxEntryFile)
					if err == nil {
						n = nodeOf(p, id)
						ps.parseManifest(data)
						break
					}
					if !errors.Is(err, fs.ErrNotExist) {
						var ue *fsx.UnsafePathError
						if !errors.As(err, &ue) {
							ps.State, ps.Err = cache.StateBroken, err
						}
					}
				}
				if k, _ := classifyTemp(e.Name); inv.noSizes && k == "" && e.Type != unknownMode {
					// The type from getdents is enough here.
					n = node{Path: p, Mode: e.Type, Nlink: 1}
					break
				}
				id, err := d.Lstat(e.Name)
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				if err != nil {
					return err
				}
				n = nodeOf(p, id)
			}
			n.Rel = r
			ps.Nodes = append(ps.Nodes, n)
			ps.DirBytes += count(n)
			if !n.isLink() {
				if k, final := classifyTemp(e.Name); k != "" {
					ps.Temps = append(ps.Temps, walkedTemp{n: n, kind: k, final: final, dir: ps.Rel + dirSuffix(rel)})
				}
			}
		}
		return nil
	}
	if err := walk(pd, ""); err != nil {
		return fmt.Errorf("walk package %s: %w", ps.Dir, err)
	}
	if ps.State == "" {
		ps.State = cache.StatePartial
	}
	for md5 := range blobs {
		ps.Blobs = append(ps.Blobs, md5)
	}
	sort.Strings(ps.Blobs)
	return nil
}

// unknownMode never matches a getdents type (fsx resolves unknown types).
const unknownMode fs.FileMode = fs.ModeIrregular | fs.ModeTemporary

func dirSuffix(rel string) string {
	if rel == "" {
		return ""
	}
	return "/" + rel
}

// parseManifest sets State and Manifest from the manifest's bytes.
func (ps *pkgScan) parseManifest(data []byte) {
	mf, err := manifest.Parse(data)
	switch {
	case err != nil:
		ps.State, ps.Err = cache.StateBroken, err
	case mf.Complete():
		ps.State, ps.Manifest = cache.StateComplete, mf
	default:
		ps.State, ps.Manifest = cache.StatePartial, mf
	}
	if mf != nil {
		// The document tree is not used here (its content hash is kept):
		// 10,000 of them would hold hundreds of MB.
		mf.Doc, mf.ModelFeatures, mf.RecommendedParameters = nil, nil, nil
	}
	if ps.Manifest != nil && ps.Manifest.ModelID != nil {
		ps.ModelID = *ps.Manifest.ModelID
	}
}
