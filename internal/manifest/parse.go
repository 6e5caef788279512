package manifest

import (
	"fmt"
	"path"
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Manifest is a parsed, validated model_config.json. Legacy (pre-v4) and
// hand-written local-model manifests parse too; Complete tells them apart.
type Manifest struct {
	// Doc is the document as parsed (a duplicate key keeps its last value at
	// its first position, as Python does). Treat it as read-only.
	Doc *pyjson.Object
	// Version is offline_manifest_version (nil when absent or null).
	Version *pyjson.Int

	ModelID           *string
	CanonicalModelID  *string
	ModelArchitecture *string
	TaskType          *string
	// BackendType is nil when the key is absent.
	BackendType  *string
	Quantization *string
	// ModelModule and ModelClass describe hand-written local model directories.
	ModelModule *string
	ModelClass  *string

	TrustedSource             *bool
	DynamicBatchSizeSupported *bool
	StaticBatchSize           *pyjson.Int
	// ModelFeatures and RecommendedParameters are nil or *pyjson.Object.
	ModelFeatures         any
	RecommendedParameters any
	// ModelDependencies is nil when absent or null.
	ModelDependencies      []metadata.ModelDependency
	PackageArtifacts       []Artifact
	DependencyPackagePaths []DependencyPath

	contentHash string
}

// ContentHash is hash_dict of the parsed document (§5.5, §6.4): the
// manifest_content_hash dependents record as package_manifest_hash.
func (m *Manifest) ContentHash() string { return m.contentHash }

// Complete reports whether the manifest is a current (v4) manifest, the mark
// of a completely materialized package (§6.8).
func (m *Manifest) Complete() bool {
	if m == nil || m.Version == nil {
		return false
	}
	v, ok := m.Version.Int64()
	return ok && v == Version
}

// Parse decodes and strictly validates a manifest (§6.6). Any violation is
// a *CorruptError.
func Parse(data []byte) (*Manifest, error) {
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, &CorruptError{Reason: "not valid JSON", Err: err}
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, &CorruptError{Reason: "the manifest is not a JSON object"}
	}
	return parseDocument(o)
}

// ContentHashOf returns hash_dict(doc).
func ContentHashOf(doc *pyjson.Object) (string, error) {
	h, err := pyjson.HashDict(doc)
	if err != nil {
		return "", &CorruptError{Reason: "cannot serialize", Err: err}
	}
	return h, nil
}

func validBackend(s string) bool {
	switch s {
	case "torch", "torch-script", "onnx", "trt", "hugging-face", "ultralytics", "custom":
		return true
	}
	return false
}

func parseDocument(o *pyjson.Object) (*Manifest, error) {
	m := &Manifest{Doc: o}
	bad := func(field, format string, args ...any) error {
		return &CorruptError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}

	if v, ok := o.Get("offline_manifest_version"); ok && v != nil {
		i, isInt := v.(pyjson.Int)
		if !isInt {
			return nil, bad("offline_manifest_version", "must be an integer, got %s", quote(v))
		}
		m.Version = &i
	}

	optStr := map[string]**string{
		"model_architecture": &m.ModelArchitecture,
		"task_type":          &m.TaskType,
		"model_module":       &m.ModelModule,
		"model_class":        &m.ModelClass,
		"quantization":       &m.Quantization,
		"model_id":           &m.ModelID,
		"canonical_model_id": &m.CanonicalModelID,
	}
	for k, dst := range optStr {
		v, ok := o.Get(k)
		if !ok || v == nil {
			continue
		}
		s, isStr := v.(string)
		if !isStr {
			return nil, bad(k, "must be a string or null, got %s", quote(v))
		}
		*dst = &s
	}

	if v, ok := o.Get("backend_type"); ok {
		s, isStr := v.(string)
		if !isStr || !validBackend(s) {
			return nil, bad("backend_type", "not a known backend type: %s", quote(v))
		}
		m.BackendType = &s
	}

	for _, k := range []string{"model_features", "recommended_parameters"} {
		v, ok := o.Get(k)
		if !ok || v == nil {
			continue
		}
		if _, isObj := v.(*pyjson.Object); !isObj {
			return nil, bad(k, "must be an object or null, got %s", quote(v))
		}
		if k == "model_features" {
			m.ModelFeatures = v
		} else {
			m.RecommendedParameters = v
		}
	}

	for k, dst := range map[string]**bool{
		"trusted_source":               &m.TrustedSource,
		"dynamic_batch_size_supported": &m.DynamicBatchSizeSupported,
	} {
		v, ok := o.Get(k)
		if !ok || v == nil {
			continue
		}
		b, isBool := v.(bool)
		if !isBool {
			return nil, bad(k, "must be a boolean or null, got %s", quote(v))
		}
		*dst = &b
	}

	if v, ok := o.Get("static_batch_size"); ok && v != nil {
		i, isInt := v.(pyjson.Int)
		if !isInt || i.Sign() <= 0 {
			return nil, bad("static_batch_size", "must be an integer >= 1 or null, got %s", quote(v))
		}
		m.StaticBatchSize = &i
	}

	if v, ok := o.Get("model_dependencies"); ok && v != nil {
		deps, err := parseDependencies(v)
		if err != nil {
			return nil, err
		}
		m.ModelDependencies = deps
	}

	if v, ok := o.Get("package_artifacts"); ok {
		arts, err := parseArtifacts(v)
		if err != nil {
			return nil, err
		}
		m.PackageArtifacts = arts
	}

	if v, ok := o.Get("dependency_package_paths"); ok {
		paths, err := parseDependencyPaths(v)
		if err != nil {
			return nil, err
		}
		m.DependencyPackagePaths = paths
	}

	h, err := ContentHashOf(o)
	if err != nil {
		return nil, err
	}
	m.contentHash = h
	return m, nil
}

func parseDependencies(v any) ([]metadata.ModelDependency, error) {
	const field = "model_dependencies"
	list, ok := v.([]any)
	if !ok {
		return nil, &CorruptError{Field: field, Reason: "must be a list of objects or null"}
	}
	out := make([]metadata.ModelDependency, 0, len(list))
	for i, it := range list {
		d, ok := it.(*pyjson.Object)
		if !ok {
			return nil, &CorruptError{Field: field, Reason: fmt.Sprintf("item %d is not an object: %s", i, quote(it))}
		}
		var dep metadata.ModelDependency
		for _, k := range []string{"name", "model_id"} {
			s, isStr := mustGet(d, k).(string)
			if !isStr {
				return nil, &CorruptError{Field: field, Reason: fmt.Sprintf("item %d: %q must be a string", i, k)}
			}
			if k == "name" {
				dep.Name = s
			} else {
				dep.ModelID = s
			}
		}
		if p, ok := d.Get("model_package_id"); ok && p != nil {
			s, isStr := p.(string)
			if !isStr {
				return nil, &CorruptError{Field: field, Reason: fmt.Sprintf("item %d: \"model_package_id\" must be a string or null", i)}
			}
			dep.ModelPackageID = &s
		}
		out = append(out, dep)
	}
	return out, nil
}

func mustGet(o *pyjson.Object, k string) any {
	v, _ := o.Get(k)
	return v
}

// exactKeys reports whether o has exactly keys, in this order.
func exactKeys(o *pyjson.Object, keys []string) bool {
	got := o.Keys()
	if len(got) != len(keys) {
		return false
	}
	for i := range keys {
		if got[i] != keys[i] {
			return false
		}
	}
	return true
}

func optHash(o *pyjson.Object, k string, hexLen int) (*string, bool) {
	v := mustGet(o, k)
	if v == nil {
		return nil, true
	}
	s, ok := v.(string)
	if !ok || !isLowerHex(s, hexLen) {
		return nil, false
	}
	return &s, true
}

func parseArtifacts(v any) ([]Artifact, error) {
	const field = "package_artifacts"
	list, ok := v.([]any)
	if !ok {
		return nil, &CorruptError{Field: field, Reason: fmt.Sprintf("must be a list, got %s", quote(v))}
	}
	out := make([]Artifact, 0, len(list))
	for i, it := range list {
		fail := func(format string, args ...any) error {
			return &CorruptError{Field: field, Reason: fmt.Sprintf("item %d: ", i) + fmt.Sprintf(format, args...)}
		}
		o, ok := it.(*pyjson.Object)
		if !ok {
			return nil, fail("not an object: %s", quote(it))
		}
		if !exactKeys(o, artifactKeys()) {
			return nil, fail("keys must be exactly %s in this order, got %s", strings.Join(artifactKeys(), ", "), strings.Join(o.Keys(), ", "))
		}
		var a Artifact
		handle, ok := mustGet(o, "file_handle").(string)
		if !ok {
			return nil, fail("file_handle must be a string")
		}
		a.FileHandle = handle
		if a.MD5Hash, ok = optHash(o, "md5_hash", 32); !ok {
			return nil, fail("md5_hash must be null or 32 lower-case hex digits, got %s", quote(mustGet(o, "md5_hash")))
		}
		if a.Unhashed, ok = mustGet(o, "unhashed").(bool); !ok {
			return nil, fail("unhashed must be a boolean")
		}
		if a.SHA256Hash, ok = optHash(o, "sha256_hash", 64); !ok {
			return nil, fail("sha256_hash must be null or 64 lower-case hex digits")
		}
		if a.SourceHash, ok = optHash(o, "source_hash", 64); !ok {
			return nil, fail("source_hash must be null or 64 lower-case hex digits")
		}
		st, _ := mustGet(o, "storage").(string)
		a.Storage = Storage(st)
		if err := checkArtifactKind(a); err != nil {
			return nil, fail("%s (%s)", err, handle)
		}
		out = append(out, a)
	}
	handles := make([]string, len(out))
	for i, a := range out {
		handles[i] = a.FileHandle
	}
	if err := validateHandleSet(handles); err != nil {
		return nil, &CorruptError{Field: field, Reason: "invalid file handles", Err: err}
	}
	for i := 1; i < len(out); i++ {
		if !handleLess(out[i-1].FileHandle, out[i].FileHandle) {
			return nil, &CorruptError{Field: field, Reason: fmt.Sprintf(
				"artefacts must be sorted by (lower(handle), handle): %q comes before %q", out[i-1].FileHandle, out[i].FileHandle)}
		}
	}
	return out, nil
}

// checkArtifactKind enforces the three artefact kinds of §6.2.
func checkArtifactKind(a Artifact) error {
	switch {
	case a.Storage != StorageSharedBlob && a.Storage != StoragePackageFile:
		return fmt.Errorf("storage must be %q or %q, got %q", StorageSharedBlob, StoragePackageFile, a.Storage)
	case !a.Unhashed:
		if a.MD5Hash == nil || a.SHA256Hash != nil || a.SourceHash != nil {
			return fmt.Errorf("a hashed artefact needs md5_hash and null sha256_hash/source_hash")
		}
	default:
		if a.Storage != StoragePackageFile || a.MD5Hash != nil || a.SHA256Hash == nil || a.SourceHash == nil {
			return fmt.Errorf("an unhashed artefact needs storage %q, null md5_hash, sha256_hash and source_hash", StoragePackageFile)
		}
	}
	return nil
}

func parseDependencyPaths(v any) ([]DependencyPath, error) {
	const field = "dependency_package_paths"
	list, ok := v.([]any)
	if !ok {
		return nil, &CorruptError{Field: field, Reason: fmt.Sprintf("must be a list, got %s", quote(v))}
	}
	out := make([]DependencyPath, 0, len(list))
	names := make([]string, 0, len(list))
	for i, it := range list {
		fail := func(format string, args ...any) error {
			return &CorruptError{Field: field, Reason: fmt.Sprintf("item %d: ", i) + fmt.Sprintf(format, args...)}
		}
		o, ok := it.(*pyjson.Object)
		if !ok {
			return nil, fail("not an object: %s", quote(it))
		}
		if !exactKeys(o, dependencyPathKeys()) {
			return nil, fail("keys must be exactly %s in this order, got %s", strings.Join(dependencyPathKeys(), ", "), strings.Join(o.Keys(), ", "))
		}
		var vals [6]string
		for j, k := range dependencyPathKeys() {
			s, ok := mustGet(o, k).(string)
			if !ok {
				return nil, fail("%s must be a string", k)
			}
			vals[j] = s
		}
		d := DependencyPath{Name: vals[0], TargetPath: vals[1], CacheModelID: vals[2], CanonicalModelID: vals[3], ModelPackageID: vals[4], PackageManifestHash: vals[5]}
		switch {
		case !strings.HasPrefix(d.TargetPath, "/") || pyNormpath(d.TargetPath) != d.TargetPath:
			return nil, fail("target_path must be an absolute normalized path, got %q", d.TargetPath)
		case isBlank(d.CacheModelID) || isBlank(d.CanonicalModelID):
			return nil, fail("cache_model_id and canonical_model_id must be non-blank")
		case layout.ValidatePackageID(d.ModelPackageID) != nil:
			return nil, fail("model_package_id %q is not a valid package id", d.ModelPackageID)
		case path.Base(d.TargetPath) != d.ModelPackageID:
			return nil, fail("model_package_id %q is not the base name of target_path %q", d.ModelPackageID, d.TargetPath)
		case !isLowerHex(d.PackageManifestHash, 64):
			return nil, fail("package_manifest_hash must be 64 lower-case hex digits")
		}
		out = append(out, d)
		names = append(names, d.Name)
	}
	if err := layout.ValidateDependencyNames(names); err != nil {
		return nil, &CorruptError{Field: field, Reason: "invalid dependency names", Err: err}
	}
	return out, nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// pyNormpath is Python's posixpath.normpath (which, unlike path.Clean, keeps
// exactly two leading slashes).
func pyNormpath(p string) string {
	if p == "" {
		return "."
	}
	initial := 0
	if strings.HasPrefix(p, "/") {
		initial = 1
		if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
			initial = 2
		}
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "" || c == ".":
		case c != ".." || (initial == 0 && len(comps) == 0) || (len(comps) > 0 && comps[len(comps)-1] == ".."):
			comps = append(comps, c)
		case len(comps) > 0:
			comps = comps[:len(comps)-1]
		}
	}
	out := strings.Repeat("/", initial) + strings.Join(comps, "/")
	if out == "" {
		return "."
	}
	return out
}

// Spec returns the fields of the manifest as a Spec (what a load reports of a
// published package). RecommendedParameters, a raw document here, is left
// out of the Spec; read Manifest.RecommendedParameters for it.
func (m *Manifest) Spec() Spec {
	s := Spec{
		ModelArchitecture: m.ModelArchitecture, TaskType: m.TaskType, ModelFeatures: m.ModelFeatures,
		TrustedSource: m.TrustedSource, DynamicBatchSizeSupported: m.DynamicBatchSizeSupported,
		ModelDependencies: m.ModelDependencies, PackageArtifacts: m.PackageArtifacts, DependencyPackagePaths: m.DependencyPackagePaths,
	}
	if m.CanonicalModelID != nil {
		s.CanonicalModelID = *m.CanonicalModelID
	}
	if m.ModelID != nil {
		s.ModelID = *m.ModelID
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
