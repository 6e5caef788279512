package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/offlinereg"
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

func (n node) isLink() bool { return n.Mode&fs.ModeSymlink != 0 }

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
	// byRel indexes Nodes (built on first use).
	byRel map[string]node
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
	// noSizes: regular files of packages are not stat'ed (verify and gc do
	// not report sizes; temps and manifests are still read or stat'ed).
	noSizes bool
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
	return m.scanWith(ctx, true, true)
}

// scanWith is scan; without entries it leaves the auto-resolution cache
// unread (verify does not check entries).
func (m *Maintainer) scanWith(ctx context.Context, entries, sizes bool) (*inventory, error) {
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	inv, err := m.scanTree(ctx, t, entries, sizes)
	if err != nil {
		t.close()
		return nil, err
	}
	return inv, nil
}

func (m *Maintainer) scanTree(ctx context.Context, t *tree, entries, sizes bool) (*inventory, error) {
	inv := &inventory{t: t, Home: m.home, RealHome: t.realRoot, Blobs: map[string]*blobScan{},
		Users: map[string][]*pkgScan{}, RecordMD5s: map[string]bool{}, noSizes: !sizes}
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
