package manifest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

type writtenRecord struct {
	Name   string `json:"name"`
	Inputs struct {
		Args         json.RawMessage `json:"args"`
		ExistingFile *string         `json:"existing_file"`
	} `json:"inputs"`
	Error                       *string `json:"error"`
	ReturnedManifestContentHash *string `json:"returned_manifest_content_hash"`
	FileText                    *string `json:"file_text"`
	FileMode                    *string `json:"file_mode"`
	FileUnchanged               *bool   `json:"file_unchanged"`
	ReadManifestContentHash     *string `json:"read_manifest_content_hash"`
	ReadError                   *string `json:"read_error"`
}

type readRecord struct {
	Name                   string  `json:"name"`
	FileTextUTF8Hex        string  `json:"file_text_utf8_hex"`
	Valid                  bool    `json:"valid"`
	Error                  *string `json:"error"`
	ManifestContentHash    *string `json:"manifest_content_hash"`
	OfflineManifestVersion *int64  `json:"offline_manifest_version"`
}

type manifestSection struct {
	Written []writtenRecord `json:"written"`
	Read    []readRecord    `json:"read"`
}

func loadSection(t *testing.T) manifestSection {
	t.Helper()
	var s manifestSection
	if err := json.Unmarshal(compat.Section(t, "manifest"), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Written) == 0 || len(s.Read) == 0 {
		t.Fatal("manifest section has no records")
	}
	return s
}

// specFromArgs maps the writer's keyword arguments (a pyv dict) onto a Spec.
func specFromArgs(t *testing.T, raw json.RawMessage) *Spec {
	t.Helper()
	args, ok := compat.MustValue(t, raw).(*pyjson.Object)
	if !ok {
		t.Fatalf("args is not a dict: %s", raw)
	}
	s := &Spec{}
	for _, k := range args.Keys() {
		v, _ := args.Get(k)
		switch k {
		case "model_id":
			s.ModelID = v.(string)
		case "canonical_model_id":
			s.CanonicalModelID = v.(string)
		case "model_architecture":
			s.ModelArchitecture = optStr(v)
		case "task_type":
			s.TaskType = optStr(v)
		case "backend_type":
			s.BackendType = enumStr(v)
		case "model_features":
			s.ModelFeatures = v
		case "trusted_source":
			s.TrustedSource = optBool(v)
		case "dynamic_batch_size_supported":
			s.DynamicBatchSizeSupported = optBool(v)
		case "static_batch_size":
			if v != nil {
				n, _ := v.(pyjson.Int).Int64()
				s.StaticBatchSize = &n
			}
		case "quantization":
			s.Quantization = enumStr(v)
		case "model_dependencies":
			for _, it := range asList(v) {
				o := it.(*pyjson.Object)
				s.ModelDependencies = append(s.ModelDependencies, metadata.ModelDependency{
					Name: get(o, "name").(string), ModelID: get(o, "model_id").(string), ModelPackageID: optStr(get(o, "model_package_id")),
				})
			}
		case "recommended_parameters":
			if v != nil {
				o := v.(*pyjson.Object)
				rp := &metadata.RecommendedParameters{}
				if c := get(o, "confidence"); c != nil {
					f := toFloat(c)
					rp.Confidence = &f
				}
				if pc, ok := get(o, "per_class_confidence").(*pyjson.Object); ok {
					rp.PerClassConfidence = metadata.ClassConfidences{}
					for _, ck := range pc.Keys() {
						rp.PerClassConfidence = append(rp.PerClassConfidence, metadata.ClassConfidence{Class: ck, Confidence: toFloat(get(pc, ck))})
					}
				}
				s.RecommendedParameters = rp
			}
		case "package_artifacts":
			for _, it := range asList(v) {
				o := it.(*pyjson.Object)
				s.PackageArtifacts = append(s.PackageArtifacts, Artifact{
					FileHandle: get(o, "file_handle").(string),
					MD5Hash:    optStr(get(o, "md5_hash")),
					Unhashed:   get(o, "unhashed").(bool),
					SHA256Hash: optStr(get(o, "sha256_hash")),
					SourceHash: optStr(get(o, "source_hash")),
					Storage:    Storage(get(o, "storage").(string)),
				})
			}
		case "dependency_package_paths":
			for _, it := range asList(v) {
				o := it.(*pyjson.Object)
				s.DependencyPackagePaths = append(s.DependencyPackagePaths, DependencyPath{
					Name: get(o, "name").(string), TargetPath: get(o, "target_path").(string),
					CacheModelID: get(o, "cache_model_id").(string), CanonicalModelID: get(o, "canonical_model_id").(string),
					ModelPackageID: get(o, "model_package_id").(string), PackageManifestHash: get(o, "package_manifest_hash").(string),
				})
			}
		default:
			t.Fatalf("unknown writer argument %q", k)
		}
	}
	return s
}

func get(o *pyjson.Object, k string) any { v, _ := o.Get(k); return v }

func asList(v any) []any {
	if v == nil {
		return nil
	}
	return v.([]any)
}

func optStr(v any) *string {
	if v == nil {
		return nil
	}
	s := enumStr(v)
	return &s
}

func enumStr(v any) string {
	if e, ok := v.(pyjson.Enum); ok {
		return e.Value
	}
	return v.(string)
}

func optBool(v any) *bool {
	if v == nil {
		return nil
	}
	b := v.(bool)
	return &b
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case pyjson.Int:
		n, _ := x.Int64()
		return float64(n)
	}
	panic("not a number")
}

func TestVectorsWritten(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sec := loadSection(t)
	ctx := context.Background()
	locker := lock.NewLocker(lock.Options{})
	for _, r := range sec.Written {
		t.Run(r.Name, func(t *testing.T) {
			dir := t.TempDir()
			mpath := Path(dir)
			var before fsx.FileID
			if r.Inputs.ExistingFile != nil {
				if err := os.WriteFile(mpath, []byte(*r.Inputs.ExistingFile), 0o600); err != nil {
					t.Fatal(err)
				}
				var err error
				if before, err = fsx.LstatID(mpath); err != nil {
					t.Fatal(err)
				}
			}
			spec := specFromArgs(t, r.Inputs.Args)
			res, err := Write(ctx, dir, spec, WriteOptions{Locker: locker, Logger: quiet})
			if r.Error != nil {
				if !errors.Is(err, errdefs.ErrCorruptPackage) {
					t.Fatalf("want %s, got %v", *r.Error, err)
				}
				t.Logf("refused as expected: %v", err)
			} else if err != nil {
				t.Fatalf("unexpected error: %v", err)
			} else if r.ReturnedManifestContentHash == nil || res.ContentHash != *r.ReturnedManifestContentHash {
				t.Errorf("returned hash %s, want %v", res.ContentHash, r.ReturnedManifestContentHash)
			}

			got, rerr := os.ReadFile(mpath)
			if r.FileText == nil {
				if !errors.Is(rerr, os.ErrNotExist) {
					t.Fatalf("want no file, got %q (%v)", got, rerr)
				}
				return
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			if string(got) != *r.FileText {
				t.Fatalf("file text\n got %s\nwant %s", got, *r.FileText)
			}
			after, err := fsx.LstatID(mpath)
			if err != nil {
				t.Fatal(err)
			}
			if r.FileMode != nil {
				// The reference writes 0600; we write 0644 (documented improvement).
				if after.Mode.Perm() != 0o644 {
					t.Errorf("mode %v, want 0644", after.Mode.Perm())
				}
			}
			if r.FileUnchanged != nil && *r.FileUnchanged {
				if !before.Unchanged(after) || res.Written {
					t.Errorf("file was rewritten: before %s after %s", before, after)
				}
			}
			if r.FileUnchanged != nil && !*r.FileUnchanged && !res.Written {
				t.Errorf("legacy manifest not rewritten")
			}
			m, perr := Parse(got)
			switch {
			case r.ReadError != nil:
				if !errors.Is(perr, errdefs.ErrCorruptPackage) {
					t.Errorf("re-read: want %s, got %v", *r.ReadError, perr)
				}
			case r.ReadManifestContentHash != nil:
				if perr != nil {
					t.Fatalf("re-read: %v", perr)
				}
				if m.ContentHash() != *r.ReadManifestContentHash {
					t.Errorf("re-read hash %s, want %s", m.ContentHash(), *r.ReadManifestContentHash)
				}
			}
			// No temp files are left behind.
			ents, _ := os.ReadDir(dir)
			for _, e := range ents {
				if _, ok := fsx.ParseAtomicTempName(e.Name()); ok {
					t.Errorf("temp file left: %s", e.Name())
				}
			}
		})
	}
	t.Logf("manifest.written: checked %d records", len(sec.Written))
}

func TestVectorsRead(t *testing.T) {
	sec := loadSection(t)
	for _, r := range sec.Read {
		t.Run(r.Name, func(t *testing.T) {
			data, err := hex.DecodeString(r.FileTextUTF8Hex)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(data)
			if (err == nil) != r.Valid {
				t.Fatalf("valid=%v, want %v (err %v)", err == nil, r.Valid, err)
			}
			if err != nil {
				if !errors.Is(err, errdefs.ErrCorruptPackage) {
					t.Errorf("error %v does not wrap ErrCorruptPackage", err)
				}
				return
			}
			if r.ManifestContentHash == nil || m.ContentHash() != *r.ManifestContentHash {
				t.Errorf("hash %s, want %v", m.ContentHash(), r.ManifestContentHash)
			}
			var gotV *int64
			if m.Version != nil {
				v, _ := m.Version.Int64()
				gotV = &v
			}
			if (gotV == nil) != (r.OfflineManifestVersion == nil) || (gotV != nil && *gotV != *r.OfflineManifestVersion) {
				t.Errorf("version %v, want %v", gotV, r.OfflineManifestVersion)
			}
			if m.Complete() != (gotV != nil && *gotV == 4) {
				t.Errorf("Complete() = %v", m.Complete())
			}
			// Read from disk gives the same verdict.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
				t.Fatal(err)
			}
			m2, err := Read(context.Background(), dir)
			if err != nil || m2.ContentHash() != m.ContentHash() {
				t.Errorf("Read: %v", err)
			}
		})
	}
	t.Logf("manifest.read: checked %d records", len(sec.Read))
}
