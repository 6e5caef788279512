package maintain

import (
	"context"
	md5pkg "crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/meta"
)

// VerifyOptions configure Verify.
type VerifyOptions struct {
	// ModelIDs limit the check to these models (their packages, the blobs
	// those use, their offline records); empty means the whole cache,
	// orphaned blobs included.
	ModelIDs []string
	// Full re-hashes blobs whose verified stamp still matches.
	Full bool
	// Repair fixes what can be fixed offline (see Finding.Action).
	Repair bool
}

// Finding kinds.
const (
	FindBlobCorrupt     = "blob-corrupt"          // blob bytes do not hash to its name
	FindBlobUnreadable  = "blob-unreadable"       // I/O error or changed while read
	FindBlobNotRegular  = "blob-not-regular"      // a symlink or dir under a blob name
	FindMissingFile     = "missing-file"          // a declared handle is absent
	FindMissingBlob     = "missing-blob"          // a blob link dangles
	FindWrongLink       = "wrong-link"            // a blob link leads to another file of the cache
	FindOutsideLink     = "outside-link"          // a symlink leads out of the cache (never followed)
	FindFileInLinkPlace = "file-in-link-position" // a regular file where a blob link belongs
	FindFileMismatch    = "file-hash-mismatch"    // a package file's SHA-256/MD5 differs from the manifest
	FindNotAFile        = "not-a-file"            // a package file is a symlink, dir or device
	FindDependency      = "dependency-link"       // a dependency link is missing, wrong or stale
	FindManifestBroken  = "manifest-broken"       // model_config.json does not parse
	FindOfflinePackage  = "offline-package"       // an offline record lists a package that is not fully present
	FindModelNotFound   = "model-not-found"       // a requested model id has nothing in the cache
	FindUnsafeDir       = "unsafe-dir"            // shared-blobs or another store dir is a symlink
)

// Finding is one problem verify found, and what repair did about it.
type Finding struct {
	Kind string `json:"kind"`
	Path string `json:"path"`
	// Package is the package dir the finding belongs to, if any.
	Package string `json:"package,omitempty"`
	Handle  string `json:"handle,omitempty"`
	MD5     string `json:"md5,omitempty"`
	Detail  string `json:"detail"`
	// Repaired: --repair fixed it; Action says how.
	Repaired bool   `json:"repaired"`
	Action   string `json:"action,omitempty"`
}

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Models   []string `json:"models"`
	Full     bool     `json:"full"`
	Repair   bool     `json:"repair"`
	Packages int      `json:"packages_checked"`
	// PartialPackages have no v4 manifest yet: only their links are checked.
	PartialPackages []string `json:"partial_packages"`
	Blobs           int      `json:"blobs_checked"`
	// BlobsHashed were read; BlobsStamped skipped thanks to a matching
	// verified stamp.
	BlobsHashed  int   `json:"blobs_hashed"`
	BlobsStamped int   `json:"blobs_stamped"`
	BytesHashed  int64 `json:"bytes_hashed"`
	Files        int   `json:"files_checked"`
	// Findings lists every problem; those with Repaired are fixed.
	Findings []Finding `json:"findings"`
	// Problems counts the findings left unrepaired.
	Problems int  `json:"problems"`
	OK       bool `json:"ok"`
}

func (r *VerifyReport) add(f Finding) { r.Findings = append(r.Findings, f) }

// Verify re-checks packages and blobs offline: blob MD5s (incrementally,
// via verified records, unless Full; one hasher per core), blob links, the
// SHA-256 of unhashed files, the MD5 of local package files, dependency
// links and identities, and the presence of offline-recorded packages.
// Nothing is followed out of the cache. With Repair it fixes, under each
// package's materialization lock: corrupt blobs and corrupt files are moved
// aside and deleted (the next online load downloads them again); a regular
// file where a blob link belongs is moved into shared-blobs when its MD5
// matches and linked; a wrong or outside blob link is replaced when the blob
// is good; a wrong dependency link is re-pointed at its recorded, unchanged
// target. New verified records are appended in one write with one fsync.
func (m *Maintainer) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Repair && m.offline() {
		return nil, errOffline("verify --repair")
	}
	inv, err := m.scanWith(ctx, false)
	if err != nil {
		return nil, err
	}
	defer inv.t.close()
	rep := &VerifyReport{Models: append([]string{}, opts.ModelIDs...), Full: opts.Full, Repair: opts.Repair,
		PartialPackages: []string{}, Findings: []Finding{}}
	if rep.Models == nil {
		rep.Models = []string{}
	}
	for _, p := range inv.t.problems() {
		rep.add(Finding{Kind: FindUnsafeDir, Path: p.Path, Detail: p.Detail})
	}
	v := &verifier{m: m, inv: inv, opts: opts, rep: rep, blobOK: map[string]error{}}
	// Read with --full too: a record that still holds is not written again.
	if v.records, err = meta.LoadVerified(ctx, m.home); err != nil {
		m.log.Warn("verified records unreadable; every blob is hashed", "err", err)
		v.records = nil
	}

	var pkgs []*pkgScan
	for _, p := range inv.Packages {
		if p.Valid {
			pkgs = append(pkgs, p)
		}
	}
	records, blobs := inv.Records, map[string]bool{}
	if len(opts.ModelIDs) > 0 {
		pkgs, records = nil, nil
		seenP, seenR := map[*pkgScan]bool{}, map[*recordScan]bool{}
		for _, id := range opts.ModelIDs {
			if _, err := layout.Slug(id); err != nil {
				return nil, err
			}
			ps, rs := inv.modelPackages(id), inv.recordsNaming(id)
			if len(ps) == 0 && len(rs) == 0 {
				rep.add(Finding{Kind: FindModelNotFound, Path: id, Detail: "no packages or offline records for this model id"})
			}
			for _, p := range ps {
				if !seenP[p] {
					seenP[p] = true
					pkgs = append(pkgs, p)
				}
			}
			for _, r := range rs {
				if !seenR[r] {
					seenR[r] = true
					records = append(records, r)
				}
			}
		}
		for _, p := range pkgs {
			for _, md5 := range p.Blobs {
				blobs[md5] = true
			}
			if p.Manifest != nil {
				for _, a := range p.Manifest.PackageArtifacts {
					if a.MD5Hash != nil && a.Storage == manifest.StorageSharedBlob {
						blobs[*a.MD5Hash] = true
					}
				}
			}
		}
	} else {
		for md5 := range inv.Blobs {
			blobs[md5] = true
		}
		for _, se := range inv.SBEntries {
			if se.Kind == blobfs.KindBlob && !se.node.isRegular() {
				rep.add(Finding{Kind: FindBlobNotRegular, Path: se.node.Path, MD5: se.MD5,
					Detail: "not a regular file under a blob name; never followed (remove it by hand)"})
			}
		}
	}

	// Blobs first, in parallel: link checks use their verdicts.
	sorted := make([]string, 0, len(blobs))
	for md5 := range blobs {
		sorted = append(sorted, md5)
	}
	sort.Strings(sorted)
	if err := v.checkBlobs(ctx, sorted); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.checkPackage(ctx, p)
	}
	for _, r := range records {
		if r.Status == nil {
			continue
		}
		for _, p := range r.Status.Packages {
			if p.Presence == "ok" {
				continue
			}
			id := "<malformed>"
			if p.PackageID != nil {
				id = *p.PackageID
			}
			rep.add(Finding{Kind: FindOfflinePackage, Path: r.Record.Path, Handle: id,
				Detail: fmt.Sprintf("package %s is %s in the cache (missing files: %v); OFFLINE_MODE cannot load it", id, p.Presence, p.MissingFiles)})
		}
	}
	v.flushRecords(ctx, len(opts.ModelIDs) == 0)
	for _, f := range rep.Findings {
		if !f.Repaired {
			rep.Problems++
		}
	}
	rep.OK = rep.Problems == 0
	return rep, nil
}

type verifier struct {
	m       *Maintainer
	inv     *inventory
	opts    VerifyOptions
	rep     *VerifyReport
	records *meta.VerifiedSet
	mu      sync.Mutex
	// blobOK: nil for a blob that verified, else why not; absent: unchecked.
	blobOK map[string]error
	// fresh: records to append; forget: blobs whose records no longer hold.
	fresh  []meta.Verified
	forget []string
}

var errBlobMissing = errors.New("blob is missing")

// checkBlobs hashes blobs with one worker per core.
func (v *verifier) checkBlobs(ctx context.Context, md5s []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(runtime.GOMAXPROCS(0), 1))
	if v.m.parallel > 0 {
		g.SetLimit(v.m.parallel)
	}
	for _, md5 := range md5s {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			v.checkBlob(gctx, md5)
			return nil
		})
	}
	return g.Wait()
}

var hashBufs = sync.Pool{New: func() any { b := make([]byte, fsx.BlockSize); return &b }}

// checkBlob verifies one blob (or trusts its matching record) and, with
// Repair, deletes it when corrupt. Safe for concurrent use.
func (v *verifier) checkBlob(ctx context.Context, md5 string) {
	m := v.m
	v.mu.Lock()
	_, done := v.blobOK[md5]
	b := v.inv.Blobs[md5]
	if !done {
		v.blobOK[md5] = errBlobPending
	}
	v.mu.Unlock()
	if done {
		return
	}
	verdict := func(err error) {
		v.mu.Lock()
		v.blobOK[md5] = err
		v.mu.Unlock()
	}
	if b == nil {
		verdict(errBlobMissing)
		return
	}
	v.count(func(r *VerifyReport) { r.Blobs++ })
	rec, hasRec := v.records.Get(md5)
	if hasRec && !v.opts.Full && rec.Matches(fsx.FileID{Mode: b.node.Mode, Size: b.Size, MtimeNS: b.ModTime.UnixNano(), Ino: b.node.Ino}) {
		v.count(func(r *VerifyReport) { r.BlobsStamped++ })
		verdict(nil)
		return
	}
	d := v.inv.t.dir(topBlobs)
	h5 := md5pkg.New()
	bufp := hashBufs.Get().(*[]byte)
	id, err := d.StableHash(ctx, md5, h5, *bufp)
	hashBufs.Put(bufp)
	sum := hex.EncodeToString(h5.Sum(nil))
	v.count(func(r *VerifyReport) { r.BlobsHashed++; r.BytesHashed += id.Size })
	if err != nil {
		verdict(err)
		v.add(Finding{Kind: FindBlobUnreadable, Path: b.Path, MD5: md5, Detail: err.Error()})
		return
	}
	if sum == md5 {
		verdict(nil)
		if !hasRec || !rec.Matches(id) {
			v.mu.Lock()
			v.fresh = append(v.fresh, meta.NewVerified(md5, "", id, m.now()))
			v.mu.Unlock()
		}
		return
	}
	bad := &blobstore.DigestMismatchError{Expected: md5, Actual: sum, Size: id.Size}
	verdict(bad)
	f := Finding{Kind: FindBlobCorrupt, Path: b.Path, MD5: md5,
		Detail: fmt.Sprintf("content hashes to %s over %d bytes, not to its name; every load of a package using it fails", sum, id.Size)}
	v.mu.Lock()
	v.forget = append(v.forget, md5)
	v.mu.Unlock()
	if v.opts.Repair {
		removed, err := m.c.Blobs.Repair(ctx, md5)
		switch {
		case err != nil:
			f.Action = "repair failed: " + err.Error()
		case removed:
			f.Repaired, f.Action = true, "moved aside and deleted; the next online load downloads it again"
			verdict(errBlobMissing)
		default:
			f.Repaired, f.Action = true, "a good copy replaced it concurrently"
			verdict(nil)
		}
	}
	v.add(f)
}

var errBlobPending = errors.New("being checked")

func (v *verifier) count(fn func(*VerifyReport)) {
	v.mu.Lock()
	fn(v.rep)
	v.mu.Unlock()
}

func (v *verifier) add(f Finding) {
	v.mu.Lock()
	v.rep.add(f)
	v.mu.Unlock()
}

// verdict returns the blob's verdict, checking it first when needed.
func (v *verifier) verdict(ctx context.Context, md5 string) error {
	v.checkBlob(ctx, md5)
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.blobOK[md5]
}

// flushRecords appends this run's verified records with one write and one
// fsync, forgets the blobs that failed, and after a whole-cache run compacts
// the log when it carries dead weight (records of gone blobs, repeats,
// legacy files).
func (v *verifier) flushRecords(ctx context.Context, wholeCache bool) {
	m := v.m
	if m.offline() {
		return
	}
	if len(v.forget) > 0 {
		if err := meta.ForgetVerified(m.home, v.forget...); err != nil {
			m.log.Warn("forgetting verified records failed", "err", err)
		}
	}
	if err := meta.AppendVerified(m.home, true, v.fresh...); err != nil {
		m.log.Warn("writing verified records failed", "err", err)
		return
	}
	if !wholeCache || v.inv.BlobsErr != nil {
		return
	}
	set := v.records
	if set == nil || set.Legacy > 0 || set.LogLines+len(v.fresh) > 2*len(v.inv.Blobs)+64 {
		keep := func(md5 string) bool { return v.inv.Blobs[md5] != nil }
		if _, err := meta.CompactVerified(ctx, m.home, keep, false); err != nil {
			m.log.Warn("compacting verified records failed", "err", err)
		}
	}
}

// hashFile reads a regular file of a package once (through its directory's
// descriptor, identity checked) and returns its MD5 and SHA-256.
func (v *verifier) hashFile(ctx context.Context, p *pkgScan, handle string) (md5hex, sha256hex string, id fsx.FileID, err error) {
	d, closeDir, name, err := v.inv.t.openHandleDir(p, handle)
	if err != nil {
		return "", "", id, err
	}
	defer closeDir()
	h5, h256 := md5pkg.New(), sha256.New()
	bufp := hashBufs.Get().(*[]byte)
	defer hashBufs.Put(bufp)
	id, err = d.StableHash(ctx, name, io.MultiWriter(h5, h256), *bufp)
	if err != nil {
		return "", "", id, err
	}
	return hex.EncodeToString(h5.Sum(nil)), hex.EncodeToString(h256.Sum(nil)), id, nil
}

// checkPackage verifies one package dir, repairing under its
// materialization lock when asked.
func (v *verifier) checkPackage(ctx context.Context, p *pkgScan) {
	v.rep.Packages++
	var findings []Finding
	add := func(f Finding) {
		f.Package = p.Dir
		findings = append(findings, f)
	}
	declared := map[string]bool{}
	switch p.State {
	case cache.StateBroken:
		add(Finding{Kind: FindManifestBroken, Path: manifest.Path(p.Dir), Detail: fmt.Sprint(p.Err) +
			"; remove the package (`modelcache purge`) so the next load materializes it again"})
	case cache.StatePartial:
		v.rep.PartialPackages = append(v.rep.PartialPackages, p.Dir)
	}
	if mf := p.Manifest; mf != nil && p.State == cache.StateComplete {
		for _, a := range mf.PackageArtifacts {
			declared[a.FileHandle] = true
			v.rep.Files++
			if f, ok := v.checkArtifact(ctx, p, a); !ok {
				add(f)
			}
		}
		for _, dp := range mf.DependencyPackagePaths {
			declared[layout.DependenciesDir+"/"+dp.Name] = true
			if f, ok := v.checkDependency(p, dp); !ok {
				add(f)
			}
		}
	}
	// Links nobody declared that lead out of the cache: planted, reported.
	rels := make([]string, 0, len(p.Links))
	for rel := range p.Links {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		li := p.Links[rel]
		if declared[rel] || li.Inside {
			continue
		}
		add(Finding{Kind: FindOutsideLink, Path: p.Dir + "/" + rel, Handle: rel,
			Detail: "undeclared symlink leading outside the cache; never followed, not removed by repair"})
	}
	if v.opts.Repair && needsRepair(findings) {
		v.repairPackage(ctx, p, findings)
	}
	for _, f := range findings {
		v.rep.add(f)
	}
}

func needsRepair(fs []Finding) bool {
	for _, f := range fs {
		switch f.Kind {
		case FindWrongLink, FindFileInLinkPlace, FindFileMismatch, FindDependency:
			return true
		case FindOutsideLink:
			if f.MD5 != "" {
				return true
			}
		}
	}
	return false
}

// handleNode returns the walked node of a handle; err reports a parent that
// is not a real directory (a symlink: never followed).
func (p *pkgScan) handleNode(handle string) (node, bool, error) {
	segs := strings.Split(handle, "/")
	byRel := p.nodeIndex()
	for i := 1; i < len(segs); i++ {
		parent := strings.Join(segs[:i], "/")
		n, ok := byRel[parent]
		if !ok {
			return node{}, false, nil
		}
		if !n.Mode.IsDir() {
			return node{}, false, &fsx.UnsafePathError{Op: "enter", Path: p.Dir + "/" + parent, Kind: kindOfMode(n.Mode)}
		}
	}
	n, ok := byRel[handle]
	return n, ok, nil
}

func (p *pkgScan) nodeIndex() map[string]node {
	out := make(map[string]node, len(p.Nodes))
	for _, n := range p.Nodes {
		out[n.Rel] = n
	}
	return out
}

// checkArtifact verifies one declared artefact.
func (v *verifier) checkArtifact(ctx context.Context, p *pkgScan, a manifest.Artifact) (Finding, bool) {
	path, err := layout.HandlePath(p.Dir, a.FileHandle)
	if err != nil {
		return Finding{Kind: FindManifestBroken, Path: p.Dir, Handle: a.FileHandle, Detail: err.Error()}, false
	}
	f := Finding{Path: path, Handle: a.FileHandle}
	if a.MD5Hash != nil {
		f.MD5 = *a.MD5Hash
	}
	n, ok, err := p.handleNode(a.FileHandle)
	if err != nil {
		f.Kind, f.Detail = FindNotAFile, "a parent directory of the handle is not a real directory; never followed: "+err.Error()
		return f, false
	}
	if !ok {
		f.Kind, f.Detail = FindMissingFile, "declared file is absent; the next online load downloads it"
		return f, false
	}
	if a.Storage == manifest.StorageSharedBlob && a.MD5Hash != nil {
		return v.checkBlobLink(ctx, p, n, f)
	}
	if !n.isRegular() {
		f.Kind, f.Detail = FindNotAFile, fmt.Sprintf("a package file is a %s; never followed", describeMode(n.Mode))
		if li, ok := p.Links[a.FileHandle]; ok && !li.Inside {
			f.Kind = FindOutsideLink
		}
		return f, false
	}
	sum, sha, _, err := v.hashFile(ctx, p, a.FileHandle)
	v.rep.BytesHashed += n.Size
	if err != nil {
		f.Kind, f.Detail = FindNotAFile, err.Error()
		return f, false
	}
	switch {
	case a.Unhashed && a.SHA256Hash != nil && sha != *a.SHA256Hash:
		f.Kind, f.Detail = FindFileMismatch, fmt.Sprintf("SHA-256 %s, manifest says %s", sha, *a.SHA256Hash)
		return f, false
	case !a.Unhashed && a.MD5Hash != nil && sum != *a.MD5Hash:
		f.Kind, f.Detail = FindFileMismatch, fmt.Sprintf("MD5 %s, manifest says %s", sum, *a.MD5Hash)
		return f, false
	}
	return f, true
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// checkBlobLink: the handle is a symlink whose text leads (lexically, from
// a real directory, through the real shared-blobs) to the blob, and the
// blob verified (§7 step 6, §11.1).
func (v *verifier) checkBlobLink(ctx context.Context, p *pkgScan, n node, f Finding) (Finding, bool) {
	md5 := f.MD5
	if n.isRegular() {
		f.Kind = FindFileInLinkPlace
		f.Detail = "a regular file sits where the link to blob " + md5 + " belongs (the reference fails this package until fixed)"
		return f, false
	}
	if !n.isLink() {
		f.Kind, f.Detail = FindNotAFile, "a "+describeMode(n.Mode)+" sits where the link to blob "+md5+" belongs"
		return f, false
	}
	li := p.Links[f.Handle]
	if !li.Inside {
		f.Kind, f.Detail = FindOutsideLink, "link leads outside the cache instead of to blob "+md5+"; never followed"
		return f, false
	}
	verdict := v.verdict(ctx, md5)
	if !li.OurBlob || li.BlobMD5 != md5 {
		f.Kind, f.Detail = FindWrongLink, "link does not lead to blob "+md5
		return f, false
	}
	if errors.Is(verdict, errBlobMissing) {
		f.Kind, f.Detail = FindMissingBlob, "blob "+md5+" is missing; the next online load downloads it again"
		return f, false
	}
	// A corrupt blob is reported once, on the blob itself.
	return f, true
}

// checkDependency: the link's text leads to the recorded target, inside
// the cache, whose manifest still has the recorded hash (§11.2).
func (v *verifier) checkDependency(p *pkgScan, dp manifest.DependencyPath) (Finding, bool) {
	link, err := layout.DependencyLinkPath(p.Dir, dp.Name)
	if err != nil {
		return Finding{Kind: FindManifestBroken, Path: p.Dir, Detail: err.Error()}, false
	}
	handle := layout.DependenciesDir + "/" + dp.Name
	f := Finding{Kind: FindDependency, Path: link, Handle: handle}
	n, ok, err := p.handleNode(handle)
	switch {
	case err != nil:
		f.Detail = "model_dependencies is not a real directory; never followed: " + err.Error()
		return f, false
	case !ok:
		f.Detail = "dependency link is missing"
		return f, false
	case !n.isLink():
		f.Detail = "not a symlink where the dependency link belongs"
		return f, false
	}
	target, inside := v.inv.relOf(dp.TargetPath)
	if !inside {
		f.Detail = "recorded target " + dp.TargetPath + " is outside the cache (was the cache moved?); not read"
		return f, false
	}
	li := p.Links[handle]
	if !li.Inside || !li.Exact || li.Rel != target {
		f.Detail = fmt.Sprintf("link leads to %q, recorded target is %s", li.Resolved, dp.TargetPath)
		return f, false
	}
	h, err := v.inv.manifestHashAt(target)
	if err != nil {
		f.Detail = "dependency manifest: " + err.Error()
		return f, false
	}
	if h != dp.PackageManifestHash {
		f.Detail = fmt.Sprintf("dependency manifest hash %s, recorded %s: the dependency changed; purge this package to re-materialize it", h, dp.PackageManifestHash)
		return f, false
	}
	return f, true
}

// relOf maps an absolute path written by a writer (H as written, or its
// realpath) to its place relative to H.
func (inv *inventory) relOf(abs string) (string, bool) {
	abs = filepath.Clean(abs)
	for _, root := range []string{inv.RealHome, filepath.Clean(inv.Home.Root)} {
		if rel, ok := relWithin(abs, root); ok && rel != "." && exactText(rel) {
			return rel, true
		}
	}
	return "", false
}

// manifestHashAt returns the content hash of the manifest of the package
// dir H/<rel>, from the scan when it walked that dir, else read through
// descriptors.
func (inv *inventory) manifestHashAt(rel string) (string, error) {
	for _, p := range inv.Packages {
		if p.Rel == rel {
			if p.Manifest == nil {
				if p.Err != nil {
					return "", p.Err
				}
				return "", fmt.Errorf("%s has no manifest", p.Dir)
			}
			return p.Manifest.ContentHash(), nil
		}
	}
	d, err := inv.t.openRel(rel)
	if err != nil {
		return "", err
	}
	defer d.Close()
	data, _, err := d.ReadFile(layout.ManifestFile, maxEntryFile)
	if err != nil {
		return "", err
	}
	mf, err := manifest.Parse(data)
	if err != nil {
		return "", err
	}
	return mf.ContentHash(), nil
}
