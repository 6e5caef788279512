package roboflow

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// TestGoldenProviderResponses serves the exact weights-API bodies the
// reference consumed (python-cache/tree.json) and checks that what we parse
// matches what the reference wrote into each package's model_config.json.
func TestGoldenProviderResponses(t *testing.T) {
	tr := compat.LoadTree(t)
	if len(tr.ProviderResponses) == 0 {
		t.Fatal("no provider responses in tree.json")
	}
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Authorization"))
		body, ok := tr.ProviderResponses[r.URL.Query().Get("modelId")]
		if !ok {
			w.WriteHeader(404)
			return
		}
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	c := New(Options{APIHost: srv.URL, APIKey: tr.Environment.APIKey})

	// model_config.json documents by (canonical id, package id).
	manifests := map[string]*pyjson.Object{}
	for _, e := range tr.Entries {
		if e.Kind != "file" || !strings.HasSuffix(e.Path, "/model_config.json") || e.Content == "" {
			continue
		}
		o, err := pyjson.DecodeObject([]byte(e.Content))
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		cid, _ := o.Get("canonical_model_id")
		parts := strings.Split(e.Path, "/")
		manifests[cid.(string)+"|"+parts[len(parts)-2]] = o
	}
	if len(manifests) == 0 {
		t.Fatal("no model_config.json in the tree")
	}
	checked := 0
	for requested, raw := range tr.ProviderResponses {
		md, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: requested})
		if err != nil {
			t.Fatalf("%s: %v", requested, err)
		}
		page, err := parsePage(raw)
		if err != nil {
			t.Fatal(err)
		}
		if md.ModelID != page.modelID || len(md.Packages) != len(page.packages) {
			t.Fatalf("%s: model %s with %d packages, body has %s with %d", requested, md.ModelID, len(md.Packages), page.modelID, len(page.packages))
		}
		for _, p := range md.Packages {
			man, ok := manifests[md.ModelID+"|"+p.PackageID]
			if !ok {
				continue
			}
			checked++
			compareWithManifest(t, md, &p, man)
		}
	}
	if checked == 0 {
		t.Fatal("no package could be compared with a reference manifest")
	}
	for _, k := range keys {
		if k != "Bearer "+tr.Environment.APIKey {
			t.Fatalf("Authorization %q", k)
		}
	}
}

func compareWithManifest(t *testing.T, md *metadata.ModelMetadata, p *metadata.ModelPackage, man *pyjson.Object) {
	t.Helper()
	where := md.ModelID + "/" + p.PackageID
	get := func(k string) any { v, _ := man.Get(k); return v }
	str := func(s *string) any {
		if s == nil {
			return nil
		}
		return *s
	}
	eq := func(field string, got any) {
		t.Helper()
		if !pyjson.Equal(got, get(field)) {
			gb, _ := pyjson.Marshal(got)
			wb, _ := pyjson.Marshal(get(field))
			t.Errorf("%s: %s = %s, reference wrote %s", where, field, gb, wb)
		}
	}
	eq("model_architecture", md.ModelArchitecture)
	eq("task_type", str(md.TaskType))
	eq("backend_type", string(p.Backend))
	eq("model_features", p.ModelFeatures)
	eq("trusted_source", p.TrustedSource)
	eq("quantization", string(p.Quantization))
	var dyn, static any
	if p.DynamicBatchSizeSupported != nil {
		dyn = *p.DynamicBatchSizeSupported
	}
	if p.StaticBatchSize != nil {
		static = *p.StaticBatchSize
	}
	eq("dynamic_batch_size_supported", dyn)
	eq("static_batch_size", static)
	deps := []any{}
	for _, d := range md.ModelDependencies {
		deps = append(deps, pyjson.ObjectOf("name", d.Name, "model_id", d.ModelID, "model_package_id", str(d.ModelPackageID)))
	}
	eq("model_dependencies", deps)
	var rec any
	if r := p.EffectiveRecommendedParameters(md); r != nil {
		var conf, pcc any
		if r.Confidence != nil {
			conf = *r.Confidence
		}
		if r.PerClassConfidence != nil {
			o := pyjson.NewObject()
			for _, e := range r.PerClassConfidence {
				o.Set(e.Class, e.Confidence)
			}
			pcc = o
		}
		rec = pyjson.ObjectOf("confidence", conf, "per_class_confidence", pcc)
	}
	eq("recommended_parameters", rec)
	// Artifacts: same handles and MD5s (null MD5 = unhashed).
	arts, _ := get("package_artifacts").([]any)
	want := map[string]any{}
	for _, a := range arts {
		ao := a.(*pyjson.Object)
		h, _ := ao.Get("file_handle")
		m, _ := ao.Get("md5_hash")
		want[h.(string)] = m
	}
	if len(want) != len(p.Artifacts) {
		t.Errorf("%s: %d artefacts, reference recorded %d", where, len(p.Artifacts), len(want))
	}
	for _, a := range p.Artifacts {
		m, ok := want[a.FileHandle]
		if !ok || !pyjson.Equal(str(a.MD5Hash), m) {
			t.Errorf("%s: artefact %s md5 %v, reference %v", where, a.FileHandle, str(a.MD5Hash), m)
		}
		if _, err := url.Parse(a.DownloadURL); err != nil || a.DownloadURL == "" {
			t.Errorf("%s: bad URL %q", where, a.DownloadURL)
		}
	}
}
