package ocibundle

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/opencontainers/go-digest"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Ref names one package of a cache to export.
type Ref struct {
	// CacheModelID owns the package directory (models-cache/<slug of it>).
	CacheModelID string
	PackageID    string
	// Aliases are ids the model was requested by; the canonical id is
	// dropped from them.
	Aliases []string
	// Metadata, if set, is the provider's current metadata of the model;
	// it is used when it announces the package with the files the cache
	// holds (MetadataFromProvider).
	Metadata *metadata.ModelMetadata
}

// Package is one package ready to be written as an OCI artifact.
type Package struct {
	Doc    *Document
	Layers []Layer
}

// Layer is one file of a package: its handle, provider MD5 and the
// shared-blobs file holding its bytes, with the size and sha256 measured
// when it was collected.
type Layer struct {
	Handle string
	MD5    string
	Size   int64
	Digest digest.Digest
	Path   string
}

// Collect reads the packages refs names (and, recursively, the packages
// their dependency links point at) from the cache. Every file is read once
// to compute its sha256 and check its provider MD5: a corrupt cache is
// refused (run `modelcache verify --repair`), never exported. It needs no
// network.
func Collect(ctx context.Context, c *cache.Cache, refs []Ref) ([]*Package, error) {
	col := &collector{c: c, hashed: map[string]Layer{}, done: map[string]*Package{}}
	queue := append([]Ref(nil), refs...)
	var out []*Package
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		key := r.CacheModelID + "\x00" + r.PackageID
		if p, ok := col.done[key]; ok {
			p.Doc.Aliases = sortedUnique(append(p.Doc.Aliases, r.Aliases...), p.Doc.CanonicalModelID)
			continue
		}
		p, deps, err := col.collect(ctx, r)
		if err != nil {
			return nil, err
		}
		col.done[key] = p
		out = append(out, p)
		queue = append(queue, deps...)
	}
	return out, nil
}

type collector struct {
	c      *cache.Cache
	hashed map[string]Layer // by md5
	done   map[string]*Package
}

func (col *collector) collect(ctx context.Context, r Ref) (*Package, []Ref, error) {
	perr := func(err error, format string, args ...any) error {
		return &PackageError{ModelID: r.CacheModelID, PackageID: r.PackageID, Err: err, Detail: fmt.Sprintf(format, args...)}
	}
	dir, err := col.c.Home.PackageDir(r.CacheModelID, r.PackageID)
	if err != nil {
		return nil, nil, err
	}
	m, err := manifest.Read(ctx, dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, perr(ErrNotInCache, "no package directory with a manifest at %s", dir)
	}
	if err != nil {
		return nil, nil, err
	}
	if !m.Complete() || m.ModelID == nil || m.CanonicalModelID == nil || *m.ModelID != r.CacheModelID {
		return nil, nil, perr(ErrUnsupportedPackage, "%s is not a complete package of %s (pull it again first)", dir, r.CacheModelID)
	}
	canonical := *m.CanonicalModelID
	var unsupported []string
	for _, a := range m.PackageArtifacts {
		if a.Storage != manifest.StorageSharedBlob || a.MD5Hash == nil {
			unsupported = append(unsupported, a.FileHandle)
		}
	}
	if len(unsupported) > 0 {
		return nil, nil, perr(ErrUnsupportedPackage, "files %q have no provider MD5 or are local package files; bundles carry provider-verified shared blobs only", unsupported)
	}
	doc := &Document{CanonicalModelID: canonical, CacheModelID: r.CacheModelID, PackageID: r.PackageID}
	model, payload, aliases, err := col.recorded(ctx, canonical, r.PackageID)
	if err != nil {
		return nil, nil, err
	}
	doc.Aliases = sortedUnique(append(aliases, r.Aliases...), canonical)
	if pm, pp := fromProvider(r.Metadata, m, r.PackageID); pp != nil {
		doc.MetadataSource, doc.Model, doc.Package = MetadataFromProvider, pm, pp
	} else if payload != nil {
		doc.MetadataSource, doc.Model, doc.Package = MetadataFromRegistry, model, payload
	} else {
		rm, rp := reconstruct(m, r.PackageID)
		if model == nil {
			model = rm
		}
		doc.MetadataSource, doc.Model, doc.Package = MetadataFromManifest, model, rp
	}
	doc.Manifest = m.Doc.Clone()
	doc.Manifest.Set("dependency_package_paths", []any{})
	var deps []Ref
	for _, dp := range m.DependencyPackagePaths {
		doc.Dependencies = append(doc.Dependencies, DependencyRef{Name: dp.Name, CacheModelID: dp.CacheModelID,
			CanonicalModelID: dp.CanonicalModelID, PackageID: dp.ModelPackageID})
		deps = append(deps, Ref{CacheModelID: dp.CacheModelID, PackageID: dp.ModelPackageID})
	}
	if err := doc.validate(); err != nil {
		return nil, nil, err
	}
	p := &Package{Doc: doc}
	for _, a := range m.PackageArtifacts {
		l, err := col.hash(ctx, *a.MD5Hash)
		if err != nil {
			return nil, nil, perr(err, "file %q", a.FileHandle)
		}
		l.Handle = a.FileHandle
		p.Layers = append(p.Layers, l)
	}
	return p, deps, nil
}

// fromProvider encodes the provider's metadata of the package when it
// announces exactly the files (handles and MD5s) the cached package has.
func fromProvider(md *metadata.ModelMetadata, m *manifest.Manifest, packageID string) (model, payload *pyjson.Object) {
	if md == nil || md.ModelID != *m.CanonicalModelID {
		return nil, nil
	}
	p, ok := md.Package(packageID)
	if !ok || len(p.Artifacts) != len(m.PackageArtifacts) {
		return nil, nil
	}
	have := map[string]string{}
	for _, a := range m.PackageArtifacts {
		have[a.FileHandle] = *a.MD5Hash
	}
	for _, a := range p.Artifacts {
		if a.MD5Hash == nil || have[a.FileHandle] != *a.MD5Hash {
			return nil, nil
		}
	}
	return offlinereg.EncodeModel(md), offlinereg.EncodePackage(p)
}

// recorded returns the model fields and the package payload of the source
// cache's offline-weights record, when it has one for this model (payload
// nil when the record does not list the package), and its aliases.
func (col *collector) recorded(ctx context.Context, canonical, packageID string) (model, payload *pyjson.Object, aliases []string, err error) {
	rec, err := col.c.Registry.Lookup(ctx, canonical)
	if err != nil {
		return nil, nil, nil, err
	}
	if rec == nil {
		return nil, nil, nil, nil
	}
	if id, ok := rec.CanonicalModelID(); !ok || id != canonical {
		return nil, nil, nil, nil
	}
	mv, _ := rec.Doc.Get("model")
	model, _ = mv.(*pyjson.Object)
	if model != nil {
		if a, _ := model.Get("model_architecture"); a == nil {
			model = nil
		}
	}
	pv, _ := rec.Doc.Get("packages")
	list, _ := pv.([]any)
	for _, x := range list {
		o, ok := x.(*pyjson.Object)
		if !ok {
			continue
		}
		if id, _ := o.Get("package_id"); id == packageID {
			if _, err := offlinereg.DecodePackage(o); err == nil && model != nil {
				payload = o.Clone()
			}
		}
	}
	return model, payload, rec.RequestedAliases(), nil
}

// hash reads blob md5 once (O_NOFOLLOW, stable read) for its sha256 and
// checks its MD5.
func (col *collector) hash(ctx context.Context, md5sum string) (Layer, error) {
	if l, ok := col.hashed[md5sum]; ok {
		return l, nil
	}
	path, err := col.c.Blobs.Path(md5sum)
	if err != nil {
		return Layer{}, err
	}
	hm, hs := md5.New(), sha256.New()
	id, err := fsx.StableHash(ctx, path, io.MultiWriter(hm, hs))
	if err != nil {
		return Layer{}, fmt.Errorf("read blob %s: %w (run `modelcache verify --repair`, then pull the model again)", md5sum, err)
	}
	if got := hex.EncodeToString(hm.Sum(nil)); got != md5sum {
		return Layer{}, fmt.Errorf("blob %s holds bytes with MD5 %s: the cache is corrupt; run `modelcache verify --repair` and pull the model again: %w", md5sum, got, ErrUnsupportedPackage)
	}
	l := Layer{MD5: md5sum, Size: id.Size, Digest: digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(hs.Sum(nil))), Path: path}
	col.hashed[md5sum] = l
	return l, nil
}
