package ocibundle

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Progress event kinds, in the order an import reaches them.
const (
	EventVerified     = "verified"     // a blob's bytes matched its sha256, size and MD5
	EventPublished    = "published"    // a verified blob became shared-blobs/<md5>
	EventMaterialized = "materialized" // a package dir got its manifest
	EventRecorded     = "recorded"     // a model's offline-weights record was written
)

// Event reports import progress.
type Event struct {
	Kind      string `json:"event"`
	ModelID   string `json:"model_id,omitempty"`
	PackageID string `json:"package_id,omitempty"`
	Digest    string `json:"digest,omitempty"`
	MD5       string `json:"md5,omitempty"`
	Bytes     int64  `json:"bytes,omitempty"`
}

// Options configure Import.
type Options struct {
	// Source is the offline-weights record source (offlinereg.SourceImport
	// or offlinereg.SourceOCIPull).
	Source string
	// SkipPresentBlobs does not fetch blobs shared-blobs already has (a
	// registry pull); their bytes are re-hashed at materialization instead.
	// Without it every blob of the source is read and verified.
	SkipPresentBlobs bool
	// Concurrency bounds parallel blob transfers (default 4).
	Concurrency int
	// Progress, if set, receives events (from one goroutine at a time).
	Progress func(Event)
	// Now stamps the records (default time.Now).
	Now    func() time.Time
	Limits Limits
}

// ImportedPackage is one package an import materialized.
type ImportedPackage struct {
	CanonicalModelID string   `json:"canonical_model_id"`
	CacheModelID     string   `json:"cache_model_id"`
	PackageID        string   `json:"package_id"`
	Dir              string   `json:"dir"`
	Aliases          []string `json:"aliases"`
	MetadataSource   string   `json:"metadata_source"`
}

// Result summarises an import.
type Result struct {
	Packages       []ImportedPackage `json:"packages"`
	BlobsVerified  int               `json:"blobs_verified"`
	BlobsPublished int               `json:"blobs_published"`
	BlobsSkipped   int               `json:"blobs_skipped"`
	BytesVerified  int64             `json:"bytes_verified"`
}

type importer struct {
	c    *cache.Cache
	f    fetcher
	opts Options
	mu   sync.Mutex
	res  Result
	// verified identities of blobs this import published (materialize skips re-reading them)
	published map[string]fsx.FileID
}

// Import brings the packages reachable from roots into the cache. Order:
// read and check all metadata; fetch and verify every blob into private
// partials (sha256 and size against the descriptor, MD5 against the
// provider annotation) — any failure removes them all and publishes
// nothing; commit the partials; materialize each package (dependencies
// first) under its lock, manifest last; write the offline-weights records.
// Re-running an import is harmless and completes an interrupted one.
func Import(ctx context.Context, c *cache.Cache, f fetcher, roots []ocispec.Descriptor, opts Options) (*Result, error) {
	if c.Config.Offline {
		return nil, fmt.Errorf("%w: importing writes the cache, which OFFLINE_MODE forbids; run the import without OFFLINE_MODE (it needs no network)", errdefs.ErrOffline)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Source == "" {
		opts.Source = offlinereg.SourceImport
	}
	opts.Limits = opts.Limits.withDefaults()
	im := &importer{c: c, f: f, opts: opts, published: map[string]fsx.FileID{}}
	pkgs, err := readPlan(ctx, f, roots, opts.Limits.MaxMetadataSize)
	if err != nil {
		return nil, err
	}
	if err := im.checkDependencies(ctx, pkgs); err != nil {
		return nil, err
	}
	staged, err := im.stage(ctx, pkgs)
	if err != nil {
		return nil, err
	}
	if err := im.commit(ctx, staged); err != nil {
		return nil, err
	}
	for _, p := range pkgs {
		if err := im.materialize(ctx, p); err != nil {
			return nil, err
		}
	}
	if err := im.record(ctx, pkgs); err != nil {
		return nil, err
	}
	return &im.res, nil
}

func (im *importer) emit(e Event) {
	if im.opts.Progress == nil {
		return
	}
	im.mu.Lock()
	defer im.mu.Unlock()
	im.opts.Progress(e)
}

// checkDependencies: every dependency package is in the bundle or already
// complete in the cache.
func (im *importer) checkDependencies(ctx context.Context, pkgs []*planPackage) error {
	have := map[string]bool{}
	for _, p := range pkgs {
		have[p.key()] = true
	}
	for _, p := range pkgs {
		for _, d := range p.doc.Dependencies {
			if have[d.CacheModelID+"\x00"+d.PackageID] {
				continue
			}
			dir, err := im.c.Home.PackageDir(d.CacheModelID, d.PackageID)
			if err != nil {
				return err
			}
			if m, err := manifest.Read(ctx, dir); err != nil || !m.Complete() {
				return &PackageError{ModelID: p.doc.CanonicalModelID, PackageID: p.doc.PackageID, Err: ErrMissingBlob,
					Detail: fmt.Sprintf("dependency %q (%s package %s) is neither in the bundle nor in this cache", d.Name, d.CacheModelID, d.PackageID)}
			}
		}
	}
	return nil
}

type stagedBlob struct {
	md5, sha256 string
	size        int64
	partial     string // "" when the blob was already present
}

// stage fetches and verifies every distinct layer blob, writing the missing
// ones to partials. On any failure every partial is removed.
func (im *importer) stage(ctx context.Context, pkgs []*planPackage) ([]*stagedBlob, error) {
	type job struct {
		l   planLayer
		pkg string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, p := range pkgs {
		for _, l := range p.layers {
			if !seen[l.desc.Digest.String()] {
				seen[l.desc.Digest.String()] = true
				jobs = append(jobs, job{l, p.doc.PackageID})
			}
		}
	}
	var (
		mu     sync.Mutex
		staged []*stagedBlob
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.opts.Concurrency)
	for _, j := range jobs {
		g.Go(func() error {
			present, err := im.c.Blobs.Has(j.l.md5)
			if err != nil {
				return err
			}
			if present && im.opts.SkipPresentBlobs {
				mu.Lock()
				im.res.BlobsSkipped++
				mu.Unlock()
				return nil
			}
			sb, err := im.fetchBlob(gctx, j.l, j.pkg, !present)
			if sb != nil {
				mu.Lock()
				staged = append(staged, sb)
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		for _, sb := range staged {
			if sb.partial != "" {
				os.Remove(sb.partial)
			}
		}
		return nil, err
	}
	return staged, nil
}

// fetchBlob streams one layer through the sha256/size and MD5 checks, into
// a partial when write is set (else it only verifies).
func (im *importer) fetchBlob(ctx context.Context, l planLayer, pkg string, write bool) (*stagedBlob, error) {
	if l.desc.Size > im.opts.Limits.MaxBlobSize {
		return nil, &BlobError{Digest: l.desc.Digest.String(), Handle: l.handle, Package: pkg, Err: ErrTooLarge,
			Detail: fmt.Sprintf("%d bytes, above the %d-byte limit", l.desc.Size, im.opts.Limits.MaxBlobSize)}
	}
	rc, err := im.f.Fetch(ctx, l.desc)
	if err != nil {
		return nil, err
	}
	vr, err := newVerifyingReader(rc, l.desc)
	if err != nil {
		return nil, err
	}
	defer vr.Close()
	vr.Handle, vr.Package = l.handle, pkg
	sb := &stagedBlob{md5: l.md5, sha256: l.desc.Digest.Encoded(), size: l.desc.Size}
	var w io.Writer = io.Discard
	var part *os.File
	if write {
		if part, err = im.c.Blobs.CreatePartial(l.md5); err != nil {
			return nil, err
		}
		sb.partial = part.Name()
		w = part
	}
	hm := md5.New()
	_, err = io.Copy(io.MultiWriter(w, hm), fsx.ContextReader(ctx, vr))
	if part != nil {
		if cerr := part.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = checkMD5(hm, l, pkg)
	}
	if err != nil {
		if sb.partial != "" {
			os.Remove(sb.partial)
		}
		return nil, err
	}
	im.mu.Lock()
	im.res.BlobsVerified++
	im.res.BytesVerified += l.desc.Size
	im.mu.Unlock()
	im.emit(Event{Kind: EventVerified, PackageID: pkg, Digest: l.desc.Digest.String(), MD5: l.md5, Bytes: l.desc.Size})
	return sb, nil
}

func checkMD5(h hash.Hash, l planLayer, pkg string) error {
	if got := hex.EncodeToString(h.Sum(nil)); got != l.md5 {
		return &BlobError{Digest: l.desc.Digest.String(), Handle: l.handle, Package: pkg, Err: errdefs.ErrDigestMismatch,
			Detail: fmt.Sprintf("bytes have MD5 %s, the provider MD5 is %s", got, l.md5)}
	}
	return nil
}

// commit publishes the verified partials.
func (im *importer) commit(ctx context.Context, staged []*stagedBlob) error {
	var firstErr error
	for _, sb := range staged {
		if sb.partial == "" {
			continue
		}
		if firstErr != nil {
			os.Remove(sb.partial)
			continue
		}
		res, err := im.c.Blobs.Commit(ctx, sb.md5, sb.partial, sb.size, &blobfs.Digests{MD5: sb.md5, SHA256: sb.sha256})
		if err != nil {
			firstErr = err
			continue
		}
		if res.Published {
			im.published[sb.md5] = res.File
			im.res.BlobsPublished++
			im.emit(Event{Kind: EventPublished, MD5: sb.md5, Bytes: sb.size})
		}
	}
	return firstErr
}

// materialize builds one package dir from the (now present) blobs, as a
// download would: links, re-verification of blobs this import did not
// publish, dependency links, manifest last.
func (im *importer) materialize(ctx context.Context, p *planPackage) error {
	doc := p.doc
	arts := make([]metadata.Artifact, 0, len(p.layers))
	byMD5 := map[string]planLayer{}
	for _, l := range p.layers {
		md5 := l.md5
		arts = append(arts, metadata.Artifact{FileHandle: l.handle, MD5Hash: &md5})
		byMD5[l.md5] = l
	}
	var deps []materialize.Dependency
	for _, d := range doc.Dependencies {
		dir, err := im.c.Home.PackageDir(d.CacheModelID, d.PackageID)
		if err != nil {
			return err
		}
		deps = append(deps, materialize.Dependency{Name: d.Name, PackageDir: dir})
	}
	req := materialize.Request{
		CacheOwner: doc.CacheModelID, CanonicalModelID: doc.CanonicalModelID, PackageID: doc.PackageID,
		Artifacts: arts, Manifest: doc.Spec(), Dependencies: deps, Verified: im.published,
	}
	// A blob found corrupt at step 6 (one that was already in this cache) is
	// repaired from the source, through the same checks.
	fetch := func(ctx context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
		l, ok := byMD5[a.MD5()]
		if !ok {
			return nil, 0, fmt.Errorf("blob %s is not in the source", a.MD5())
		}
		rc, err := im.f.Fetch(ctx, l.desc)
		if err != nil {
			return nil, 0, err
		}
		vr, err := newVerifyingReader(rc, l.desc)
		if err != nil {
			return nil, 0, err
		}
		vr.Handle, vr.Package = l.handle, doc.PackageID
		return vr, l.desc.Size, nil
	}
	res, err := im.c.Packages.Materialize(ctx, req, materialize.StreamSource(im.c.Blobs, fetch), materialize.Hooks{})
	if err != nil {
		var re *manifest.RefusalError
		if errors.As(err, &re) {
			return fmt.Errorf("package %s of %s: this cache already holds a different package under the same id: %w", doc.PackageID, doc.CacheModelID, err)
		}
		return fmt.Errorf("package %s of %s: %w", doc.PackageID, doc.CacheModelID, err)
	}
	im.res.Packages = append(im.res.Packages, ImportedPackage{CanonicalModelID: doc.CanonicalModelID, CacheModelID: doc.CacheModelID,
		PackageID: doc.PackageID, Dir: res.PackageDir, Aliases: doc.Aliases, MetadataSource: doc.MetadataSource})
	im.emit(Event{Kind: EventMaterialized, ModelID: doc.CanonicalModelID, PackageID: doc.PackageID})
	return nil
}

// record writes one offline-weights record per canonical model. Metadata
// the provider announced (fetched at export, or recorded by a warm-up) wins
// over metadata rebuilt from a manifest, which never replaces a package the
// target's record already has.
func (im *importer) record(ctx context.Context, pkgs []*planPackage) error {
	rank := map[string]int{MetadataFromProvider: 2, MetadataFromRegistry: 1, MetadataFromManifest: 0}
	byModel := map[string]*offlinereg.ImportedModel{}
	modelRank := map[string]int{}
	var order []string
	for _, p := range pkgs {
		id := p.doc.CanonicalModelID
		m, ok := byModel[id]
		if !ok {
			m = &offlinereg.ImportedModel{CanonicalModelID: id, Model: p.doc.Model, Source: im.opts.Source}
			byModel[id], modelRank[id] = m, rank[p.doc.MetadataSource]
			order = append(order, id)
		}
		if r := rank[p.doc.MetadataSource]; r > modelRank[id] {
			m.Model, modelRank[id] = p.doc.Model, r
		}
		m.Aliases = sortedUnique(append(m.Aliases, p.doc.Aliases...), id)
		if p.doc.MetadataSource == MetadataFromManifest && im.storedPackage(ctx, id, p.doc.PackageID) {
			continue
		}
		m.Packages = append(m.Packages, p.doc.Package)
	}
	for _, id := range order {
		m := byModel[id]
		if len(m.Packages) == 0 {
			continue // every package is already recorded with the provider's metadata
		}
		if modelRank[id] == 0 && im.storedPackage(ctx, id, "") {
			m.Model = pyjson.NewObject() // absent fields keep the stored ones
		}
		if err := im.c.Registry.RecordImported(ctx, *m, im.opts.Now()); err != nil {
			return fmt.Errorf("packages of %s are in the cache, but its offline-weights record was not written (run the import again): %w", id, err)
		}
		im.emit(Event{Kind: EventRecorded, ModelID: id})
	}
	return nil
}

// storedPackage reports whether the target's record of model lists
// packageID ("" = whether there is a usable record at all).
func (im *importer) storedPackage(ctx context.Context, model, packageID string) bool {
	md, err := im.c.Registry.LoadModelMetadata(ctx, model)
	if err != nil || md == nil || md.ModelID != model {
		return false
	}
	if packageID == "" {
		return true
	}
	_, ok := md.Package(packageID)
	return ok
}
