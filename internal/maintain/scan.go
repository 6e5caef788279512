package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// TempKind names a transient file left by a writer (on-disk contract §2).
type TempKind string

// Transient kinds.
const (
	TempAtomic    TempKind = "atomic-temp"    // .<final>.<rand8>.tmp (JSON writers, both implementations)
	TempReference TempKind = "reference-temp" // <final>.<uuid4> (reference downloader)
	TempPartial   TempKind = "partial"        // .<final>.partial-<16 hex> (ours)
	TempJournal   TempKind = "journal"        // .<final>.partial-<16 hex>.json (ours)
	TempCorrupt   TempKind = "corrupt"        // .<md5>.corrupt-<16 hex>: a bad blob moved aside
	TempLink      TempKind = "link-temp"      // .<final>.link-<16 hex>: a symlink about to be renamed over
)

var (
	partialNameRE = regexp.MustCompile(`^\.(.+)\.partial-[0-9a-f]{16}(\.json)?$`)
	corruptNameRE = regexp.MustCompile(`^\.(.+)\.corrupt-[0-9a-f]{16}$`)
	linkTempRE    = regexp.MustCompile(`^\.(.+)\.link-[0-9a-f]{16}$`)
	// Python's uuid4(): version nibble 4, variant 8-b.
	refTempRE  = regexp.MustCompile(`^(.+)\.[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	entryRE    = regexp.MustCompile(`^[A-Za-z0-9_-]+\.json$`)
	md5NameRE  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	lockNameRE = regexp.MustCompile(`^\..+\.lock$`)
)

// classifyTemp recognises a transient name outside shared-blobs and returns
// the final name it belongs to.
func classifyTemp(name string) (TempKind, string) {
	if final, ok := fsx.ParseAtomicTempName(name); ok {
		return TempAtomic, final
	}
	if m := partialNameRE.FindStringSubmatch(name); m != nil {
		if m[2] != "" {
			return TempJournal, m[1]
		}
		return TempPartial, m[1]
	}
	if m := corruptNameRE.FindStringSubmatch(name); m != nil {
		return TempCorrupt, m[1]
	}
	if m := linkTempRE.FindStringSubmatch(name); m != nil {
		return TempLink, m[1]
	}
	if m := refTempRE.FindStringSubmatch(name); m != nil {
		return TempReference, m[1]
	}
	return "", ""
}

// blobTempKind maps blobstore's classification of a shared-blobs name.
func blobTempKind(k blobfs.Kind) TempKind {
	switch k {
	case blobfs.KindPartial:
		return TempPartial
	case blobfs.KindJournal:
		return TempJournal
	case blobfs.KindCorrupt:
		return TempCorrupt
	case blobfs.KindReferenceTemp:
		return TempReference
	case blobfs.KindAtomicTemp:
		return TempAtomic
	}
	return ""
}

// node is one directory entry as fstatat (or, for links, readlinkat) saw it.
type node struct {
	// Path as reached from H (for reports); Rel is relative to the package
	// dir for package nodes.
	Path     string
	Rel      string
	Mode     fs.FileMode
	Size     int64
	ModTime  time.Time
	Dev, Ino uint64
	Nlink    uint64
	HasIno   bool
	LinkText string
}

func nodeOf(path string, id fsx.FileID) node {
	return node{Path: path, Mode: id.Mode, Size: id.Size, ModTime: time.Unix(0, id.MtimeNS),
		Dev: id.Dev, Ino: id.Ino, Nlink: id.Nlink, HasIno: id.Ino != 0}
}

func (n node) isLink() bool    { return n.Mode&fs.ModeSymlink != 0 }
func (n node) isRegular() bool { return n.Mode.IsRegular() }

// pkgScan is one package dir with everything in it.
type pkgScan struct {
	cache.PackageInfo
	// Rel is the package dir relative to H (models-cache/<slug>/<id>).
	Rel string
	// Valid: a v2 slug and a valid package id (others are only marked from).
	Valid bool
	// ModelID is the cache owner: the manifest's model_id, else inferred
	// from entries and records, else "".
	ModelID string
	Nodes   []node // the dir itself first
	// DirBytes is du -sb of the package dir (each inode once).
	DirBytes int64
	// Links maps the rel path of each symlink to where it leads.
	Links map[string]linkInfo
	// Blobs are the distinct blobs of this cache its links lead to.
	Blobs    []string
	LastUsed *time.Time
	// Temps are transient files in the package (with their dirs' rel).
	Temps []walkedTemp
	// MarkMD5s (links-only scans): md5s its links name lexically or its
	// manifest mentions, for conservative marks.
	MarkMD5s []string
}

// modelScan is one directory of models-cache.
type modelScan struct {
	Slug string
	Dir  string
	// Bytes is du -sb of the model dir.
	Bytes    int64
	Packages []*pkgScan
	// Temps: transient files directly in the model dir.
	Temps []walkedTemp
}

// blobScan is one regular blob file.
type blobScan struct {
	MD5     string
	Path    string
	Size    int64
	ModTime time.Time
	node    node
}

// sbEntry is any entry of shared-blobs.
type sbEntry struct {
	Name string
	Kind blobfs.Kind
	MD5  string
	node node
}

// entryScan is one auto-resolution entry read without a lock and without
// deleting anything.
type entryScan struct {
	Key     string
	Path    string
	node    node
	Entry   *autoresolve.Entry
	Err     error
	Expired bool
}

// recordScan is one offline-weights record.
type recordScan struct {
	Record *offlinereg.Record
	Status *offlinereg.ModelStatus
	// Packages are the recorded packages (parsable ones).
	Packages []recordPackage
	node     node
}

type recordPackage struct {
	PackageID string
	// Owner is the model id naming the package dir: cache_model_id, else the
	// record's canonical id.
	Owner string
	MD5s  []string
}

// inventory is a read-only snapshot of H.
type inventory struct {
	t        *tree
	Home     layout.Home
	RealHome string
	Models   []*modelScan
	Packages []*pkgScan
	// OddModels are entries of models-cache that are not directories.
	OddModels []node
	// BlobsErr is set when shared-blobs cannot be listed safely (a symlink).
	BlobsErr  error
	SBEntries []sbEntry
	Blobs     map[string]*blobScan
	Entries   []*entryScan
	EntryErr  error
	Records   []*recordScan
	// RecordMD5s: every quoted md5 in any record file, parsable or not
	// (conservative marks).
	RecordMD5s map[string]bool
	RecordErr  error
	Leases     []meta.Lease
	BadLeases  []string
	LeaseErr   error
	// Users counts, per blob md5, the packages linking to it.
	Users map[string][]*pkgScan
	// Others: packages of a targeted scan read for their links only.
	Others []*pkgScan
	// partial: a targeted scan (only some models walked in full, only the
	// candidate blobs known): its GC pass sweeps those blobs and nothing else.
	partial bool
}

// workers bounds the parallelism of walks and hashing.
func (m *Maintainer) workers() int {
	if m.parallel > 0 {
		return m.parallel
	}
	return min(max(2*runtime.GOMAXPROCS(0), 4), 16)
}

// scan builds the inventory of the whole cache. It reads manifests, entries
// and records but never writes, locks or deletes. Close the tree after use.
func (m *Maintainer) scan(ctx context.Context) (*inventory, error) {
	return m.scanWith(ctx, true)
}

// scanWith is scan; without entries it leaves the auto-resolution cache
// unread (verify does not check entries).
func (m *Maintainer) scanWith(ctx context.Context, entries bool) (*inventory, error) {
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	inv, err := m.scanTree(ctx, t, entries)
	if err != nil {
		t.close()
		return nil, err
	}
	return inv, nil
}

func (m *Maintainer) scanTree(ctx context.Context, t *tree, entries bool) (*inventory, error) {
	inv := &inventory{t: t, Home: m.home, RealHome: t.realRoot, Blobs: map[string]*blobScan{},
		Users: map[string][]*pkgScan{}, RecordMD5s: map[string]bool{}}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.scanBlobs(gctx, inv) })
	if entries {
		g.Go(func() error { return m.scanEntries(gctx, inv, nil) })
	}
	g.Go(func() error { return m.scanRecords(gctx, inv) })
	g.Go(func() error { return m.scanLeases(gctx, inv) })
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := m.scanPackages(ctx, inv, nil); err != nil {
		return nil, err
	}
	inv.recordPresence()
	return inv, nil
}

// scanLeases reads .meta/leases (LeaseErr when it cannot be read safely).
func (m *Maintainer) scanLeases(ctx context.Context, inv *inventory) error {
	t := inv.t
	d := t.dir(topMeta)
	if err := t.unsafe[topMeta]; err != nil {
		inv.LeaseErr = err
		return nil
	}
	if d == nil {
		return nil
	}
	ld, err := d.Sub(meta.LeasesDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		inv.LeaseErr = err
		return nil
	}
	defer ld.Close()
	inv.Leases, inv.BadLeases, err = meta.ReadLeasesIn(ctx, ld)
	if err != nil {
		return fmt.Errorf("read leases: %w", err)
	}
	return nil
}

func realOr(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

func (m *Maintainer) scanBlobs(ctx context.Context, inv *inventory) error {
	t := inv.t
	if err := t.unsafe[topBlobs]; err != nil {
		inv.BlobsErr = err
		return nil
	}
	d := t.dir(topBlobs)
	if d == nil {
		return nil
	}
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	out := make([]sbEntry, len(ents))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	const chunk = 512
	for lo := 0; lo < len(ents); lo += chunk {
		hi := min(lo+chunk, len(ents))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if err := gctx.Err(); err != nil {
					return err
				}
				e := ents[i]
				kind, md5 := blobfs.Classify(e.Name)
				se := sbEntry{Name: e.Name, Kind: kind, MD5: md5}
				if kind == blobfs.KindLock {
					// Lock files are only counted by du; their type is enough here.
					se.node = node{Path: d.Join(e.Name), Mode: e.Type}
					out[i] = se
					continue
				}
				id, err := d.Lstat(e.Name)
				if errors.Is(err, fs.ErrNotExist) {
					continue // removed concurrently
				}
				if err != nil {
					return err
				}
				se.node = nodeOf(d.Join(e.Name), id)
				out[i] = se
				if kind == blobfs.KindBlob && id.IsRegular() {
					mu.Lock()
					inv.Blobs[md5] = &blobScan{MD5: md5, Path: se.node.Path, Size: id.Size, ModTime: se.node.ModTime, node: se.node}
					mu.Unlock()
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, se := range out {
		if se.Name != "" {
			inv.SBEntries = append(inv.SBEntries, se)
		}
	}
	return nil
}

// maxEntryFile bounds the read of one entry or manifest (entries list every
// file of a package and its dependencies; a few MiB at most).
const maxEntryFile = 64 << 20

// scanEntries reads every entry; with filter, only those whose bytes it
// accepts are parsed and kept.
func (m *Maintainer) scanEntries(ctx context.Context, inv *inventory, filter func([]byte) bool) error {
	t := inv.t
	if err := t.unsafe[topEntries]; err != nil {
		inv.EntryErr = err
		return nil
	}
	d := t.dir(topEntries)
	if d == nil {
		return nil
	}
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if entryRE.MatchString(e.Name) {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names)
	out := make([]*entryScan, len(names))
	now := m.now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	const chunk = 64
	for lo := 0; lo < len(names); lo += chunk {
		hi := min(lo+chunk, len(names))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				if err := gctx.Err(); err != nil {
					return err
				}
				out[i] = m.readEntry(d, names[i], now, filter)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, es := range out {
		if es != nil {
			inv.Entries = append(inv.Entries, es)
		}
	}
	return nil
}

// readEntry reads and parses one entry (nil when it vanished meanwhile).
func (m *Maintainer) readEntry(d *fsx.Dir, name string, now time.Time, filter func([]byte) bool) *entryScan {
	es := &entryScan{Key: strings.TrimSuffix(name, ".json"), Path: d.Join(name)}
	data, id, err := d.ReadFile(name, maxEntryFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		var ue *fsx.UnsafePathError
		if errors.As(err, &ue) {
			if lid, lerr := d.Lstat(name); lerr == nil {
				es.node = nodeOf(es.Path, lid)
			}
		}
		es.Err = err
		return es
	}
	es.node = nodeOf(es.Path, id)
	if filter != nil && !filter(data) {
		return nil
	}
	es.Entry, es.Err = autoresolve.ParseEntry(data)
	if es.Entry != nil {
		es.Expired = m.ttl <= 0 || now.Sub(es.Entry.CreatedAt.Time) > m.ttl
	}
	return es
}

var quotedMD5RE = regexp.MustCompile(`"([0-9a-f]{32})"`)

func (m *Maintainer) scanRecords(ctx context.Context, inv *inventory) error {
	t := inv.t
	if err := t.unsafe[topRecords]; err != nil {
		inv.RecordErr = err
		return nil
	}
	d := t.dir(topRecords)
	if d == nil {
		return nil
	}
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name, ".") && strings.HasSuffix(e.Name, ".json") {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names) // code-point order, as Python's sorted(os.listdir())
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := d.Join(name)
		data, id, err := d.ReadFile(name, maxEntryFile)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				m.log.Warn("Could not read offline-weights registry record; ignoring it", "path", p, "error", err)
			}
			continue
		}
		for _, mm := range quotedMD5RE.FindAllSubmatch(data, -1) {
			inv.RecordMD5s[string(mm[1])] = true
		}
		r, err := offlinereg.ParseRecord(data)
		if err != nil {
			m.log.Warn("Could not read offline-weights registry record; ignoring it", "path", p, "error", err)
			continue
		}
		r.Path = p
		rs := &recordScan{Record: r, node: nodeOf(p, id)}
		canonical, _ := r.CanonicalModelID()
		pv, _ := r.Doc.Get("packages")
		list, _ := pv.([]any)
		for _, pk := range list {
			o, ok := pk.(*pyjson.Object)
			if !ok {
				continue
			}
			rp := recordPackage{Owner: canonical}
			rp.PackageID, _ = getString(o, "package_id")
			if owner, ok := getString(o, "cache_model_id"); ok && owner != "" {
				rp.Owner = owner
			}
			av, _ := o.Get("artifacts")
			arts, _ := av.([]any)
			for _, a := range arts {
				if ao, ok := a.(*pyjson.Object); ok {
					if md5, ok := getString(ao, "md5_hash"); ok && md5NameRE.MatchString(md5) {
						rp.MD5s = append(rp.MD5s, md5)
					}
				}
			}
			rs.Packages = append(rs.Packages, rp)
		}
		inv.Records = append(inv.Records, rs)
	}
	return nil
}

func getString(o *pyjson.Object, key string) (string, bool) {
	v, _ := o.Get(key)
	s, ok := v.(string)
	return s, ok
}

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
	if ps.Manifest != nil && ps.Manifest.ModelID != nil {
		ps.ModelID = *ps.Manifest.ModelID
	}
}

// recordPresence computes each record's status (offline.md §5) from the
// walked packages: a package is present when its dir is a real directory and
// each artefact a regular file or a link to a present blob of this cache;
// nothing is followed.
func (inv *inventory) recordPresence() {
	byRel := map[string]*pkgScan{}
	for _, p := range inv.Packages {
		byRel[p.Slug+"/"+p.PackageID] = p
	}
	claims := map[string]int{}
	for _, r := range inv.Records {
		seen := map[string]bool{}
		for _, a := range r.Record.RequestedAliases() {
			if !seen[a] {
				seen[a] = true
				claims[a]++
			}
		}
	}
	for _, r := range inv.Records {
		canonical, ok := r.Record.CanonicalModelID()
		if !ok {
			continue
		}
		st := &offlinereg.ModelStatus{Path: r.Record.Path, CanonicalModelID: canonical,
			RequestedAliases: r.Record.RequestedAliases(), Proven: provenTimes(r.Record)}
		for _, a := range st.RequestedAliases {
			if claims[a] > 1 {
				st.SharedAliases = append(st.SharedAliases, a)
			}
		}
		pv, _ := r.Record.Doc.Get("packages")
		list, _ := pv.([]any)
		for _, payload := range list {
			st.Packages = append(st.Packages, inv.packageStatus(canonical, payload, byRel))
		}
		r.Status = st
	}
}

func (inv *inventory) packageStatus(canonical string, payload any, byRel map[string]*pkgScan) offlinereg.PackageStatus {
	o, ok := payload.(*pyjson.Object)
	if !ok {
		return offlinereg.PackageStatus{Presence: offlinereg.PresenceMalformed}
	}
	var st offlinereg.PackageStatus
	id, ok := getString(o, "package_id")
	if !ok {
		st.Presence = offlinereg.PresenceMalformed
		return st
	}
	st.PackageID = &id
	if tv, _ := o.Get("trusted_source"); tv != nil {
		if b, ok := tv.(bool); ok {
			st.TrustedSource = &b
		}
	}
	owner := canonical
	if cv, _ := o.Get("cache_model_id"); cv != nil && cv != "" && cv != false {
		s, ok := cv.(string)
		if !ok {
			st.Presence = offlinereg.PresenceMissing
			return st
		}
		owner = s
	}
	slug, err := layout.Slug(owner)
	p := byRel[slug+"/"+id]
	if err != nil || p == nil {
		st.Presence = offlinereg.PresenceMissing
		return st
	}
	nodes := map[string]node{}
	for _, n := range p.Nodes {
		nodes[n.Rel] = n
	}
	av, _ := o.Get("artifacts")
	list, _ := av.([]any)
	for _, a := range list {
		ao, ok := a.(*pyjson.Object)
		if !ok {
			st.Presence = offlinereg.PresenceMalformed
			return st
		}
		handle, ok := getString(ao, "file_handle")
		if !ok {
			st.Presence = offlinereg.PresenceMalformed
			return st
		}
		n, found := nodes[handle]
		present := found && layout.ValidateHandle(handle) == nil
		if present && n.isLink() {
			li := p.Links[handle]
			present = li.OurBlob && inv.Blobs[li.BlobMD5] != nil
		} else if present {
			present = n.isRegular()
		}
		if !present {
			st.MissingFiles = append(st.MissingFiles, handle)
		}
	}
	st.Presence = offlinereg.PresenceOK
	if len(st.MissingFiles) > 0 {
		st.Presence = offlinereg.PresenceIncomplete
	}
	return st
}

// provenTimes flattens a record's proven to package id -> time; values may
// be {"last_proven_at": iso} or a bare ISO string (older writers).
func provenTimes(rec *offlinereg.Record) map[string]time.Time {
	out := map[string]time.Time{}
	v, _ := rec.Doc.Get("proven")
	m, ok := v.(*pyjson.Object)
	if !ok {
		return out
	}
	for _, id := range m.Keys() {
		proof, _ := m.Get(id)
		if po, ok := proof.(*pyjson.Object); ok {
			proof, _ = po.Get("last_proven_at")
		}
		if s, ok := proof.(string); ok {
			if t, ok := offlinereg.ParseTimestamp(s); ok {
				out[id] = t
			}
		}
	}
	return out
}

// knownModelIDs maps slugs to model ids named by entries and records, for
// package dirs that have no manifest yet.
func (inv *inventory) knownModelIDs() map[string]string {
	out := map[string]string{}
	add := func(id *string) {
		if id == nil || *id == "" {
			return
		}
		if s, err := layout.Slug(*id); err == nil {
			if _, ok := out[s]; !ok {
				out[s] = *id
			}
		}
	}
	for _, e := range inv.Entries {
		if e.Entry != nil {
			add(e.Entry.CacheModelID)
			add(e.Entry.CanonicalModelID)
		}
	}
	for _, r := range inv.Records {
		for i := range r.Packages {
			add(&r.Packages[i].Owner)
		}
	}
	return out
}

// packagesOf returns the valid packages whose dir is the slug of modelID.
func (inv *inventory) packagesOf(modelID string) ([]*pkgScan, error) {
	slug, err := layout.Slug(modelID)
	if err != nil {
		return nil, err
	}
	var out []*pkgScan
	for _, p := range inv.Packages {
		if p.Slug == slug && p.Valid {
			out = append(out, p)
		}
	}
	return out, nil
}

// recordsNaming returns the records whose canonical id or aliases are
// modelID, or that record a package in a dir owned by modelID.
func (inv *inventory) recordsNaming(modelID string) []*recordScan {
	var out []*recordScan
	for _, r := range inv.Records {
		c, _ := r.Record.CanonicalModelID()
		hit := c == modelID || r.Record.HasAlias(modelID)
		for _, p := range r.Packages {
			hit = hit || p.Owner == modelID
		}
		if hit {
			out = append(out, r)
		}
	}
	return out
}

// entryNames reports whether an entry names modelID (requested, owner or
// canonical id).
func entryNames(e *autoresolve.Entry, modelID string) bool {
	return e.ModelID == modelID || (e.CacheModelID != nil && *e.CacheModelID == modelID) ||
		(e.CanonicalModelID != nil && *e.CanonicalModelID == modelID)
}

// entryOwner is the model id whose dir holds the entry's package.
func entryOwner(e *autoresolve.Entry) string {
	if e.CacheModelID != nil && *e.CacheModelID != "" {
		return *e.CacheModelID
	}
	if e.CanonicalModelID != nil && *e.CanonicalModelID != "" {
		return *e.CanonicalModelID
	}
	return e.ModelID
}

// entryBlobs are the blobs an entry's resolved_files name (conservatively:
// any ".../shared-blobs/<md5>", whatever H it was written under).
func entryBlobs(e *autoresolve.Entry) []string {
	var out []string
	for _, f := range e.ResolvedFiles {
		base := filepath.Base(f)
		if md5NameRE.MatchString(base) && filepath.Base(filepath.Dir(f)) == blobfs.DirName {
			out = append(out, base)
		}
	}
	return out
}

// entryNamesPackage reports whether an entry resolves to the package dir
// <slug>/<packageID>.
func entryNamesPackage(e *autoresolve.Entry, slug, packageID string) bool {
	if e.ModelPackageID != packageID {
		return false
	}
	s, err := layout.Slug(entryOwner(e))
	return err == nil && s == slug
}
