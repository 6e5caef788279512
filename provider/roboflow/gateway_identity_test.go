package roboflow

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/provider"
)

// TestGatewayChangesUnhashedArtefactIdentity covers registry-protocol §6:
// the rewrite happens while parsing, so an unhashed artefact's source_hash is
// computed from the gateway URL, where the signature is inside the url
// parameter and is not stripped. Re-signing changes the identity behind a
// gateway, but not without one.
func TestGatewayChangesUnhashedArtefactIdentity(t *testing.T) {
	body := func(sig string) string {
		return mkPage(`{"type": "external-model-package-v1", "packageId": "p1", "packageManifest": {"type": "torch-model-package-v1", "backendType": "torch", "quantization": "fp32", "dynamicBatchSize": true},
			"packageFiles": [{"fileHandle": "labels.txt", "downloadUrl": "https://storage.example.com/b/labels.txt?versionId=3&X-Amz-Date=20260101T000000Z&X-Amz-Signature=`+sig+`", "md5Hash": null}]}`, "")
	}
	// The test server plays both the API and the gateway: it answers any
	// path, and the gateway's url= query carries no startAfter.
	fetch := func(gwPath, sig string) string {
		srv := httptest.NewServer(&pages{bodies: map[string]string{"": body(sig)}})
		defer srv.Close()
		gw := ""
		if gwPath != "" {
			gw = srv.URL + gwPath
		}
		c := New(Options{APIHost: srv.URL, SecureGateway: gw, Logger: slog.New(slog.DiscardHandler)})
		md, err := c.ModelMetadata(context.Background(), provider.Request{ModelID: "ws/m/1"})
		if err != nil {
			t.Fatal(err)
		}
		u := md.Packages[0].Artifacts[0].DownloadURL
		// Normalize the per-test server address so identities are comparable.
		return strings.ReplaceAll(u, srv.URL, "http://gw.local:8080")
	}
	direct1, direct2 := fetch("", "aaaa"), fetch("", "bbbb")
	if layout.SourceHash(direct1) != layout.SourceHash(direct2) {
		t.Fatal("without a gateway, re-signing must keep the identity")
	}
	gw1, gw2 := fetch("/edge", "aaaa"), fetch("/edge", "bbbb")
	if !strings.HasPrefix(gw1, "http://gw.local:8080/edge/proxy?url=https%3A%2F%2Fstorage.example.com") {
		t.Fatalf("not rewritten: %s", gw1)
	}
	if layout.SourceHash(gw1) == layout.SourceHash(gw2) {
		t.Fatal("behind a gateway, re-signing changes the identity (the reference's behaviour)")
	}
	if layout.SourceHash(gw1) == layout.SourceHash(fetch("/other-edge", "aaaa")) {
		t.Fatal("a changed gateway must change the identity")
	}
}
