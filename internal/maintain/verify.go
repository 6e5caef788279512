package maintain

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
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
// via .meta/verified stamps, unless Full), blob links, SHA-256 of unhashed
// files, MD5 of local package files, dependency links and identities, and
// the presence of offline-recorded packages. Nothing is followed out of the
// cache. With Repair it fixes, under each package's materialization lock:
// corrupt blobs and corrupt files are moved aside and deleted (the next
// online load downloads them again); a regular file where a blob link belongs
// is moved into shared-blobs when its MD5 matches and linked; a wrong or
// outside blob link is replaced when the blob is good; a wrong dependency
// link is re-pointed at its recorded, unchanged target.
func (m *Maintainer) Verify(ctx context.Context, opts VerifyOptions) (*VerifyReport, error) {
	if opts.Repair && m.offline() {
		return nil, errOffline("verify --repair")
	}
	inv, err := m.scan(ctx)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Models: append([]string{}, opts.ModelIDs...), Full: opts.Full, Repair: opts.Repair,
		PartialPackages: []string{}, Findings: []Finding{}}
	if rep.Models == nil {
		rep.Models = []string{}
	}
	v := &verifier{m: m, inv: inv, opts: opts, rep: rep, blobOK: map[string]error{}}

	pkgs, records, blobs := inv.Packages, inv.Records, map[string]bool{}
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
		if inv.BlobsErr != nil {
			rep.add(Finding{Kind: FindUnsafeDir, Path: m.home.SharedBlobs(), Detail: inv.BlobsErr.Error()})
		}
		for _, se := range inv.SBEntries {
			if se.Kind == blobfs.KindBlob && !se.node.isRegular() {
				rep.add(Finding{Kind: FindBlobNotRegular, Path: se.node.Path, MD5: se.MD5,
					Detail: "not a regular file under a blob name; never followed (remove it by hand)"})
			}
		}
	}

	// Blobs first: link checks use their verdicts.
	sorted := make([]string, 0, len(blobs))
	for md5 := range blobs {
		sorted = append(sorted, md5)
	}
	sort.Strings(sorted)
	for _, md5 := range sorted {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v.checkBlob(ctx, md5)
	}
	for _, p := range pkgs {
		if err := v.checkPackage(ctx, p); err != nil {
			return nil, err
		}
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
	for _, f := range rep.Findings {
		if !f.Repaired {
			rep.Problems++
		}
	}
	rep.OK = rep.Problems == 0
	return rep, nil
}

type verifier struct {
	m    *Maintainer
	inv  *inventory
	opts VerifyOptions
	rep  *VerifyReport
	// blobOK: nil for a blob that verified, else why not; absent: unchecked.
	blobOK map[string]error
}

var errBlobMissing = errors.New("blob is missing")

// checkBlob verifies one blob (or trusts its matching stamp) and, with
// Repair, deletes it when corrupt.
func (v *verifier) checkBlob(ctx context.Context, md5 string) {
	m := v.m
	if _, done := v.blobOK[md5]; done {
		return
	}
	b := v.inv.Blobs[md5]
	if b == nil {
		v.blobOK[md5] = errBlobMissing
		return
	}
	v.rep.Blobs++
	if !v.opts.Full {
		if st, ok, _ := ReadVerifiedStamp(m.home, md5); ok {
			if id, err := fsx.LstatID(b.Path); err == nil && id.IsRegular() && st.Matches(id) {
				v.rep.BlobsStamped++
				v.blobOK[md5] = nil
				return
			}
		}
	}
	sum, sha, id, err := hashFile(ctx, b.Path)
	v.rep.BlobsHashed++
	v.rep.BytesHashed += id.Size
	if err != nil {
		v.blobOK[md5] = err
		v.rep.add(Finding{Kind: FindBlobUnreadable, Path: b.Path, MD5: md5, Detail: err.Error()})
		return
	}
	if sum == md5 {
		v.blobOK[md5] = nil
		if !m.offline() {
			if err := WriteVerifiedStamp(m.home, NewVerifiedStamp(md5, sha, id, m.now())); err != nil {
				m.log.Warn("writing verified stamp failed", "md5", md5, "err", err)
			}
		}
		return
	}
	bad := &blobstore.DigestMismatchError{Expected: md5, Actual: sum, Size: id.Size}
	v.blobOK[md5] = bad
	f := Finding{Kind: FindBlobCorrupt, Path: b.Path, MD5: md5,
		Detail: fmt.Sprintf("content hashes to %s over %d bytes, not to its name; every load of a package using it fails", sum, id.Size)}
	if !m.offline() {
		_ = RemoveVerifiedStamp(m.home, md5)
	}
	if v.opts.Repair {
		removed, err := m.c.Blobs.Repair(ctx, md5)
		switch {
		case err != nil:
			f.Action = "repair failed: " + err.Error()
		case removed:
			f.Repaired, f.Action = true, "moved aside and deleted; the next online load downloads it again"
			v.blobOK[md5] = errBlobMissing
		default:
			f.Repaired, f.Action = true, "a good copy replaced it concurrently"
			v.blobOK[md5] = nil
		}
	}
	v.rep.add(f)
}

// hashFile reads a regular file once (no symlink followed, identity checked)
// and returns its MD5 and SHA-256.
func hashFile(ctx context.Context, p string) (md5hex, sha256hex string, id fsx.FileID, err error) {
	h5, h256 := md5.New(), sha256.New()
	id, err = fsx.StableHash(ctx, p, io.MultiWriter(h5, h256))
	if err != nil {
		return "", "", id, err
	}
	return hex.EncodeToString(h5.Sum(nil)), hex.EncodeToString(h256.Sum(nil)), id, nil
}

// checkPackage verifies one package dir, repairing under its
// materialization lock when asked.
func (v *verifier) checkPackage(ctx context.Context, p *pkgScan) error {
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
			declared[filepath.Join(layout.DependenciesDir, dp.Name)] = true
			if f, ok := v.checkDependency(ctx, p, dp); !ok {
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
		add(Finding{Kind: FindOutsideLink, Path: filepath.Join(p.Dir, rel), Handle: rel,
			Detail: "undeclared symlink leading outside the cache; never followed, not removed by repair"})
	}
	if v.opts.Repair && needsRepair(findings) {
		v.repairPackage(ctx, p, findings)
	}
	for _, f := range findings {
		v.rep.add(f)
	}
	return nil
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
	if err := handleParentsSafe(p.Dir, a.FileHandle); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Kind, f.Detail = FindNotAFile, "a parent directory of the handle is not a real directory; never followed: "+err.Error()
		return f, false
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		f.Kind, f.Detail = FindMissingFile, "declared file is absent; the next online load downloads it"
		return f, false
	}
	if err != nil {
		f.Kind, f.Detail = FindNotAFile, err.Error()
		return f, false
	}
	if a.Storage == manifest.StorageSharedBlob && a.MD5Hash != nil {
		return v.checkBlobLink(ctx, p, path, fi, f)
	}
	if !fi.Mode().IsRegular() {
		f.Kind, f.Detail = FindNotAFile, fmt.Sprintf("a package file is a %s; never followed", describeMode(fi))
		if li, ok := p.Links[a.FileHandle]; ok && !li.Inside {
			f.Kind = FindOutsideLink
		}
		return f, false
	}
	sum, sha, _, err := hashFile(ctx, path)
	v.rep.BytesHashed += fi.Size()
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

func describeMode(fi fs.FileInfo) string {
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.IsDir():
		return "directory"
	}
	return "special file"
}

// checkBlobLink: the handle is a symlink, its real path is the blob's, and
// the blob verified (§7 step 6, §11.1).
func (v *verifier) checkBlobLink(ctx context.Context, p *pkgScan, path string, fi fs.FileInfo, f Finding) (Finding, bool) {
	md5 := f.MD5
	if fi.Mode().IsRegular() {
		f.Kind = FindFileInLinkPlace
		f.Detail = "a regular file sits where the link to blob " + md5 + " belongs (the reference fails this package until fixed)"
		return f, false
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		f.Kind, f.Detail = FindNotAFile, "a "+describeMode(fi)+" sits where the link to blob "+md5+" belongs"
		return f, false
	}
	li := p.Links[f.Handle]
	if !li.Inside {
		f.Kind, f.Detail = FindOutsideLink, "link leads outside the cache instead of to blob "+md5+"; never followed"
		return f, false
	}
	v.checkBlob(ctx, md5)
	blobPath, _ := v.m.c.Blobs.Path(md5)
	if !li.OurBlob || li.BlobMD5 != md5 {
		f.Kind, f.Detail = FindWrongLink, "link does not lead to blob "+md5
		return f, false
	}
	if errors.Is(v.blobOK[md5], errBlobMissing) {
		f.Kind, f.Detail = FindMissingBlob, "blob "+md5+" is missing; the next online load downloads it again"
		return f, false
	}
	if same, err := sameRealPath(path, blobPath); err != nil || !same {
		f.Kind, f.Detail = FindWrongLink, "link does not resolve to "+blobPath
		return f, false
	}
	// A corrupt blob is reported once, on the blob itself.
	return f, true
}

func sameRealPath(a, b string) (bool, error) {
	ra, err := filepath.EvalSymlinks(a)
	if err != nil {
		return false, err
	}
	rb, err := filepath.EvalSymlinks(b)
	if err != nil {
		return false, err
	}
	return ra == rb, nil
}

// checkDependency: the link resolves to the recorded target, inside the
// cache, whose manifest still has the recorded hash (§11.2).
func (v *verifier) checkDependency(ctx context.Context, p *pkgScan, dp manifest.DependencyPath) (Finding, bool) {
	link, err := layout.DependencyLinkPath(p.Dir, dp.Name)
	if err != nil {
		return Finding{Kind: FindManifestBroken, Path: p.Dir, Detail: err.Error()}, false
	}
	f := Finding{Kind: FindDependency, Path: link, Handle: filepath.Join(layout.DependenciesDir, dp.Name)}
	if err := handleParentsSafe(p.Dir, f.Handle); err != nil && !errors.Is(err, fs.ErrNotExist) {
		f.Detail = "model_dependencies is not a real directory; never followed: " + err.Error()
		return f, false
	}
	fi, err := os.Lstat(link)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.Detail = "dependency link is missing"
		return f, false
	case err != nil:
		f.Detail = err.Error()
		return f, false
	case fi.Mode()&fs.ModeSymlink == 0:
		f.Detail = "not a symlink where the dependency link belongs"
		return f, false
	}
	if !within(dp.TargetPath, v.inv.RealHome) && !within(dp.TargetPath, filepath.Clean(v.m.home.Root)) {
		f.Detail = "recorded target " + dp.TargetPath + " is outside the cache (was the cache moved?); not read"
		return f, false
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil || real != dp.TargetPath {
		f.Detail = fmt.Sprintf("link resolves to %q, recorded target is %s", real, dp.TargetPath)
		return f, false
	}
	mf, err := manifest.Read(ctx, real)
	if err != nil {
		f.Detail = "dependency manifest: " + err.Error()
		return f, false
	}
	if h := mf.ContentHash(); h != dp.PackageManifestHash {
		f.Detail = fmt.Sprintf("dependency manifest hash %s, recorded %s: the dependency changed; purge this package to re-materialize it", h, dp.PackageManifestHash)
		return f, false
	}
	return f, true
}
