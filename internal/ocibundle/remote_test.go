package ocibundle_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/ocibundle"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/testsvc"
)

func openRemote(t *testing.T, ref string) *ocibundle.Remote {
	t.Helper()
	// An empty docker config: no credentials, no helpers from the host.
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	os.WriteFile(cfgPath, []byte("{}"), 0o600)
	r, err := ocibundle.OpenRemote(ref, ocibundle.RemoteOptions{PlainHTTP: true, RegistryConfig: cfgPath})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// Push to a real distribution registry, pull into an empty home: same
// files, same manifest, verifies, loads offline; the oras CLI fetches the
// same artifact with the files' names and bytes.
func TestPushPullThroughRegistry(t *testing.T) {
	reg := testsvc.StartRegistry(t)
	api := serveExamples(t)
	homeA := filepath.Join(t.TempDir(), "a")
	pkgs := warm(t, homeA, api, true, "parcel-det", "acme-ws/fruit-classifier/2")
	ctx := context.Background()

	ref := "oci://" + reg.Host + "/models/parcel-det:v1"
	root, stats, err := openRemote(t, ref).Push(ctx, graphOf(t, homeA, refsOf(pkgs[:1])), ocibundle.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if root.MediaType != ocibundle.MediaTypeOCIManifest || stats.Uploaded == 0 {
		t.Fatalf("push: %+v %+v", root, stats)
	}

	homeC := filepath.Join(t.TempDir(), "c")
	res, got, err := openRemote(t, ref).Pull(ctx, openCache(t, homeC, false), ocibundle.Options{Source: offlinereg.SourceOCIPull})
	if err != nil {
		t.Fatal(err)
	}
	if got.Digest != root.Digest || len(res.Packages) != 1 {
		t.Fatalf("pull: %+v %+v", got, res)
	}
	checkSamePackage(t, homeC, pkgs[0])
	if p := offlineLoad(t, homeC, "parcel-det"); p.PackageID != pkgs[0].PackageID {
		t.Errorf("offline load after pull chose %s", p.PackageID)
	}

	t.Run("oras pull yields the same names and bytes", func(t *testing.T) {
		out := t.TempDir()
		cmd := exec.Command(testsvc.ORAS().Path(t), "pull", "--plain-http", "-o", out, reg.Host+"/models/parcel-det:v1")
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+t.TempDir())
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("oras pull: %v\n%s", err, b)
		}
		for h, f := range pkgs[0].Files {
			if !sameBytes(readFile(t, f), readFile(t, filepath.Join(out, filepath.FromSlash(h)))) {
				t.Errorf("oras pulled different bytes for %s", h)
			}
		}
		b, err := exec.Command(testsvc.ORAS().Path(t), "manifest", "fetch", "--plain-http", reg.Host+"/models/parcel-det:v1").Output()
		if err != nil {
			t.Fatal(err)
		}
		var m struct {
			ArtifactType string `json:"artifactType"`
			Config       struct {
				MediaType string `json:"mediaType"`
			} `json:"config"`
		}
		if json.Unmarshal(b, &m) != nil || m.ArtifactType != ocibundle.ArtifactTypeModelManifest || m.Config.MediaType != ocibundle.MediaTypeModelConfig {
			t.Errorf("manifest as oras sees it: %s", b)
		}
	})

	t.Run("several packages under one tag", func(t *testing.T) {
		ref := "oci://" + reg.Host + "/models/all:v1"
		root, _, err := openRemote(t, ref).Push(ctx, graphOf(t, homeA, refsOf(pkgs)), ocibundle.PushOptions{})
		if err != nil || root.MediaType != ocibundle.MediaTypeOCIIndex {
			t.Fatalf("push: %+v %v", root, err)
		}
		homeD := filepath.Join(t.TempDir(), "d")
		res, _, err := openRemote(t, ref).Pull(ctx, openCache(t, homeD, false), ocibundle.Options{})
		if err != nil || len(res.Packages) != 2 {
			t.Fatalf("pull: %+v %v", res, err)
		}
		for _, p := range pkgs {
			checkSamePackage(t, homeD, p)
		}
	})

	t.Run("cross-repository mount", func(t *testing.T) {
		ref := "oci://" + reg.Host + "/other/parcel-det:v1"
		_, stats, err := openRemote(t, ref).Push(ctx, graphOf(t, homeA, refsOf(pkgs[:1])), ocibundle.PushOptions{MountFrom: []string{"models/parcel-det"}})
		if err != nil {
			t.Fatal(err)
		}
		if stats.Mounted == 0 {
			t.Errorf("no blob was mounted from models/parcel-det: %+v", stats)
		}
	})

	t.Run("a pull into a warm cache downloads no blob it has", func(t *testing.T) {
		res, _, err := openRemote(t, ref).Pull(ctx, openCache(t, homeC, false), ocibundle.Options{})
		if err != nil || res.BlobsSkipped == 0 || res.BlobsVerified != 0 {
			t.Fatalf("re-pull: %+v %v", res, err)
		}
	})
}
