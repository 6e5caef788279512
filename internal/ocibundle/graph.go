package ocibundle

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelcache/modelcache/internal/fsx"
)

// Graph is the OCI content of a set of packages: one manifest per package,
// its ModelPack config and its layers. Blobs are stored once however many
// packages share them. Everything is deterministic: the same packages give
// the same digests.
type Graph struct {
	// Manifests describes the package manifests, sorted by model id and
	// package id, annotated for an index.json.
	Manifests []ocispec.Descriptor
	blobs     map[digest.Digest]graphBlob
}

type graphBlob struct {
	desc ocispec.Descriptor
	data []byte // manifests and configs
	path string // layers: the shared-blobs file
}

// modelPackConfig is the ModelPack config (application/vnd.cncf.model.config.v1+json).
type modelPackConfig struct {
	Descriptor struct {
		Name    string `json:"name,omitempty"`
		Family  string `json:"family,omitempty"`
		Version string `json:"version,omitempty"`
	} `json:"descriptor"`
	ModelFS struct {
		Type    string          `json:"type"`
		DiffIDs []digest.Digest `json:"diffIds"`
	} `json:"modelfs"`
	Config struct {
		Format    string `json:"format,omitempty"`
		Precision string `json:"precision,omitempty"`
	} `json:"config"`
}

// BuildGraph builds the OCI content of pkgs.
func BuildGraph(pkgs []*Package) (*Graph, error) {
	g := &Graph{blobs: map[digest.Digest]graphBlob{}}
	sorted := append([]*Package(nil), pkgs...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i].Doc, sorted[j].Doc
		if a.CanonicalModelID != b.CanonicalModelID {
			return a.CanonicalModelID < b.CanonicalModelID
		}
		return a.PackageID < b.PackageID
	})
	refNames := map[string]int{}
	for _, p := range sorted {
		refNames[p.Doc.PackageID]++
	}
	for _, p := range sorted {
		desc, err := g.addPackage(p)
		if err != nil {
			return nil, err
		}
		desc.Annotations = map[string]string{
			AnnotationModelID:   p.Doc.CanonicalModelID,
			AnnotationPackageID: p.Doc.PackageID,
		}
		// A package id names the manifest when it is a valid tag and unique here.
		if refNames[p.Doc.PackageID] == 1 && len(p.Doc.PackageID) <= 128 {
			desc.Annotations[AnnotationRefName] = p.Doc.PackageID
		}
		g.Manifests = append(g.Manifests, desc)
	}
	return g, nil
}

func (g *Graph) addPackage(p *Package) (ocispec.Descriptor, error) {
	docJSON, err := p.Doc.Marshal()
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("package %s: %w", p.Doc.PackageID, err)
	}
	var cfg modelPackConfig
	cfg.Descriptor.Name = p.Doc.CanonicalModelID
	cfg.Descriptor.Version = p.Doc.PackageID
	if arch, ok := p.Doc.Manifest.Get("model_architecture"); ok {
		cfg.Descriptor.Family, _ = arch.(string)
	}
	if b, ok := p.Doc.Manifest.Get("backend_type"); ok {
		cfg.Config.Format, _ = b.(string)
	}
	if q, ok := p.Doc.Manifest.Get("quantization"); ok && q != "unknown" {
		cfg.Config.Precision, _ = q.(string)
	}
	cfg.ModelFS.Type = "layers"
	layers := make([]ocispec.Descriptor, 0, len(p.Layers))
	for _, l := range p.Layers {
		d := ocispec.Descriptor{
			MediaType: layerMediaType(l.Handle), Digest: l.Digest, Size: l.Size,
			Annotations: map[string]string{AnnotationTitle: l.Handle, AnnotationModelFilepath: l.Handle, AnnotationMD5: l.MD5},
		}
		layers = append(layers, d)
		cfg.ModelFS.DiffIDs = append(cfg.ModelFS.DiffIDs, l.Digest)
		g.blobs[l.Digest] = graphBlob{desc: ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, path: l.Path}
	}
	if cfg.ModelFS.DiffIDs == nil {
		cfg.ModelFS.DiffIDs = []digest.Digest{}
	}
	cfgDesc, err := g.addJSON(MediaTypeModelConfig, cfg)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	m := ocispec.Manifest{
		Versioned:    specs.Versioned{SchemaVersion: 2},
		MediaType:    MediaTypeOCIManifest,
		ArtifactType: ArtifactTypeModelManifest,
		Config:       cfgDesc,
		Layers:       layers,
		Annotations: map[string]string{
			AnnotationPackage:   string(docJSON),
			AnnotationModelID:   p.Doc.CanonicalModelID,
			AnnotationPackageID: p.Doc.PackageID,
		},
	}
	d, err := g.addJSON(MediaTypeOCIManifest, m)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d.ArtifactType = ArtifactTypeModelManifest
	return d, nil
}

// addJSON stores v as a blob (encoding/json: struct fields in declaration
// order, map keys sorted, so the bytes are deterministic).
func (g *Graph) addJSON(mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	g.blobs[d.Digest] = graphBlob{desc: d, data: data}
	return d, nil
}

// Root returns the descriptor a registry tag should point at: the package
// manifest for one package, else an image index of all of them (added to
// the graph).
func (g *Graph) Root() (ocispec.Descriptor, error) {
	if len(g.Manifests) == 1 {
		d := g.Manifests[0]
		d.Annotations = nil
		return d, nil
	}
	idx := g.index()
	idx.ArtifactType = ArtifactTypeBundleIndex
	d, err := g.addJSON(MediaTypeOCIIndex, idx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d.ArtifactType = ArtifactTypeBundleIndex
	return d, nil
}

func (g *Graph) index() ocispec.Index {
	return ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: MediaTypeOCIIndex, Manifests: g.Manifests}
}

// Fetch implements content.Fetcher over the graph: JSON blobs from memory,
// layers from their shared-blobs file (refused if it changed size since it
// was collected; the reader checks the digest).
func (g *Graph) Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error) {
	b, ok := g.blobs[target.Digest]
	if !ok {
		return nil, &BlobError{Digest: target.Digest.String(), Err: ErrMissingBlob, Detail: "not part of the exported packages"}
	}
	if b.data != nil {
		return io.NopCloser(bytes.NewReader(b.data)), nil
	}
	f, err := fsx.OpenNoFollow(b.path)
	if err != nil {
		return nil, err
	}
	if fi, err := f.Stat(); err != nil || fi.Size() != b.desc.Size {
		f.Close()
		return nil, fmt.Errorf("blob %s changed since it was read (size %v, expected %d); export again", b.path, sizeOf(fi), b.desc.Size)
	}
	return &verifyingReader{r: fsx.ContextReadCloser(ctx, f), desc: b.desc, h: digest.SHA256.Digester()}, nil
}

// Exists implements content.Storage's Exists for oras.CopyGraph.
func (g *Graph) Exists(_ context.Context, target ocispec.Descriptor) (bool, error) {
	_, ok := g.blobs[target.Digest]
	return ok, nil
}

// blobDescs returns every blob, JSON blobs first, each group by digest.
func (g *Graph) blobDescs() []graphBlob {
	out := make([]graphBlob, 0, len(g.blobs))
	for _, b := range g.blobs {
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].data != nil) != (out[j].data != nil) {
			return out[i].data != nil
		}
		return out[i].desc.Digest < out[j].desc.Digest
	})
	return out
}

func sizeOf(fi interface{ Size() int64 }) any {
	if fi == nil {
		return "unknown"
	}
	return fi.Size()
}
