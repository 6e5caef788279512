package offlinereg

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// logBuffer collects slog output for assertions (and echoes it to t.Log).
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

func newTestRegistry(t testing.TB, root string) (*Registry, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	home, err := layout.NewHome(root)
	if err != nil {
		t.Fatal(err)
	}
	return New(home, Options{Logger: log, Locker: lock.NewLocker(lock.Options{Logger: log})}), logs
}

// vecMetadata is the vectors' mirror of the reference's ModelMetadata.
type vecMetadata struct {
	ModelID               string                     `json:"model_id"`
	ModelArchitecture     string                     `json:"model_architecture"`
	TaskType              *string                    `json:"task_type"`
	ModelVariant          *string                    `json:"model_variant"`
	ModelDependencies     []metadata.ModelDependency `json:"model_dependencies"`
	RecommendedParameters json.RawMessage            `json:"recommended_parameters"`
	ModelPackages         []vecPackage               `json:"model_packages"`
}

type vecPackage struct {
	PackageID                 string                              `json:"package_id"`
	Backend                   string                              `json:"backend"`
	Quantization              *string                             `json:"quantization"`
	DynamicBatchSizeSupported *bool                               `json:"dynamic_batch_size_supported"`
	StaticBatchSize           *int                                `json:"static_batch_size"`
	TrustedSource             bool                                `json:"trusted_source"`
	PackageSource             *string                             `json:"package_source"`
	CacheModelID              *string                             `json:"cache_model_id"`
	ModelFeatures             json.RawMessage                     `json:"model_features"`
	RecommendedParameters     json.RawMessage                     `json:"recommended_parameters"`
	EnvironmentRequirements   *metadata.EnvironmentRequirements   `json:"environment_requirements"`
	TRTPackageDetails         *metadata.TRTPackageDetails         `json:"trt_package_details"`
	ONNXPackageDetails        *metadata.ONNXPackageDetails        `json:"onnx_package_details"`
	TorchScriptPackageDetails *metadata.TorchScriptPackageDetails `json:"torch_script_package_details"`
	Artifacts                 []struct {
		Kind        string  `json:"kind"`
		FileHandle  string  `json:"file_handle"`
		MD5Hash     *string `json:"md5_hash"`
		DownloadURL string  `json:"download_url"`
	} `json:"artefacts"`
}

// pyvValue decodes an optional pyv (absent or JSON null means None).
func pyvValue(t testing.TB, raw json.RawMessage) any {
	t.Helper()
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return compat.MustValue(t, raw)
}

// recommendedFromPyv builds RecommendedParameters from a pyv dict, the way
// the reference's pydantic model holds it.
func recommendedFromPyv(t testing.TB, raw json.RawMessage) *metadata.RecommendedParameters {
	t.Helper()
	v := pyvValue(t, raw)
	if v == nil {
		return nil
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		t.Fatalf("recommended_parameters pyv is not a dict: %s", raw)
	}
	toFloat := func(x any) float64 {
		switch n := x.(type) {
		case float64:
			return n
		case pyjson.Int:
			i, _ := n.Int64()
			return float64(i)
		}
		t.Fatalf("not a number: %#v", x)
		return 0
	}
	rp := &metadata.RecommendedParameters{}
	if c, _ := o.Get("confidence"); c != nil {
		f := toFloat(c)
		rp.Confidence = &f
	}
	if pc, _ := o.Get("per_class_confidence"); pc != nil {
		m := pc.(*pyjson.Object)
		rp.PerClassConfidence = metadata.ClassConfidences{}
		for _, k := range m.Keys() {
			cv, _ := m.Get(k)
			rp.PerClassConfidence = append(rp.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: toFloat(cv)})
		}
	}
	return rp
}

func buildMetadata(t testing.TB, raw json.RawMessage) *metadata.ModelMetadata {
	t.Helper()
	var vm vecMetadata
	if err := json.Unmarshal(raw, &vm); err != nil {
		t.Fatalf("model_metadata: %v", err)
	}
	m := &metadata.ModelMetadata{
		ModelID:               vm.ModelID,
		ModelArchitecture:     vm.ModelArchitecture,
		TaskType:              vm.TaskType,
		ModelVariant:          vm.ModelVariant,
		ModelDependencies:     vm.ModelDependencies,
		RecommendedParameters: recommendedFromPyv(t, vm.RecommendedParameters),
		Packages:              []metadata.ModelPackage{},
	}
	for _, vp := range vm.ModelPackages {
		p := metadata.ModelPackage{
			PackageID:                 vp.PackageID,
			Backend:                   metadata.BackendType(vp.Backend),
			PackageSource:             metadata.SourcePlatform,
			DynamicBatchSizeSupported: vp.DynamicBatchSizeSupported,
			StaticBatchSize:           vp.StaticBatchSize,
			TrustedSource:             vp.TrustedSource,
			ModelFeatures:             pyvValue(t, vp.ModelFeatures),
			RecommendedParameters:     recommendedFromPyv(t, vp.RecommendedParameters),
			EnvironmentRequirements:   vp.EnvironmentRequirements,
			TRTPackageDetails:         vp.TRTPackageDetails,
			ONNXPackageDetails:        vp.ONNXPackageDetails,
			TorchScriptPackageDetails: vp.TorchScriptPackageDetails,
		}
		if vp.Quantization != nil {
			p.Quantization = metadata.Quantization(*vp.Quantization)
		}
		if vp.PackageSource != nil {
			p.PackageSource = metadata.PackageSource(*vp.PackageSource)
		}
		if vp.CacheModelID != nil {
			p.CacheModelID = *vp.CacheModelID
		}
		for _, a := range vp.Artifacts {
			p.Artifacts = append(p.Artifacts, metadata.Artifact{FileHandle: a.FileHandle, MD5Hash: a.MD5Hash, DownloadURL: a.DownloadURL})
		}
		m.Packages = append(m.Packages, p)
	}
	return m
}

func mustHome(root string) layout.Home {
	h, err := layout.NewHome(root)
	if err != nil {
		panic(err)
	}
	return h
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
