package ocibundle

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
)

type planLayer struct {
	desc        ocispec.Descriptor
	handle, md5 string
}

type planPackage struct {
	doc      *Document
	manifest ocispec.Descriptor
	layers   []planLayer
}

func (p *planPackage) key() string { return p.doc.CacheModelID + "\x00" + p.doc.PackageID }

// readPlan reads and checks every manifest reachable from roots (package
// manifests, or image indexes of them) and returns the packages, each
// dependency before its dependents. Manifests and configs are verified
// against their descriptors; layers are checked for shape only here.
func readPlan(ctx context.Context, f fetcher, roots []ocispec.Descriptor, maxMeta int64) ([]*planPackage, error) {
	var pkgs []*planPackage
	seen := map[string]*planPackage{}
	var visit func(d ocispec.Descriptor, depth int) error
	visit = func(d ocispec.Descriptor, depth int) error {
		switch d.MediaType {
		case MediaTypeOCIIndex:
			if depth > 0 {
				return invalid("index %s nests another index; a bundle index lists package manifests only", d.Digest)
			}
			data, err := readMetadata(ctx, f, d, maxMeta)
			if err != nil {
				return err
			}
			var idx ocispec.Index
			if err := json.Unmarshal(data, &idx); err != nil || idx.SchemaVersion != 2 {
				return invalid("index %s is not an OCI image index", d.Digest)
			}
			for _, m := range idx.Manifests {
				if err := visit(m, depth+1); err != nil {
					return err
				}
			}
			return nil
		case MediaTypeOCIManifest:
			p, err := readPackage(ctx, f, d, maxMeta)
			if err != nil {
				return err
			}
			if prev, ok := seen[p.key()]; ok {
				if prev.manifest.Digest != p.manifest.Digest {
					return invalid("package %s of %s appears twice with different content", p.doc.PackageID, p.doc.CacheModelID)
				}
				return nil
			}
			seen[p.key()] = p
			pkgs = append(pkgs, p)
			return nil
		}
		return fmt.Errorf("%w: %s has media type %q; modelcache reads OCI image manifests and indexes", ErrNotModelcache, d.Digest, d.MediaType)
	}
	for _, r := range roots {
		if err := visit(r, 0); err != nil {
			return nil, err
		}
	}
	if err := checkLayerDigests(pkgs); err != nil {
		return nil, err
	}
	// Dependencies first (depth 1 by the manifest contract), then by id.
	sort.SliceStable(pkgs, func(i, j int) bool {
		a, b := len(pkgs[i].doc.Dependencies) > 0, len(pkgs[j].doc.Dependencies) > 0
		if a != b {
			return !a
		}
		return pkgs[i].key() < pkgs[j].key()
	})
	return pkgs, nil
}

func readPackage(ctx context.Context, f fetcher, d ocispec.Descriptor, maxMeta int64) (*planPackage, error) {
	data, err := readMetadata(ctx, f, d, maxMeta)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil || m.SchemaVersion != 2 || m.MediaType != MediaTypeOCIManifest {
		return nil, invalid("manifest %s is not an OCI image manifest", d.Digest)
	}
	docJSON, ok := m.Annotations[AnnotationPackage]
	if m.ArtifactType != ArtifactTypeModelManifest || !ok {
		return nil, fmt.Errorf("%w: manifest %s (artifactType %q) has no %s annotation", ErrNotModelcache, d.Digest, m.ArtifactType, AnnotationPackage)
	}
	doc, err := ParseDocument([]byte(docJSON))
	if err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	if m.Config.MediaType != MediaTypeModelConfig {
		return nil, invalid("manifest %s: config media type %q, want %q", d.Digest, m.Config.MediaType, MediaTypeModelConfig)
	}
	cfg, err := readMetadata(ctx, f, m.Config, maxMeta)
	if err != nil {
		return nil, err
	}
	if !json.Valid(cfg) {
		return nil, invalid("manifest %s: config is not JSON", d.Digest)
	}
	p := &planPackage{doc: doc, manifest: d}
	want := map[string]string{}
	for _, a := range doc.Files() {
		want[a.FileHandle] = *a.MD5Hash
	}
	for _, l := range m.Layers {
		title, md5sum := l.Annotations[AnnotationTitle], l.Annotations[AnnotationMD5]
		lerr := func(err error, format string, args ...any) error {
			return &BlobError{Digest: l.Digest.String(), Handle: title, Package: doc.PackageID, Err: err, Detail: fmt.Sprintf(format, args...)}
		}
		if err := layout.ValidateHandle(title); err != nil {
			return nil, lerr(errdefs.ErrInsecureIdentifier, "title is not a safe file handle: %v", err)
		}
		if err := checkDigest(l.Digest); err != nil {
			return nil, lerr(ErrInvalid, "%v", err)
		}
		if !isLayerMediaType(l.MediaType) {
			return nil, lerr(ErrInvalid, "media type %q is not a raw ModelPack layer", l.MediaType)
		}
		if layout.ValidateMD5(md5sum) != nil {
			return nil, lerr(ErrInvalid, "%s annotation %q is not a provider MD5", AnnotationMD5, md5sum)
		}
		if w, ok := want[title]; !ok || w != md5sum {
			return nil, lerr(ErrInvalid, "not a file of the package manifest with this MD5")
		}
		if l.Size < 0 {
			return nil, lerr(ErrInvalid, "negative size")
		}
		delete(want, title)
		p.layers = append(p.layers, planLayer{desc: l, handle: title, md5: md5sum})
	}
	for h := range want {
		return nil, &PackageError{ModelID: doc.CanonicalModelID, PackageID: doc.PackageID, Err: ErrMissingBlob, Detail: fmt.Sprintf("file %q of the package manifest has no layer", h)}
	}
	return p, nil
}

// checkLayerDigests refuses one sha256 announced with two MD5s or sizes.
func checkLayerDigests(pkgs []*planPackage) error {
	type id struct {
		md5  string
		size int64
	}
	seen := map[string]id{}
	for _, p := range pkgs {
		for _, l := range p.layers {
			k := l.desc.Digest.String()
			if prev, ok := seen[k]; ok && prev != (id{l.md5, l.desc.Size}) {
				return &BlobError{Digest: k, Handle: l.handle, Package: p.doc.PackageID, Err: ErrInvalid, Detail: "announced with two different MD5s or sizes"}
			}
			seen[k] = id{l.md5, l.desc.Size}
		}
	}
	return nil
}
