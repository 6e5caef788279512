package roboflow

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/layout"
)

// A weights-API page is the first thing modelcache reads from the network:
// whatever the body, parsing never panics, and what the parser keeps (it
// keeps what the reference keeps: ids and handles are checked at load time)
// is either declared by the load-time checks or refused with a typed error.
func FuzzParsePage(f *testing.F) {
	var cases struct {
		Cases []struct {
			Model       map[string]any    `json:"model"`
			PackagesAPI []json.RawMessage `json:"packages_api"`
		} `json:"cases"`
	}
	compat.Load(f, "negotiation-cases.json", &cases)
	for i, c := range cases.Cases {
		if i%4 != 0 {
			continue
		}
		page := map[string]any{"modelMetadata": map[string]any{
			"type": TypeModelMetadataV1, "modelId": c.Model["modelId"], "modelArchitecture": c.Model["modelArchitecture"],
			"taskType": c.Model["taskType"], "modelPackages": c.PackagesAPI, "nextPage": nil,
		}}
		b, err := json.Marshal(page)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"modelMetadata": {"type": "external-model-metadata-v1", "modelId": "a/1", "modelPackages": [{}], "nextPage": "\u0000"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		pg, err := parsePage(body)
		if err != nil {
			return
		}
		for _, o := range pg.packages {
			pkg, _, err := parsePackage(o, "")
			if err != nil || pkg == nil {
				continue
			}
			if err := layout.ValidatePackageID(pkg.PackageID); err != nil && !errors.Is(err, errdefs.ErrInsecureIdentifier) {
				t.Fatalf("package id %q: untyped error %v", pkg.PackageID, err)
			}
			if _, err := layout.Declarations(pkg.Artifacts); err != nil && !errors.Is(err, errdefs.ErrCorruptPackage) {
				t.Fatalf("package %q: untyped error %v", pkg.PackageID, err)
			}
		}
	})
}
