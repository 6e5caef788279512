package negotiation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
)

type goldenFile struct {
	Format    int           `json:"format"`
	Reference string        `json:"reference"`
	Cases     []goldenCase  `json:"cases"`
	Registry  []goldenEntry `json:"registry"`
}

type goldenEntry struct {
	Architecture      string   `json:"architecture"`
	Task              string   `json:"task"`
	Backend           string   `json:"backend"`
	FeatureSets       bool     `json:"feature_sets"`
	SupportedFeatures []string `json:"supported_features"`
	RequiredFeatures  []string `json:"required_features"`
}

type goldenCase struct {
	Name  string   `json:"name"`
	Tags  []string `json:"tags"`
	Model struct {
		ModelID           string  `json:"modelId"`
		ModelArchitecture string  `json:"modelArchitecture"`
		TaskType          *string `json:"taskType"`
	} `json:"model"`
	PackagesAPI []json.RawMessage   `json:"packages_api"`
	Runtime     negotiation.Runtime `json:"runtime"`
	Config      struct {
		ONNXRuntimeExecutionProviders []string `json:"onnxruntime_execution_providers"`
	} `json:"config"`
	Request  json.RawMessage `json:"request"`
	Expected struct {
		ParsedPackageIDs []string `json:"parsed_package_ids"`
		DroppedPackages  []struct {
			Index     int             `json:"index"`
			PackageID json.RawMessage `json:"package_id"`
			Cause     string          `json:"cause"`
		} `json:"dropped_packages"`
		RankedPackageIDs []string          `json:"ranked_package_ids"`
		Error            string            `json:"error"`
		ErrorIsLibrary   *bool             `json:"error_is_library_error"`
		HelpURL          *string           `json:"help_url"`
		MessageContains  []string          `json:"message_contains"`
		Rejections       map[string]string `json:"rejections"`
		RejectionDetails map[string]struct {
			Stage string `json:"stage"`
			Code  string `json:"code"`
		} `json:"rejection_details"`
	} `json:"expected"`
}

func (c *goldenCase) has(tag string) bool { return slices.Contains(c.Tags, tag) }

func loadGolden(t testing.TB) goldenFile {
	t.Helper()
	var f goldenFile
	compat.Load(t, "negotiation-cases.json", &f)
	if f.Format != 1 || len(f.Cases) == 0 {
		t.Fatalf("negotiation-cases.json: format %d with %d cases", f.Format, len(f.Cases))
	}
	return f
}

// dropCause classifies a package entity the provider's parser skips, using
// only roboflow.ParsePackage: when the same entity with a manifest the
// reference ignores parses as "ignored", the entity itself is valid and the
// manifest was the problem.
func dropCause(t *testing.T, o *pyjson.Object) (string, bool) {
	_, err := roboflow.ParsePackage(o, "")
	if err == nil {
		return "", false
	}
	var skip *roboflow.PackageSkipError
	if !errors.As(err, &skip) {
		t.Fatalf("ParsePackage: unexpected error type %T: %v", err, err)
	}
	if skip.Reason == roboflow.SkipIgnored {
		return "ignored-manifest-type", true
	}
	if mv, ok := o.Get("packageManifest"); ok {
		if _, isObj := mv.(*pyjson.Object); isObj {
			probe := o.Clone()
			probe.Set("packageManifest", pyjson.ObjectOf("type", roboflow.ManifestTFJS))
			_, perr := roboflow.ParsePackage(probe, "")
			var ps *roboflow.PackageSkipError
			if errors.As(perr, &ps) && ps.Reason == roboflow.SkipIgnored {
				if skip.Reason == roboflow.SkipUnsupported {
					return "unknown-manifest-type", true
				}
				return "invalid-manifest", true
			}
		}
	}
	return "invalid-entity", true
}

// servePages serves each case's packages as one weights-API page; the case
// index is the requested model id, the canonical id is the case's.
func servePages(t *testing.T, cases []goldenCase) *httptest.Server {
	bodies := map[string][]byte{}
	for i := range cases {
		c := &cases[i]
		page := map[string]any{"modelMetadata": map[string]any{
			"type": roboflow.TypeModelMetadataV1, "modelId": c.Model.ModelID,
			"modelArchitecture": c.Model.ModelArchitecture, "taskType": c.Model.TaskType,
			"modelPackages": c.PackagesAPI, "nextPage": nil,
		}}
		b, err := json.Marshal(page)
		if err != nil {
			t.Fatal(err)
		}
		bodies[fmt.Sprintf("compat/case/%d", i)] = b
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Query().Get("modelId")]
		if r.URL.Path != roboflow.WeightsPath || !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
}

// TestGoldenNegotiationCases runs every case of negotiation-cases.json
// through the path `modelcache resolve` uses: the weights-API page served
// over HTTP, parsed by the Roboflow client, negotiated.
func TestGoldenNegotiationCases(t *testing.T) {
	gf := loadGolden(t)
	srv := servePages(t, gf.Cases)
	defer srv.Close()
	client := roboflow.New(roboflow.Options{APIHost: srv.URL, APIKey: "golden",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})

	passed := 0
	for i := range gf.Cases {
		c := &gf.Cases[i]
		ok := t.Run(c.Name, func(t *testing.T) { runGoldenCase(t, client, i, c) })
		if ok {
			passed++
		}
	}
	t.Logf("negotiation golden cases: %d/%d passed (%s)", passed, len(gf.Cases), gf.Reference)
	if passed != len(gf.Cases) {
		t.Errorf("%d golden cases failed", len(gf.Cases)-passed)
	}
}

func runGoldenCase(t *testing.T, client *roboflow.Client, i int, c *goldenCase) {
	exp := &c.Expected

	// 1. Per-entity parse: kept ids and dropped (index, package_id, cause).
	var kept []string
	type drop struct {
		idx   int
		id    string
		cause string
	}
	var drops []drop
	for idx, raw := range c.PackagesAPI {
		o, err := pyjson.DecodeObject(raw)
		if err != nil {
			t.Fatalf("packages_api[%d]: %v", idx, err)
		}
		if cause, dropped := dropCause(t, o); dropped {
			v, _ := o.Get("packageId")
			idJSON, _ := pyjson.Marshal(v)
			drops = append(drops, drop{idx, string(idJSON), cause})
			continue
		}
		pkg, _ := roboflow.ParsePackage(o, "")
		kept = append(kept, pkg.PackageID)
	}
	if !slices.Equal(kept, exp.ParsedPackageIDs) && !(len(kept) == 0 && len(exp.ParsedPackageIDs) == 0) {
		t.Errorf("parsed ids %v, want %v", kept, exp.ParsedPackageIDs)
	}
	var wantDrops []drop
	for _, d := range exp.DroppedPackages {
		v, err := pyjson.Decode(d.PackageID)
		if err != nil {
			t.Fatal(err)
		}
		idJSON, _ := pyjson.Marshal(v)
		wantDrops = append(wantDrops, drop{d.Index, string(idJSON), d.Cause})
	}
	if !slices.Equal(drops, wantDrops) {
		t.Errorf("dropped %v, want %v", drops, wantDrops)
	}

	// 2. Request, runtime, configuration.
	req, err := negotiation.DecodeRequest(c.Request)
	if err != nil {
		t.Fatalf("request: %v", err)
	}
	req.EnvONNXExecutionProviders = c.Config.ONNXRuntimeExecutionProviders

	// 3. Negotiate through the client, as resolve does. An empty packages
	// array fails in the provider (ModelRetrievalError), which the cases
	// leave out: they test negotiation's own empty-list error.
	var (
		md  *metadata.ModelMetadata
		rep *negotiation.Report
	)
	if len(c.PackagesAPI) == 0 {
		md = &metadata.ModelMetadata{ModelID: c.Model.ModelID, ModelArchitecture: c.Model.ModelArchitecture, TaskType: c.Model.TaskType}
		rep, err = negotiation.Negotiate(md, req, c.Runtime)
	} else {
		md, err = client.ModelMetadata(context.Background(), provider.Request{ModelID: fmt.Sprintf("compat/case/%d", i)})
		if md == nil {
			t.Fatalf("provider: %v", err)
		}
		rep, err = negotiation.Negotiate(md, req, c.Runtime)
		var ids []string
		for _, p := range md.Packages {
			ids = append(ids, p.PackageID)
		}
		if !slices.Equal(ids, kept) {
			t.Errorf("client parsed %v, ParsePackage kept %v", ids, kept)
		}
		if md.ModelID != c.Model.ModelID {
			t.Errorf("canonical id %q, want %q", md.ModelID, c.Model.ModelID)
		}
	}

	// 4. Result.
	if exp.Error == "" {
		if err != nil {
			t.Fatalf("unexpected error %s: %v", negotiation.ClassName(err), err)
		}
		if !slices.Equal(rep.Selected, exp.RankedPackageIDs) {
			t.Errorf("ranked %v, want %v", rep.Selected, exp.RankedPackageIDs)
		}
	} else {
		if err == nil {
			t.Fatalf("no error, want %s (selected %v)", exp.Error, rep.Selected)
		}
		if got := negotiation.ClassName(err); got != exp.Error {
			t.Fatalf("error class %q, want %q: %v", got, exp.Error, err)
		}
		isLib := errors.Is(err, negotiation.ErrNegotiation)
		if exp.ErrorIsLibrary != nil && isLib != *exp.ErrorIsLibrary {
			t.Errorf("library error %v, want %v", isLib, *exp.ErrorIsLibrary)
		}
		if exp.HelpURL != nil {
			if got := negotiation.HelpURL(exp.Error); got != *exp.HelpURL {
				t.Errorf("help url %q, want %q", got, *exp.HelpURL)
			}
			if !strings.HasSuffix(err.Error(), " - VISIT "+*exp.HelpURL+" FOR FURTHER SUPPORT") {
				t.Errorf("error text lacks the help suffix: %q", err.Error())
			}
		}
		msg := negotiation.Message(err)
		for _, phrase := range exp.MessageContains {
			if !strings.Contains(msg, phrase) {
				t.Errorf("message lacks %q:\n%s", phrase, msg)
			}
		}
	}

	// 5. Rejections: same packages, stage, code and reason text.
	if exp.Rejections == nil {
		return
	}
	if rep == nil {
		t.Fatal("no report")
	}
	got := map[string]negotiation.Rejection{}
	for _, r := range rep.Rejections {
		if _, dup := got[r.PackageID]; dup {
			t.Errorf("package %s rejected twice", r.PackageID)
		}
		got[r.PackageID] = r
	}
	for id, reason := range exp.Rejections {
		r, ok := got[id]
		if !ok {
			t.Errorf("package %s not rejected, want %s/%s", id, exp.RejectionDetails[id].Stage, exp.RejectionDetails[id].Code)
			continue
		}
		d := exp.RejectionDetails[id]
		if string(r.Stage) != d.Stage || string(r.Code) != d.Code {
			t.Errorf("package %s rejected at %s/%s, want %s/%s", id, r.Stage, r.Code, d.Stage, d.Code)
		}
		if r.Reason != reason {
			t.Errorf("package %s reason\n got: %q\nwant: %q", id, r.Reason, reason)
		}
	}
	for id, r := range got {
		if _, ok := exp.Rejections[id]; !ok {
			t.Errorf("package %s rejected (%s/%s) but the reference kept it", id, r.Stage, r.Code)
		}
	}
	if !rep.ByID {
		seen := map[string]bool{}
		for _, id := range rep.Selected {
			seen[id] = true
		}
		for id := range got {
			seen[id] = true
		}
		for _, id := range exp.ParsedPackageIDs {
			if !seen[id] {
				t.Errorf("package %s neither selected nor rejected", id)
			}
		}
	}
}

// TestGoldenRegistry compares the compiled-in registry with the reference's
// snapshot in negotiation-cases.json.
func TestGoldenRegistry(t *testing.T) {
	gf := loadGolden(t)
	key := func(a, task, b string) string { return a + "|" + task + "|" + b }
	want := map[string]goldenEntry{}
	for _, e := range gf.Registry {
		want[key(e.Architecture, e.Task, e.Backend)] = e
	}
	got := negotiation.Registry()
	if len(got) != len(want) {
		t.Errorf("registry has %d entries, snapshot %d", len(got), len(want))
	}
	norm := func(s []string) []string {
		out := append([]string{}, s...)
		slices.Sort(out)
		return out
	}
	for _, e := range got {
		k := key(e.Architecture, e.Task, string(e.Backend))
		w, ok := want[k]
		if !ok {
			t.Errorf("%s: not in the reference registry", k)
			continue
		}
		delete(want, k)
		if e.FeatureSets != w.FeatureSets || !slices.Equal(norm(e.SupportedFeatures), norm(w.SupportedFeatures)) ||
			!slices.Equal(norm(e.RequiredFeatures), norm(w.RequiredFeatures)) {
			t.Errorf("%s: feature sets %v %v %v, reference %v %v %v", k, e.FeatureSets, e.SupportedFeatures,
				e.RequiredFeatures, w.FeatureSets, w.SupportedFeatures, w.RequiredFeatures)
		}
	}
	for k := range want {
		t.Errorf("%s: missing from our registry", k)
	}
}
