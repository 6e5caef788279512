package manifest

import (
	"fmt"
	"sort"
	"strings"
	"unicode"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// File names inside a package directory.
const (
	FileName = "model_config.json"
	LockName = ".model_config.json.lock"
	// Version is the offline_manifest_version this package writes.
	Version = 4
)

// Storage tells where an artefact's bytes live (§6.2).
type Storage string

// Storage kinds.
const (
	// StorageSharedBlob: the handle is a symlink to shared-blobs/<md5>.
	StorageSharedBlob Storage = "shared_blob"
	// StoragePackageFile: a regular file inside the package directory.
	StoragePackageFile Storage = "package_file"
)

// Artifact is one entry of package_artifacts (§6.2).
type Artifact struct {
	FileHandle string
	// MD5Hash is the provider MD5 (nil for an unhashed artefact).
	MD5Hash *string
	// Unhashed is true for a file downloaded without a provider MD5.
	Unhashed bool
	// SHA256Hash of the in-package bytes; only for unhashed artefacts.
	SHA256Hash *string
	// SourceHash is hash_dict({"download_source": canonical URL}); only for
	// unhashed artefacts.
	SourceHash *string
	Storage    Storage
}

// artifactKeys is the exact key list, in order, of an artefact object.
func artifactKeys() []string {
	return []string{"file_handle", "md5_hash", "unhashed", "sha256_hash", "source_hash", "storage"}
}

func (a Artifact) object() *pyjson.Object {
	return pyjson.ObjectOf(
		"file_handle", a.FileHandle,
		"md5_hash", strOrNil(a.MD5Hash),
		"unhashed", a.Unhashed,
		"sha256_hash", strOrNil(a.SHA256Hash),
		"source_hash", strOrNil(a.SourceHash),
		"storage", string(a.Storage),
	)
}

// Declaration returns the artefact without its SHA-256: what is known before
// any byte is downloaded (the pre-materialization identity of §6.7).
func (a Artifact) Declaration() Artifact {
	a.SHA256Hash = nil
	return a
}

func dependencyObject(d metadata.ModelDependency) *pyjson.Object {
	return pyjson.ObjectOf("name", d.Name, "model_id", d.ModelID, "model_package_id", strOrNil(d.ModelPackageID))
}

// DependencyPath is one entry of dependency_package_paths (§6.3): the
// identity of a materialized dependency package.
type DependencyPath struct {
	Name string
	// TargetPath is the absolute, normalized realpath of the dependency package dir.
	TargetPath string
	// CacheModelID is the dependency manifest's model_id (its cache owner).
	CacheModelID     string
	CanonicalModelID string
	// ModelPackageID is the base name of TargetPath.
	ModelPackageID string
	// PackageManifestHash is the dependency manifest's ContentHash.
	PackageManifestHash string
}

func dependencyPathKeys() []string {
	return []string{"name", "target_path", "cache_model_id", "canonical_model_id", "model_package_id", "package_manifest_hash"}
}

func (d DependencyPath) object() *pyjson.Object {
	return pyjson.ObjectOf(
		"name", d.Name,
		"target_path", d.TargetPath,
		"cache_model_id", d.CacheModelID,
		"canonical_model_id", d.CanonicalModelID,
		"model_package_id", d.ModelPackageID,
		"package_manifest_hash", d.PackageManifestHash,
	)
}

// recommendedValue writes the provider's inference hints: both keys always,
// nulls kept (§6.1 #8).
func recommendedValue(r *metadata.RecommendedParameters) any {
	if r == nil {
		return nil
	}
	var conf, per any
	if r.Confidence != nil {
		conf = *r.Confidence
	}
	if r.PerClassConfidence != nil {
		o := pyjson.NewObject()
		for _, c := range r.PerClassConfidence {
			o.Set(c.Class, c.Confidence)
		}
		per = o
	}
	return pyjson.ObjectOf("confidence", conf, "per_class_confidence", per)
}

// Spec is what a package publishes: the 15 fields of §6.1.
type Spec struct {
	// ModelID is the cache owner: the package's cache_model_id, else the
	// canonical id (§6.1 #15).
	ModelID string
	// CanonicalModelID is the provider's canonical id.
	CanonicalModelID  string
	ModelArchitecture *string
	TaskType          *string
	// BackendType is one of torch, torch-script, onnx, trt, hugging-face,
	// ultralytics, custom.
	BackendType string
	// ModelFeatures is a pyjson value: nil or *pyjson.Object.
	ModelFeatures any
	TrustedSource *bool
	// ModelDependencies; nil is written as [].
	ModelDependencies     []metadata.ModelDependency
	RecommendedParameters *metadata.RecommendedParameters
	// Quantization; "" is written as "unknown".
	Quantization              string
	DynamicBatchSizeSupported *bool
	StaticBatchSize           *int64
	// PackageArtifacts must already be sorted by (lower(handle), handle):
	// Encode refuses an unsorted list as the reference does. SortArtifacts
	// sorts them.
	PackageArtifacts []Artifact
	// DependencyPackagePaths; nil is written as [].
	DependencyPackagePaths []DependencyPath
}

// fieldOrder returns the published field names, in write order (§6.1).
func fieldOrder() []string {
	return []string{
		"offline_manifest_version",
		"model_architecture",
		"task_type",
		"backend_type",
		"model_features",
		"trusted_source",
		"model_dependencies",
		"recommended_parameters",
		"quantization",
		"dynamic_batch_size_supported",
		"static_batch_size",
		"canonical_model_id",
		"package_artifacts",
		"dependency_package_paths",
		"model_id",
	}
}

// provenanceFields are fields 2–11 of §6.1, compared by the §6.7 guard.
func provenanceFields() []string { return fieldOrder()[1:11] }

// Document returns the 15 published keys, in write order, as pyjson values.
// It does not validate; Encode does.
func (s *Spec) Document() *pyjson.Object {
	deps := make([]any, 0, len(s.ModelDependencies))
	for _, d := range s.ModelDependencies {
		deps = append(deps, dependencyObject(d))
	}
	arts := make([]any, 0, len(s.PackageArtifacts))
	for _, a := range s.PackageArtifacts {
		arts = append(arts, a.object())
	}
	paths := make([]any, 0, len(s.DependencyPackagePaths))
	for _, p := range s.DependencyPackagePaths {
		paths = append(paths, p.object())
	}
	quant := s.Quantization
	if quant == "" {
		quant = "unknown"
	}
	var static any
	if s.StaticBatchSize != nil {
		static = pyjson.NewInt(*s.StaticBatchSize)
	}
	o := pyjson.NewObject()
	o.Set("offline_manifest_version", pyjson.NewInt(Version))
	o.Set("model_architecture", strOrNil(s.ModelArchitecture))
	o.Set("task_type", strOrNil(s.TaskType))
	o.Set("backend_type", s.BackendType)
	o.Set("model_features", normalizeJSON(s.ModelFeatures))
	o.Set("trusted_source", boolOrNil(s.TrustedSource))
	o.Set("model_dependencies", deps)
	o.Set("recommended_parameters", recommendedValue(s.RecommendedParameters))
	o.Set("quantization", quant)
	o.Set("dynamic_batch_size_supported", boolOrNil(s.DynamicBatchSizeSupported))
	o.Set("static_batch_size", static)
	o.Set("canonical_model_id", s.CanonicalModelID)
	o.Set("package_artifacts", arts)
	o.Set("dependency_package_paths", paths)
	o.Set("model_id", s.ModelID)
	return o
}

// Validate checks the spec the way the writer does before touching the disk:
// non-blank ids, and a document that the strict reader (§6.6) accepts.
func (s *Spec) Validate() error {
	if isBlank(s.ModelID) {
		return &CorruptError{Field: "model_id", Reason: "the cache owner id must be a non-blank string"}
	}
	if isBlank(s.CanonicalModelID) {
		return &CorruptError{Field: "canonical_model_id", Reason: "the canonical model id must be a non-blank string"}
	}
	_, err := parseDocument(s.Document())
	return err
}

// Encode returns the exact bytes of a fresh v4 manifest for s.
func Encode(s *Spec) ([]byte, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	b, err := pyjson.Marshal(s.Document())
	if err != nil {
		return nil, &CorruptError{Reason: "cannot serialize", Err: err}
	}
	return b, nil
}

// SortArtifacts sorts artefacts by (lower(handle), handle), the order the
// manifest requires.
func SortArtifacts(arts []Artifact) {
	sort.SliceStable(arts, func(i, j int) bool { return handleLess(arts[i].FileHandle, arts[j].FileHandle) })
}

// normalizeJSON returns v as the reader would see it after a write (Go maps
// and ints become *pyjson.Object and pyjson.Int), so that Python-equality
// comparisons with a manifest read from disk are meaningful. A value that
// cannot be serialized is returned unchanged for Validate to reject.
func normalizeJSON(v any) any {
	if v == nil {
		return nil
	}
	b, err := pyjson.Marshal(v)
	if err != nil {
		return v
	}
	out, err := pyjson.Decode(b)
	if err != nil {
		return v
	}
	return out
}

// ArtifactFromDeclaration converts a layout declaration into a manifest
// artefact; sha256 is the SHA-256 of an unhashed artefact's bytes (nil for
// hashed ones, and before materialization).
func ArtifactFromDeclaration(d layout.Declaration, sha256 *string) Artifact {
	a := Artifact{FileHandle: d.FileHandle, Unhashed: d.Unhashed, Storage: Storage(d.Storage), SHA256Hash: sha256}
	if d.MD5Hash != "" {
		md5 := d.MD5Hash
		a.MD5Hash = &md5
	}
	if d.SourceHash != "" {
		src := d.SourceHash
		a.SourceHash = &src
	}
	return a
}

func strOrNil(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func boolOrNil(p *bool) any {
	if p == nil {
		return nil
	}
	return *p
}

// isBlank is Python's not s.strip(): str.isspace also counts U+001C..U+001F.
func isBlank(s string) bool {
	return strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
	}) == ""
}

func quote(v any) string {
	if v == nil {
		return "null"
	}
	b, err := pyjson.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	const max = 200
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
