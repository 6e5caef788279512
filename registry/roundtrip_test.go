package registry

import (
	"context"
	"errors"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

func TestLoadExamplesContent(t *testing.T) {
	reg := loadExamples(t)
	if len(reg.Models) < 3 {
		t.Fatalf("want >= 3 example models, got %d", len(reg.Models))
	}
	m, ok := reg.Lookup("parcel-det")
	if !ok || m.ID != "acme-ws/parcel-detector/7" {
		t.Fatalf("alias parcel-det does not resolve to the detector: %v %v", ok, m)
	}
	backends := map[metadata.BackendType]int{}
	jetson, servers := 0, 0
	for _, p := range m.Packages {
		if p.Parsed == nil {
			t.Fatalf("package %s not parseable", p.ID)
		}
		backends[p.Parsed.Backend]++
		if e := p.Parsed.EnvironmentRequirements; e != nil {
			if e.Kind == metadata.MachineJetson {
				jetson++
			} else {
				servers++
			}
		}
	}
	if backends[metadata.BackendONNX] < 2 || backends[metadata.BackendTRT] < 3 || backends[metadata.BackendTorch] < 1 || jetson < 1 || servers < 2 {
		t.Fatalf("detector packages do not cover onnx fp32/fp16, several TRT and torch: %v jetson=%d servers=%d", backends, jetson, servers)
	}
	tasks := map[string]bool{}
	for _, m := range reg.Models {
		if m.TaskType != nil {
			tasks[*m.TaskType] = true
		}
	}
	for _, want := range []string{"object-detection", "instance-segmentation", "classification"} {
		if !tasks[want] {
			t.Errorf("no example model with task %s", want)
		}
	}
}

// TestClientRoundTripExamples fetches every example model (and the alias)
// through the Roboflow client over loopback and downloads every file.
func TestClientRoundTripExamples(t *testing.T) {
	reg := loadExamples(t)
	_, ts := serve(t, reg, Options{}, nil)
	c := client(ts.URL, nil)
	for _, id := range []string{"parcel-det", "acme-ws/parcel-detector/7", "acme-ws/parcel-segmenter/3", "acme-ws/fruit-classifier/2"} {
		md, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: id})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		m, _ := reg.Lookup(id)
		if md.ModelID != m.ID || md.ModelArchitecture != m.Architecture {
			t.Fatalf("%s: got model %q/%q, want %q/%q", id, md.ModelID, md.ModelArchitecture, m.ID, m.Architecture)
		}
		if len(md.Packages) != len(m.Packages) {
			t.Fatalf("%s: %d packages, want %d", id, len(md.Packages), len(m.Packages))
		}
		for i, p := range md.Packages {
			want := m.Packages[i]
			if p.PackageID != want.ID || p.Backend != want.Parsed.Backend || p.Quantization != want.Parsed.Quantization || p.TrustedSource != want.Trusted {
				t.Fatalf("%s: package %d = %s/%s/%s, want %s/%s/%s", id, i, p.PackageID, p.Backend, p.Quantization, want.ID, want.Parsed.Backend, want.Parsed.Quantization)
			}
			if len(p.Artifacts) != len(want.Files) {
				t.Fatalf("%s/%s: %d artefacts, want %d", id, p.PackageID, len(p.Artifacts), len(want.Files))
			}
			for j, a := range p.Artifacts {
				if !strings.HasPrefix(a.DownloadURL, ts.URL+"/files/") {
					t.Fatalf("download URL %q is not absolute under %s", a.DownloadURL, ts.URL)
				}
				resp, body := get(t, a.DownloadURL, nil)
				if resp.StatusCode != 200 || a.MD5Hash == nil || md5hex(body) != *a.MD5Hash {
					t.Fatalf("%s %s: status %d, md5 %s vs announced %v", p.PackageID, a.FileHandle, resp.StatusCode, md5hex(body), a.MD5Hash)
				}
				disk, err := os.ReadFile(want.Files[j].Path)
				if err != nil || string(disk) != string(body) || a.FileHandle != want.Files[j].Handle {
					t.Fatalf("%s: served bytes differ from %s", a.FileHandle, want.Files[j].Path)
				}
			}
		}
		if id == "acme-ws/parcel-detector/7" {
			if md.RecommendedParameters == nil || *md.RecommendedParameters.Confidence != 0.42 {
				t.Fatalf("model recommended parameters lost: %+v", md.RecommendedParameters)
			}
			if v, ok := md.RecommendedParameters.PerClassConfidence.Get("label"); !ok || v != 0.38 {
				t.Fatalf("per-class confidence lost: %+v", md.RecommendedParameters.PerClassConfidence)
			}
		}
	}
}

func TestPublicURLSetsDownloadBase(t *testing.T) {
	reg := loadExamples(t)
	_, ts := serve(t, reg, Options{PublicURL: "https://models.example.com/base/"}, nil)
	md, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "acme-ws/fruit-classifier/2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range md.Packages {
		for _, a := range p.Artifacts {
			if !strings.HasPrefix(a.DownloadURL, "https://models.example.com/base/files/"+*a.MD5Hash+"/") {
				t.Fatalf("URL %q does not use the public URL", a.DownloadURL)
			}
		}
	}
	if _, err := New(reg, Options{PublicURL: "models.example.com"}); err == nil {
		t.Fatal("public URL without scheme accepted")
	}
}

func TestPaginationSeveralPages(t *testing.T) {
	root := manyPackages(t, 7)
	reg, err := Load(context.Background(), root, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counter{}
	_, ts := serve(t, reg, Options{PageSize: 2}, cnt.wrap)
	md, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "ws/many/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Packages) != 7 || cnt.n() != 4 {
		t.Fatalf("got %d packages in %d requests, want 7 in 4", len(md.Packages), cnt.n())
	}
	for i, p := range md.Packages {
		if p.PackageID != reg.Models[0].Packages[i].ID {
			t.Fatalf("package order broken at %d: %s", i, p.PackageID)
		}
	}
	if !strings.Contains(cnt.queries[1], "startAfter=pab") || md.NextPage != nil {
		t.Fatalf("cursor not passed or last page has nextPage: %v %v", cnt.queries, md.NextPage)
	}
	// A client-chosen pageSize overrides the server default.
	resp, body := get(t, ts.URL+"/models/v1/external/weights?modelId=ws%2Fmany%2F1&pageSize=3", nil)
	o := decodeObj(t, body)
	mm, _ := o.Get("modelMetadata")
	pk, _ := mm.(interface{ Get(string) (any, bool) }).Get("modelPackages")
	if resp.StatusCode != 200 || len(pk.([]any)) != 3 {
		t.Fatalf("pageSize=3 gave %d packages", len(pk.([]any)))
	}
	if resp, _ := get(t, ts.URL+"/models/v1/external/weights?modelId=ws%2Fmany%2F1&startAfter=nope", nil); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown cursor: status %d", resp.StatusCode)
	}
}

// TestClientStopsAfterTenPages: a server that pages forever (MaxPages raised
// above the reference's cap) is read for exactly 10 pages.
func TestClientStopsAfterTenPages(t *testing.T) {
	reg, err := Load(context.Background(), manyPackages(t, 12), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counter{}
	_, ts := serve(t, reg, Options{PageSize: 1, MaxPages: 100}, cnt.wrap)
	md, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "ws/many/1"})
	if err != nil {
		t.Fatal(err)
	}
	if cnt.n() != 10 || len(md.Packages) != 10 {
		t.Fatalf("client made %d requests and kept %d packages; want 10 and 10", cnt.n(), len(md.Packages))
	}
	if md.NextPage == nil || *md.NextPage != "paj" {
		t.Fatalf("nextPage of the 10th page should be kept as-is: %v", md.NextPage)
	}
}

// TestServerKeepsWithinTenPages: with the default MaxPages the server raises
// the page size so that a model never needs more than 10 pages.
func TestServerKeepsWithinTenPages(t *testing.T) {
	reg, err := Load(context.Background(), manyPackages(t, 23), LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counter{}
	_, ts := serve(t, reg, Options{PageSize: 1}, cnt.wrap)
	md, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "ws/many/1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(md.Packages) != 23 || cnt.n() != 8 {
		t.Fatalf("got %d packages in %d pages; want 23 in 8 (page size raised to 3)", len(md.Packages), cnt.n())
	}
}

func TestUnknownModel404(t *testing.T) {
	_, ts := serve(t, loadExamples(t), Options{}, nil)
	_, err := client(ts.URL, nil).ModelMetadata(context.Background(), provider.Request{ModelID: "nope/1"})
	var re *provider.RetrievalError
	if !errors.As(err, &re) || re.Kind != provider.KindNotFound || re.StatusCode != 404 {
		t.Fatalf("want ModelNotFound, got %v", err)
	}
}
