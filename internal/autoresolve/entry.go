package autoresolve

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// AttributionVersion is the cache_attribution_version we write.
const AttributionVersion = 2

// Entry is one auto-resolution cache entry (§8.2).
type Entry struct {
	// ModelID is the requested model id.
	ModelID          string
	CacheModelID     *string
	CanonicalModelID *string
	// CacheAttributionVersion is 2 for entries we write; nil in legacy entries.
	CacheAttributionVersion *pyjson.Int
	// CredentialHash is CredentialHash(effective API key).
	CredentialHash *string
	ModelPackageID string
	// ResolvedFiles are absolute paths; their order carries no meaning.
	ResolvedFiles     []string
	ModelArchitecture *string
	TaskType          *string
	BackendType       *string
	// ModelDependencies is nil when null.
	ModelDependencies []metadata.ModelDependency
	CreatedAt         Timestamp
	// ModelFeatures is nil or *pyjson.Object.
	ModelFeatures         any
	RecommendedParameters *metadata.RecommendedParameters
	TrustedSource         *bool
}

// Resolution is what a successful load resolved; Cache.Register turns it
// into an Entry stamped with the clock.
type Resolution struct {
	ModelID           string
	CacheModelID      *string
	CanonicalModelID  *string
	ModelPackageID    string
	ResolvedFiles     []string
	ModelArchitecture *string
	TaskType          *string
	BackendType       *string
	ModelDependencies []metadata.ModelDependency
	// ModelFeatures is nil or *pyjson.Object.
	ModelFeatures         any
	RecommendedParameters *metadata.RecommendedParameters
	TrustedSource         *bool
	// APIKey is the effective key; only its CredentialHash is stored.
	APIKey *string
}

// NewEntry builds the entry the reference would write for r at now.
func NewEntry(r Resolution, now time.Time) *Entry {
	v := pyjson.NewInt(AttributionVersion)
	ch := CredentialHash(r.APIKey)
	return &Entry{
		ModelID:                 r.ModelID,
		CacheModelID:            r.CacheModelID,
		CanonicalModelID:        r.CanonicalModelID,
		CacheAttributionVersion: &v,
		CredentialHash:          &ch,
		ModelPackageID:          r.ModelPackageID,
		ResolvedFiles:           r.ResolvedFiles,
		ModelArchitecture:       r.ModelArchitecture,
		TaskType:                r.TaskType,
		BackendType:             r.BackendType,
		ModelDependencies:       r.ModelDependencies,
		CreatedAt:               NaiveLocal(now),
		ModelFeatures:           r.ModelFeatures,
		RecommendedParameters:   r.RecommendedParameters,
		TrustedSource:           r.TrustedSource,
	}
}

// MarshalEntry returns the exact file bytes (§8.2): one compact line, fields
// in contract order, null fields omitted, nested nulls omitted in
// model_dependencies and recommended_parameters. resolved_files are written in
// the order given (callers sort them). It reproduces the reference even for
// the quirk of a null model_architecture / task_type / backend_type (the key
// is left out); Cache.Register refuses to write such an entry.
func MarshalEntry(e *Entry) ([]byte, error) {
	o := pyjson.NewObject()
	o.Set("model_id", e.ModelID)
	setStr(o, "cache_model_id", e.CacheModelID)
	setStr(o, "canonical_model_id", e.CanonicalModelID)
	if e.CacheAttributionVersion != nil {
		o.Set("cache_attribution_version", *e.CacheAttributionVersion)
	}
	setStr(o, "credential_hash", e.CredentialHash)
	o.Set("model_package_id", e.ModelPackageID)
	o.Set("resolved_files", strList(e.ResolvedFiles))
	setStr(o, "model_architecture", e.ModelArchitecture)
	setStr(o, "task_type", e.TaskType)
	setStr(o, "backend_type", e.BackendType)
	if e.ModelDependencies != nil {
		deps := make([]any, 0, len(e.ModelDependencies))
		for _, d := range e.ModelDependencies {
			do := pyjson.ObjectOf("name", d.Name, "model_id", d.ModelID)
			setStr(do, "model_package_id", d.ModelPackageID)
			deps = append(deps, do)
		}
		o.Set("model_dependencies", deps)
	}
	o.Set("created_at", e.CreatedAt.String())
	if e.ModelFeatures != nil {
		o.Set("model_features", e.ModelFeatures)
	}
	if rp := e.RecommendedParameters; rp != nil {
		ro := pyjson.NewObject()
		if rp.Confidence != nil {
			ro.Set("confidence", *rp.Confidence)
		}
		if rp.PerClassConfidence != nil {
			ro.Set("per_class_confidence", classObject(rp.PerClassConfidence))
		}
		o.Set("recommended_parameters", ro)
	}
	if e.TrustedSource != nil {
		o.Set("trusted_source", *e.TrustedSource)
	}
	b, err := pyjson.Marshal(o)
	if err != nil {
		return nil, &EntryError{Reason: "cannot serialize", Err: err}
	}
	return b, nil
}

// dump is the entry as the reference's model dumps it: every field, nulls
// included (used to compare with recorded parsed entries).
func (e *Entry) dump() *pyjson.Object {
	var ver any
	if e.CacheAttributionVersion != nil {
		ver = *e.CacheAttributionVersion
	}
	var deps any
	if e.ModelDependencies != nil {
		l := make([]any, 0, len(e.ModelDependencies))
		for _, d := range e.ModelDependencies {
			l = append(l, pyjson.ObjectOf("name", d.Name, "model_id", d.ModelID, "model_package_id", optStr(d.ModelPackageID)))
		}
		deps = l
	}
	var rec any
	if rp := e.RecommendedParameters; rp != nil {
		var conf, per any
		if rp.Confidence != nil {
			conf = *rp.Confidence
		}
		if rp.PerClassConfidence != nil {
			per = classObject(rp.PerClassConfidence)
		}
		rec = pyjson.ObjectOf("confidence", conf, "per_class_confidence", per)
	}
	var trusted any
	if e.TrustedSource != nil {
		trusted = *e.TrustedSource
	}
	return pyjson.ObjectOf(
		"model_id", e.ModelID,
		"cache_model_id", optStr(e.CacheModelID),
		"canonical_model_id", optStr(e.CanonicalModelID),
		"cache_attribution_version", ver,
		"credential_hash", optStr(e.CredentialHash),
		"model_package_id", e.ModelPackageID,
		"resolved_files", strList(e.ResolvedFiles),
		"model_architecture", optStr(e.ModelArchitecture),
		"task_type", optStr(e.TaskType),
		"backend_type", optStr(e.BackendType),
		"model_dependencies", deps,
		"created_at", e.CreatedAt.String(),
		"model_features", e.ModelFeatures,
		"recommended_parameters", rec,
		"trusted_source", trusted,
	)
}

func setStr(o *pyjson.Object, k string, p *string) {
	if p != nil {
		o.Set(k, *p)
	}
}

func classObject(cc []metadata.ClassConfidence) *pyjson.Object {
	o := pyjson.NewObject()
	for _, c := range cc {
		o.Set(c.Class, c.Confidence)
	}
	return o
}

// EntryError reports an entry the reference's schema rejects.
type EntryError struct {
	Field  string
	Reason string
	Err    error
}

func (e *EntryError) Error() string {
	s := "invalid auto-resolution entry"
	if e.Field != "" {
		s += ": " + e.Field
	}
	s += ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *EntryError) Unwrap() error { return e.Err }

func validBackend(s string) bool {
	switch s {
	case "trt", "onnx", "torch", "hugging-face", "torch-script", "ultralytics", "custom":
		return true
	}
	return false
}

// ParseEntry decodes an entry file and validates it with the reference's
// schema (the same verdicts for the online and offline readers): strict
// UTF-8 JSON (no BOM; NaN accepted; the last duplicate key wins); required
// model_id, model_package_id, resolved_files, created_at and the keys
// model_architecture, task_type, backend_type (null allowed);
// cache_attribution_version a JSON integer; lax bool and float coercion as
// in pydantic. Unknown keys are ignored.
func ParseEntry(data []byte) (*Entry, error) {
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, &EntryError{Reason: "not valid JSON", Err: err}
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, &EntryError{Reason: "not a JSON object"}
	}
	return entryFromObject(o)
}

func entryFromObject(o *pyjson.Object) (*Entry, error) {
	fail := func(field, format string, args ...any) error {
		return &EntryError{Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	e := &Entry{}
	reqStr := func(k string) (string, error) {
		v, ok := o.Get(k)
		if !ok {
			return "", fail(k, "field required")
		}
		s, isStr := v.(string)
		if !isStr {
			return "", fail(k, "must be a string, got %s", describe(v))
		}
		return s, nil
	}
	optString := func(k string, required bool) (*string, error) {
		v, ok := o.Get(k)
		if !ok {
			if required {
				return nil, fail(k, "field required (null allowed)")
			}
			return nil, nil
		}
		if v == nil {
			return nil, nil
		}
		s, isStr := v.(string)
		if !isStr {
			return nil, fail(k, "must be a string or null, got %s", describe(v))
		}
		return &s, nil
	}
	var err error
	if e.ModelID, err = reqStr("model_id"); err != nil {
		return nil, err
	}
	if e.CacheModelID, err = optString("cache_model_id", false); err != nil {
		return nil, err
	}
	if e.CanonicalModelID, err = optString("canonical_model_id", false); err != nil {
		return nil, err
	}
	if v, ok := o.Get("cache_attribution_version"); ok && v != nil {
		i, isInt := v.(pyjson.Int)
		if !isInt {
			return nil, fail("cache_attribution_version", "must be a JSON integer, got %s", describe(v))
		}
		e.CacheAttributionVersion = &i
	}
	if e.CredentialHash, err = optString("credential_hash", false); err != nil {
		return nil, err
	}
	if e.ModelPackageID, err = reqStr("model_package_id"); err != nil {
		return nil, err
	}
	rf, ok := o.Get("resolved_files")
	if !ok {
		return nil, fail("resolved_files", "field required")
	}
	list, isList := rf.([]any)
	if !isList {
		return nil, fail("resolved_files", "must be a list of strings, got %s", describe(rf))
	}
	e.ResolvedFiles = make([]string, 0, len(list))
	for i, it := range list {
		s, isStr := it.(string)
		if !isStr {
			return nil, fail("resolved_files", "item %d must be a string, got %s", i, describe(it))
		}
		e.ResolvedFiles = append(e.ResolvedFiles, s)
	}
	if e.ModelArchitecture, err = optString("model_architecture", true); err != nil {
		return nil, err
	}
	if e.TaskType, err = optString("task_type", true); err != nil {
		return nil, err
	}
	if e.BackendType, err = optString("backend_type", true); err != nil {
		return nil, err
	}
	if e.BackendType != nil && !validBackend(*e.BackendType) {
		return nil, fail("backend_type", "unknown backend type %q", *e.BackendType)
	}
	if v, ok := o.Get("model_dependencies"); ok && v != nil {
		deps, isList := v.([]any)
		if !isList {
			return nil, fail("model_dependencies", "must be a list or null, got %s", describe(v))
		}
		e.ModelDependencies = make([]metadata.ModelDependency, 0, len(deps))
		for i, it := range deps {
			d, isObj := it.(*pyjson.Object)
			if !isObj {
				return nil, fail("model_dependencies", "item %d must be an object", i)
			}
			var dep metadata.ModelDependency
			name, _ := d.Get("name")
			mid, _ := d.Get("model_id")
			var okN, okM bool
			dep.Name, okN = name.(string)
			dep.ModelID, okM = mid.(string)
			if !okN || !okM {
				return nil, fail("model_dependencies", "item %d needs string name and model_id", i)
			}
			if p, ok := d.Get("model_package_id"); ok && p != nil {
				s, isStr := p.(string)
				if !isStr {
					return nil, fail("model_dependencies", "item %d: model_package_id must be a string or null", i)
				}
				dep.ModelPackageID = &s
			}
			e.ModelDependencies = append(e.ModelDependencies, dep)
		}
	}
	ca, ok := o.Get("created_at")
	if !ok {
		return nil, fail("created_at", "field required")
	}
	if e.CreatedAt, err = parseCreatedAt(ca); err != nil {
		return nil, &EntryError{Field: "created_at", Reason: "invalid datetime", Err: err}
	}
	if v, ok := o.Get("model_features"); ok && v != nil {
		if _, isObj := v.(*pyjson.Object); !isObj {
			return nil, fail("model_features", "must be an object or null, got %s", describe(v))
		}
		e.ModelFeatures = v
	}
	if v, ok := o.Get("recommended_parameters"); ok && v != nil {
		rp, err := parseRecommended(v)
		if err != nil {
			return nil, err
		}
		e.RecommendedParameters = rp
	}
	if v, ok := o.Get("trusted_source"); ok && v != nil {
		b, err := laxBool(v)
		if err != nil {
			return nil, fail("trusted_source", "%v", err)
		}
		e.TrustedSource = &b
	}
	return e, nil
}

func parseRecommended(v any) (*metadata.RecommendedParameters, error) {
	const field = "recommended_parameters"
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, &EntryError{Field: field, Reason: "must be an object or null, got " + describe(v)}
	}
	rp := &metadata.RecommendedParameters{}
	if c, ok := o.Get("confidence"); ok && c != nil {
		f, err := laxFloat(c)
		if err != nil {
			return nil, &EntryError{Field: field, Reason: "confidence", Err: err}
		}
		rp.Confidence = &f
	}
	// The schema accepts the camelCase alias too; the field name wins.
	pc, ok := o.Get("per_class_confidence")
	if !ok {
		pc, ok = o.Get("perClassConfidence")
	}
	if ok && pc != nil {
		po, isObj := pc.(*pyjson.Object)
		if !isObj {
			return nil, &EntryError{Field: field, Reason: "per_class_confidence must be an object or null"}
		}
		rp.PerClassConfidence = metadata.ClassConfidences{}
		for _, k := range po.Keys() {
			cv, _ := po.Get(k)
			f, err := laxFloat(cv)
			if err != nil {
				return nil, &EntryError{Field: field, Reason: fmt.Sprintf("per_class_confidence[%q]", k), Err: err}
			}
			rp.PerClassConfidence = append(rp.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: f})
		}
	}
	return rp, nil
}

// laxBool is pydantic's lax bool from JSON (pyjson.LaxBool).
func laxBool(v any) (bool, error) {
	if b, ok := pyjson.LaxBool(v); ok {
		return b, nil
	}
	return false, fmt.Errorf("not a valid boolean: %s", describe(v))
}

// isFloatString accepts what Rust's f64 parser (behind pydantic) accepts:
// [+-] then digits with an optional '.', or '.' digits, with an optional
// exponent; or inf, infinity, nan in any letter case.
func isFloatString(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	switch strings.ToLower(s) {
	case "inf", "infinity", "nan":
		return true
	}
	i, intDigits, fracDigits := 0, 0, 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		intDigits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			fracDigits++
		}
	}
	if intDigits+fracDigits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		expDigits := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			expDigits++
		}
		if expDigits == 0 {
			return false
		}
	}
	return i == len(s)
}

// laxFloat is pydantic's lax float from JSON: numbers, booleans and
// numeric strings (surrounding whitespace ignored).
func laxFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case pyjson.Int:
		f, _ := new(big.Float).SetInt(x.Big()).Float64()
		if math.IsInf(f, 0) {
			return 0, fmt.Errorf("integer too large for a float")
		}
		return f, nil
	case bool:
		if x {
			return 1, nil
		}
		return 0, nil
	case string:
		s := strings.TrimSpace(x)
		if isFloatString(s) {
			if f, err := strconv.ParseFloat(s, 64); err == nil || isRangeErr(err) {
				return f, nil
			}
		}
	}
	return 0, fmt.Errorf("not a valid number: %s", describe(v))
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func describe(v any) string {
	if v == nil {
		return "null"
	}
	b, err := pyjson.Marshal(v)
	if err != nil || len(b) > 80 {
		return fmt.Sprintf("a %T", v)
	}
	return string(b)
}
