package maintain

import (
	"context"
	md5pkg "crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/blobfs"
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
	inv, err := m.scanWith(ctx, false, false)
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
