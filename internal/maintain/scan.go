package maintain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
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

// node is one directory entry as lstat saw it.
type node struct {
	Path     string
	Rel      string // relative to the package dir, for package nodes
	Mode     fs.FileMode
	Size     int64
	ModTime  time.Time
	Dev, Ino uint64
	HasIno   bool
	LinkText string
}

func nodeOf(path string, fi fs.FileInfo) node {
	n := node{Path: path, Mode: fi.Mode(), Size: fi.Size(), ModTime: fi.ModTime()}
	n.Dev, n.Ino, n.HasIno = inodeOf(fi)
	if fi.Mode()&fs.ModeSymlink != 0 {
		n.LinkText, _ = os.Readlink(path)
	}
	return n
}

func (n node) isLink() bool    { return n.Mode&fs.ModeSymlink != 0 }
func (n node) isRegular() bool { return n.Mode.IsRegular() }

// linkInfo describes where a symlink in a package dir leads, worked out from
// link texts only (nothing is opened through the link).
type linkInfo struct {
	// BlobMD5 is set when the link names shared-blobs/<md5> (lexically: the
	// conservative test GC marks with).
	BlobMD5 string
	// OurBlob: it resolves into this cache's shared-blobs.
	OurBlob bool
	// Inside: the target lies under H (as written or as resolved).
	Inside bool
	// Resolved is the absolute target with the link's own directory resolved.
	Resolved string
}

// pkgScan is one package dir with everything in it.
type pkgScan struct {
	cache.PackageInfo
	// ModelID is the cache owner: the manifest's model_id, else inferred
	// from entries and records, else "".
	ModelID  string
	Nodes    []node // the dir itself first
	DirBytes int64  // du -sb of the package dir
	// Links maps the rel path of each symlink to where it leads.
	Links map[string]linkInfo
	// Blobs are the distinct blobs of this cache its links lead to.
	Blobs    []string
	LastUsed *time.Time
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
	Record   *offlinereg.Record
	Status   *offlinereg.ModelStatus
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
	Home     layout.Home
	RealHome string
	// RealBlobs is the resolved shared-blobs dir ("" when absent).
	RealBlobs string
	Packages  []*pkgScan
	// BlobsErr is set when shared-blobs cannot be listed safely (a symlink).
	BlobsErr  error
	SBEntries []sbEntry
	Blobs     map[string]*blobScan
	Entries   []*entryScan
	EntryErr  error
	Records   []*recordScan
	RecordErr error
	Leases    []Lease
	BadLeases []string
	// Users counts, per blob md5, the packages linking to it.
	Users map[string][]*pkgScan
}

// scan builds the inventory. It reads manifests, entries and records but
// never writes, locks or deletes.
func (m *Maintainer) scan(ctx context.Context) (*inventory, error) {
	inv := &inventory{Home: m.home, Blobs: map[string]*blobScan{}, Users: map[string][]*pkgScan{}}
	inv.RealHome = realOr(m.home.Root)
	if err := m.scanBlobs(ctx, inv); err != nil {
		return nil, err
	}
	if err := m.scanEntries(ctx, inv); err != nil {
		return nil, err
	}
	if err := m.scanRecords(ctx, inv); err != nil {
		return nil, err
	}
	var err error
	if inv.Leases, inv.BadLeases, err = ReadLeases(ctx, m.home); err != nil {
		return nil, fmt.Errorf("read leases: %w", err)
	}
	if err := m.scanPackages(ctx, inv); err != nil {
		return nil, err
	}
	return inv, nil
}

func realOr(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

func (m *Maintainer) scanBlobs(ctx context.Context, inv *inventory) error {
	dir := m.home.SharedBlobs()
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		inv.BlobsErr = &fsx.UnsafePathError{Op: "list", Path: dir, Kind: kindOf(fi)}
		return nil
	}
	inv.RealBlobs = realOr(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed concurrently
		}
		if err != nil {
			return err
		}
		kind, md5 := blobfs.Classify(e.Name())
		se := sbEntry{Name: e.Name(), Kind: kind, MD5: md5, node: nodeOf(p, fi)}
		inv.SBEntries = append(inv.SBEntries, se)
		if kind == blobfs.KindBlob && fi.Mode().IsRegular() {
			inv.Blobs[md5] = &blobScan{MD5: md5, Path: p, Size: fi.Size(), ModTime: fi.ModTime(), node: se.node}
		}
	}
	return nil
}

// maxEntryFile bounds the read of one entry (entries list every file of a
// package and its dependencies; a few MiB at most).
const maxEntryFile = 64 << 20

func (m *Maintainer) scanEntries(ctx context.Context, inv *inventory) error {
	dir := m.home.AutoResolutionCache()
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		inv.EntryErr = &fsx.UnsafePathError{Op: "list", Path: dir, Kind: kindOf(fi)}
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	now := m.now()
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if !entryRE.MatchString(name) {
			continue
		}
		p := filepath.Join(dir, name)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		es := &entryScan{Key: strings.TrimSuffix(name, ".json"), Path: p, node: nodeOf(p, fi)}
		if !fi.Mode().IsRegular() {
			es.Err = &fsx.UnsafePathError{Op: "read", Path: p, Kind: kindOf(fi)}
			inv.Entries = append(inv.Entries, es)
			continue
		}
		data, err := readNoFollow(p, maxEntryFile)
		if err == nil {
			es.Entry, err = autoresolve.ParseEntry(data)
		}
		es.Err = err
		if es.Entry != nil {
			es.Expired = m.ttl <= 0 || now.Sub(es.Entry.CreatedAt.Time) > m.ttl
		}
		inv.Entries = append(inv.Entries, es)
	}
	return nil
}

func readNoFollow(p string, limit int64) ([]byte, error) {
	f, err := fsx.OpenNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}

func (m *Maintainer) scanRecords(ctx context.Context, inv *inventory) error {
	recs, err := m.c.Registry.Records(ctx)
	if err != nil {
		var se *offlinereg.SymlinkError
		if errors.As(err, &se) {
			inv.RecordErr = err
			return nil
		}
		return fmt.Errorf("read offline records: %w", err)
	}
	statuses, err := m.c.Registry.List(ctx)
	if err != nil {
		return fmt.Errorf("list offline records: %w", err)
	}
	byPath := map[string]*offlinereg.ModelStatus{}
	for i := range statuses {
		byPath[statuses[i].Path] = &statuses[i]
	}
	for _, r := range recs {
		rs := &recordScan{Record: r, Status: byPath[r.Path]}
		if fi, err := os.Lstat(r.Path); err == nil {
			rs.node = nodeOf(r.Path, fi)
		}
		canonical, _ := r.CanonicalModelID()
		pv, _ := r.Doc.Get("packages")
		list, _ := pv.([]any)
		for _, p := range list {
			o, ok := p.(*pyjson.Object)
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

func (m *Maintainer) scanPackages(ctx context.Context, inv *inventory) error {
	infos, err := m.c.ScanPackages(ctx)
	if err != nil {
		return fmt.Errorf("scan packages: %w", err)
	}
	owners := inv.knownModelIDs()
	for _, info := range infos {
		ps := &pkgScan{PackageInfo: info, Links: map[string]linkInfo{}}
		if info.Manifest != nil && info.Manifest.ModelID != nil {
			ps.ModelID = *info.Manifest.ModelID
		} else {
			ps.ModelID = owners[info.Slug]
		}
		if err := m.walkPackage(ctx, inv, ps); err != nil {
			return err
		}
		if t, ok, _ := lastUsedAt(filepath.Join(m.home.Meta(), lastUsedDir, info.Slug, info.PackageID)); ok {
			ps.LastUsed = &t
		}
		inv.Packages = append(inv.Packages, ps)
		for _, md5 := range ps.Blobs {
			inv.Users[md5] = append(inv.Users[md5], ps)
		}
	}
	return nil
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

func (m *Maintainer) walkPackage(ctx context.Context, inv *inventory, ps *pkgScan) error {
	blobs := map[string]bool{}
	err := filepath.WalkDir(ps.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != ps.Dir {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n := nodeOf(p, fi)
		n.Rel, _ = filepath.Rel(ps.Dir, p)
		ps.Nodes = append(ps.Nodes, n)
		ps.DirBytes += n.Size
		if n.isLink() {
			li := inv.resolveLink(p, n.LinkText)
			ps.Links[n.Rel] = li
			if li.OurBlob {
				blobs[li.BlobMD5] = true
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("walk package %s: %w", ps.Dir, err)
	}
	for md5 := range blobs {
		ps.Blobs = append(ps.Blobs, md5)
	}
	sort.Strings(ps.Blobs)
	return nil
}

// resolveLink works out where a link leads from its text: the link's own
// directory is resolved (relative links are computed from real paths), the
// rest is lexical except for the target's parent directory.
func (inv *inventory) resolveLink(linkPath, text string) linkInfo {
	var li linkInfo
	if text == "" {
		return li
	}
	target := text
	if !filepath.IsAbs(target) {
		target = filepath.Join(realOr(filepath.Dir(linkPath)), target)
	}
	target = filepath.Clean(target)
	resolved := filepath.Join(realOr(filepath.Dir(target)), filepath.Base(target))
	li.Resolved = resolved
	li.Inside = within(target, filepath.Clean(inv.Home.Root)) || within(target, inv.RealHome) ||
		within(resolved, inv.RealHome)
	base := filepath.Base(target)
	if md5NameRE.MatchString(base) && filepath.Base(filepath.Dir(target)) == blobfs.DirName {
		li.BlobMD5 = base
	}
	if md5NameRE.MatchString(filepath.Base(resolved)) && inv.RealBlobs != "" && filepath.Dir(resolved) == inv.RealBlobs {
		li.BlobMD5 = filepath.Base(resolved)
		li.OurBlob = true
	}
	return li
}

// within reports whether p is dir or lies under it (lexically).
func within(p, dir string) bool {
	if dir == "" {
		return false
	}
	if p == dir {
		return true
	}
	if !strings.HasSuffix(dir, "/") {
		dir += "/"
	}
	return strings.HasPrefix(p, dir)
}

// packagesOf returns the packages whose dir is the slug of modelID.
func (inv *inventory) packagesOf(modelID string) ([]*pkgScan, error) {
	slug, err := layout.Slug(modelID)
	if err != nil {
		return nil, err
	}
	var out []*pkgScan
	for _, p := range inv.Packages {
		if p.Slug == slug {
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
