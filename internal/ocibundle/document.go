package ocibundle

import (
	"fmt"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Where a Document's model metadata came from.
const (
	// MetadataFromRegistry: the source cache's offline-weights record, i.e.
	// the provider's metadata as recorded by a warm-up load.
	MetadataFromRegistry = "offline-registry"
	// MetadataFromManifest: reconstructed from the package's
	// model_config.json. It lacks model_variant, environment_requirements
	// and the ONNX, TensorRT and TorchScript package details, which
	// negotiation needs for those backends.
	MetadataFromManifest = "package-manifest"
	// MetadataFromProvider: asked from the weights provider at export time
	// (export --fetch-metadata).
	MetadataFromProvider = "provider"
)

const documentVersion = 1

// Document is the modelcache-specific description of one package, carried
// in the manifest annotation AnnotationPackage.
type Document struct {
	CanonicalModelID string
	// CacheModelID owns the package directory (manifest model_id).
	CacheModelID string
	PackageID    string
	// Aliases are other ids the model was requested by, sorted.
	Aliases []string
	// MetadataSource is MetadataFromRegistry or MetadataFromManifest.
	MetadataSource string
	// Model and Package are the model fields and the package payload in the
	// offline-weights record form (offline.md §3.2).
	Model   *pyjson.Object
	Package *pyjson.Object
	// Manifest is the package's model_config.json document with
	// dependency_package_paths emptied (they are host paths); Dependencies
	// says which packages they were.
	Manifest     *pyjson.Object
	Dependencies []DependencyRef

	parsed *manifest.Manifest
}

// DependencyRef names the package a dependency link pointed at.
type DependencyRef struct {
	Name, CacheModelID, CanonicalModelID, PackageID string
}

func (d DependencyRef) object() *pyjson.Object {
	return pyjson.ObjectOf("name", d.Name, "cache_model_id", d.CacheModelID,
		"canonical_model_id", d.CanonicalModelID, "package_id", d.PackageID)
}

// Marshal encodes the document as compact JSON in a fixed key order; the
// manifest keeps its own key order (its parser checks it).
func (d *Document) Marshal() ([]byte, error) {
	aliases := make([]any, len(d.Aliases))
	for i, a := range d.Aliases {
		aliases[i] = a
	}
	deps := make([]any, len(d.Dependencies))
	for i, dep := range d.Dependencies {
		deps[i] = dep.object()
	}
	return pyjson.Marshal(pyjson.ObjectOf(
		"format_version", documentVersion,
		"canonical_model_id", d.CanonicalModelID,
		"cache_model_id", d.CacheModelID,
		"package_id", d.PackageID,
		"aliases", aliases,
		"metadata_source", d.MetadataSource,
		"model", d.Model,
		"package", d.Package,
		"manifest", d.Manifest,
		"dependencies", deps,
	))
}

// ParseDocument decodes and validates a Document: ids, the package payload
// (as the offline registry reads it) and the manifest (strictly, as a
// complete v4 manifest whose files all live in shared-blobs).
func ParseDocument(data []byte) (*Document, error) {
	o, err := pyjson.DecodeObject(data)
	if err != nil {
		return nil, invalid("package document: %v", err)
	}
	if v, _ := o.Get("format_version"); !isInt(v, documentVersion) {
		return nil, invalid("package document: format_version %v is not %d (written by a newer modelcache?)", v, documentVersion)
	}
	d := &Document{}
	for key, dst := range map[string]*string{"canonical_model_id": &d.CanonicalModelID, "cache_model_id": &d.CacheModelID,
		"package_id": &d.PackageID, "metadata_source": &d.MetadataSource} {
		v, _ := o.Get(key)
		s, ok := v.(string)
		if !ok {
			return nil, invalid("package document: %s is not a string", key)
		}
		*dst = s
	}
	if err := layout.ValidatePackageID(d.PackageID); err != nil {
		return nil, invalid("package document: %v", err)
	}
	for _, id := range []string{d.CanonicalModelID, d.CacheModelID} {
		if err := layout.ValidateRemoteModelID(id); err != nil {
			return nil, invalid("package %s: model id %q: %v", d.PackageID, id, err)
		}
	}
	if av, _ := o.Get("aliases"); av != nil {
		list, ok := av.([]any)
		if !ok {
			return nil, invalid("package %s: aliases is not a list", d.PackageID)
		}
		for _, a := range list {
			s, ok := a.(string)
			if !ok || layout.ValidateRemoteModelID(s) != nil {
				return nil, invalid("package %s: alias %v is not a model id", d.PackageID, a)
			}
			d.Aliases = append(d.Aliases, s)
		}
	}
	var ok bool
	for key, dst := range map[string]**pyjson.Object{"model": &d.Model, "package": &d.Package, "manifest": &d.Manifest} {
		v, _ := o.Get(key)
		if *dst, ok = v.(*pyjson.Object); !ok {
			return nil, invalid("package %s: %s is not an object", d.PackageID, key)
		}
	}
	if dv, _ := o.Get("dependencies"); dv != nil {
		list, ok := dv.([]any)
		if !ok {
			return nil, invalid("package %s: dependencies is not a list", d.PackageID)
		}
		for _, x := range list {
			dep, err := parseDependencyRef(x)
			if err != nil {
				return nil, invalid("package %s: %v", d.PackageID, err)
			}
			d.Dependencies = append(d.Dependencies, dep)
		}
	}
	if err := d.validate(); err != nil {
		return nil, err
	}
	return d, nil
}

func parseDependencyRef(x any) (DependencyRef, error) {
	o, ok := x.(*pyjson.Object)
	if !ok {
		return DependencyRef{}, fmt.Errorf("dependency is not an object")
	}
	var d DependencyRef
	for key, dst := range map[string]*string{"name": &d.Name, "cache_model_id": &d.CacheModelID,
		"canonical_model_id": &d.CanonicalModelID, "package_id": &d.PackageID} {
		v, _ := o.Get(key)
		s, ok := v.(string)
		if !ok {
			return DependencyRef{}, fmt.Errorf("dependency %s is not a string", key)
		}
		*dst = s
	}
	if err := layout.ValidatePackageID(d.PackageID); err != nil {
		return DependencyRef{}, err
	}
	for _, id := range []string{d.CacheModelID, d.CanonicalModelID} {
		if err := layout.ValidateRemoteModelID(id); err != nil {
			return DependencyRef{}, err
		}
	}
	return d, nil
}

func isInt(v any, want int64) bool {
	n, ok := v.(pyjson.Int)
	if !ok {
		return false
	}
	got, fits := n.Int64()
	return fits && got == want
}

// validate checks the cross-field rules: the payload decodes and names the
// package, the manifest is a complete v4 manifest of this package with
// shared-blob files only, and payload and manifest list the same files.
func (d *Document) validate() error {
	perr := func(err error, format string, args ...any) error {
		return &PackageError{ModelID: d.CanonicalModelID, PackageID: d.PackageID, Err: err, Detail: fmt.Sprintf(format, args...)}
	}
	if d.MetadataSource != MetadataFromRegistry && d.MetadataSource != MetadataFromManifest && d.MetadataSource != MetadataFromProvider {
		return perr(ErrInvalid, "unknown metadata_source %q", d.MetadataSource)
	}
	if id, _ := d.Package.Get("package_id"); id != d.PackageID {
		return perr(ErrInvalid, "package payload names package %v", id)
	}
	if _, err := offlinereg.DecodePackage(d.Package); err != nil {
		return perr(ErrInvalid, "package payload: %v", err)
	}
	if v, _ := d.Model.Get("model_architecture"); v == nil {
		return perr(ErrInvalid, "model fields lack model_architecture")
	}
	data, err := pyjson.Marshal(d.Manifest)
	if err != nil {
		return perr(ErrInvalid, "manifest: %v", err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return perr(ErrInvalid, "manifest: %v", err)
	}
	if !m.Complete() || m.ModelID == nil || *m.ModelID != d.CacheModelID || m.CanonicalModelID == nil || *m.CanonicalModelID != d.CanonicalModelID {
		return perr(ErrInvalid, "manifest is not a complete v4 manifest of this package's owner and canonical id")
	}
	if len(m.DependencyPackagePaths) != 0 {
		return perr(ErrInvalid, "manifest carries host paths in dependency_package_paths")
	}
	if len(m.ModelDependencies) != len(d.Dependencies) {
		return perr(ErrInvalid, "manifest declares %d dependencies, the document names %d packages", len(m.ModelDependencies), len(d.Dependencies))
	}
	names := make([]string, 0, len(d.Dependencies))
	for _, dep := range d.Dependencies {
		names = append(names, dep.Name)
	}
	if err := layout.ValidateDependencyNames(names); err != nil {
		return perr(ErrInvalid, "%v", err)
	}
	payloadFiles := map[string]string{}
	if av, _ := d.Package.Get("artifacts"); av != nil {
		list, _ := av.([]any)
		for _, a := range list {
			ao, _ := a.(*pyjson.Object)
			h, _ := ao.Get("file_handle")
			m5, _ := ao.Get("md5_hash")
			hs, _ := h.(string)
			ms, _ := m5.(string)
			payloadFiles[hs] = ms
		}
	}
	if len(payloadFiles) != len(m.PackageArtifacts) {
		return perr(ErrInvalid, "payload lists %d files, manifest %d", len(payloadFiles), len(m.PackageArtifacts))
	}
	for _, a := range m.PackageArtifacts {
		if a.Storage != manifest.StorageSharedBlob || a.MD5Hash == nil {
			return perr(ErrUnsupportedPackage, "file %q is not a provider-hashed shared blob", a.FileHandle)
		}
		if payloadFiles[a.FileHandle] != *a.MD5Hash {
			return perr(ErrInvalid, "file %q: payload and manifest disagree on its MD5", a.FileHandle)
		}
	}
	d.parsed = m
	return nil
}

// Files returns the package's files (handle → provider MD5), sorted as the
// manifest sorts them.
func (d *Document) Files() []manifest.Artifact { return d.parsed.PackageArtifacts }

// Spec returns fields 2–11 of the manifest for materialization.
func (d *Document) Spec() manifest.Spec { return specOf(d.parsed) }

func specOf(m *manifest.Manifest) manifest.Spec {
	s := manifest.Spec{
		ModelArchitecture: m.ModelArchitecture, TaskType: m.TaskType, ModelFeatures: m.ModelFeatures,
		TrustedSource: m.TrustedSource, DynamicBatchSizeSupported: m.DynamicBatchSizeSupported,
		ModelDependencies: m.ModelDependencies, RecommendedParameters: manifestParams(m.RecommendedParameters),
	}
	if m.BackendType != nil {
		s.BackendType = *m.BackendType
	}
	if m.Quantization != nil {
		s.Quantization = *m.Quantization
	}
	if m.StaticBatchSize != nil {
		if n, ok := m.StaticBatchSize.Int64(); ok {
			s.StaticBatchSize = &n
		}
	}
	return s
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case pyjson.Int:
		n, ok := x.Int64()
		return float64(n), ok
	}
	return 0, false
}

func manifestParams(v any) *metadata.RecommendedParameters {
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil
	}
	out := &metadata.RecommendedParameters{}
	if c, _ := o.Get("confidence"); c != nil {
		if f, ok := number(c); ok {
			out.Confidence = &f
		}
	}
	if pv, _ := o.Get("per_class_confidence"); pv != nil {
		if po, ok := pv.(*pyjson.Object); ok {
			out.PerClassConfidence = metadata.ClassConfidences{}
			for _, k := range po.Keys() {
				x, _ := po.Get(k)
				if f, ok := number(x); ok {
					out.PerClassConfidence = append(out.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: f})
				}
			}
		}
	}
	return out
}

func metadataParams(v any) *metadata.RecommendedParameters {
	mp := manifestParams(v)
	if mp == nil {
		return nil
	}
	out := &metadata.RecommendedParameters{Confidence: mp.Confidence}
	if mp.PerClassConfidence != nil {
		out.PerClassConfidence = metadata.ClassConfidences{}
		for _, c := range mp.PerClassConfidence {
			out.PerClassConfidence = append(out.PerClassConfidence, metadata.ClassConfidence{Class: c.Class, Confidence: c.Confidence})
		}
	}
	return out
}

// reconstruct derives the model fields and package payload from a package
// manifest alone (MetadataFromManifest). The manifest's recommended
// parameters are the effective ones; they become the package's own.
func reconstruct(m *manifest.Manifest, packageID string) (model, pkg *pyjson.Object) {
	md := &metadata.ModelMetadata{ModelID: *m.CanonicalModelID, TaskType: m.TaskType}
	if m.ModelArchitecture != nil {
		md.ModelArchitecture = *m.ModelArchitecture
	}
	for _, dep := range m.ModelDependencies {
		md.ModelDependencies = append(md.ModelDependencies, metadata.ModelDependency{Name: dep.Name, ModelID: dep.ModelID, ModelPackageID: dep.ModelPackageID})
	}
	p := metadata.ModelPackage{PackageID: packageID, DynamicBatchSizeSupported: m.DynamicBatchSizeSupported,
		ModelFeatures: m.ModelFeatures, RecommendedParameters: metadataParams(m.RecommendedParameters)}
	if m.BackendType != nil {
		p.Backend = metadata.BackendType(*m.BackendType)
	}
	if m.Quantization != nil && *m.Quantization != "unknown" {
		p.Quantization = metadata.Quantization(*m.Quantization)
	}
	if m.StaticBatchSize != nil {
		if n, ok := m.StaticBatchSize.Int64(); ok {
			p.StaticBatchSize = metadata.Int(int(n))
		}
	}
	if m.TrustedSource != nil {
		p.TrustedSource = *m.TrustedSource
	}
	if *m.ModelID != *m.CanonicalModelID {
		p.CacheModelID = *m.ModelID
	}
	for _, a := range m.PackageArtifacts {
		p.Artifacts = append(p.Artifacts, metadata.Artifact{FileHandle: a.FileHandle, MD5Hash: a.MD5Hash})
	}
	return offlinereg.EncodeModel(md), offlinereg.EncodePackage(&p)
}

func sortedUnique(in []string, drop string) []string {
	set := map[string]bool{}
	for _, s := range in {
		if strings.TrimSpace(s) != "" && s != drop {
			set[s] = true
		}
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}
