package cache_test

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/negotiation"
)

func openAt(t *testing.T, home string, opts ...cache.Option) *cache.Cache {
	t.Helper()
	cfg := config.Default()
	cfg.Home = home
	c, err := cache.Open(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The cache written by the reference (python-cache/tree.json), rebuilt in a
// temporary INFERENCE_HOME with its absolute links re-rooted there, is
// recognised as it is: slugs and blob names match, every package is complete
// and verifies, dependency hashes agree, entries parse and their keys are the
// ones Go computes from the recorded load arguments.
func TestReferenceTreeIsRecognised(t *testing.T) {
	ctx := context.Background()
	tr := compat.LoadTree(t)
	home := t.TempDir()
	tr.Build(t, home)
	c := openAt(t, home)

	// Slugs: every model dir in the tree is the slug of a loaded model id.
	slugs := map[string]bool{}
	for id := range tr.ProviderResponses {
		var body struct {
			ModelMetadata struct {
				ModelID string `json:"modelId"`
			} `json:"modelMetadata"`
		}
		if err := json.Unmarshal(tr.ProviderResponses[id], &body); err != nil {
			t.Fatal(err)
		}
		s, err := layout.Slug(body.ModelMetadata.ModelID)
		if err != nil {
			t.Fatal(err)
		}
		slugs[s] = true
	}
	// Blob names are the MD5 of their bytes.
	blobs, _ := os.ReadDir(c.Home.SharedBlobs())
	nblobs := 0
	for _, b := range blobs {
		if strings.HasPrefix(b.Name(), ".") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(c.Home.SharedBlobs(), b.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sum := md5.Sum(data)
		if hex.EncodeToString(sum[:]) != b.Name() {
			t.Errorf("blob %s holds bytes with MD5 %x", b.Name(), sum)
		}
		nblobs++
	}

	pkgs, err := c.ScanPackages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) != 4 {
		t.Fatalf("found %d packages, the reference wrote 4", len(pkgs))
	}
	hashes := map[string]string{} // package dir -> manifest content hash
	for _, p := range pkgs {
		if !slugs[p.Slug] {
			t.Errorf("model dir %s is not the slug of any loaded model", p.Slug)
		}
		if p.State != cache.StateComplete {
			t.Errorf("%s/%s: state %s (%v)", p.Slug, p.PackageID, p.State, p.Err)
			continue
		}
		m, err := c.Packages.VerifyPackage(ctx, p.Dir)
		if err != nil {
			t.Errorf("%s/%s does not verify: %v", p.Slug, p.PackageID, err)
			continue
		}
		hashes[p.Dir] = m.ContentHash()
		// The reference's absolute links resolve under this home.
		for _, a := range m.PackageArtifacts {
			if a.Storage != manifest.StorageSharedBlob {
				continue
			}
			target, _ := os.Readlink(filepath.Join(p.Dir, a.FileHandle))
			want, _ := c.Home.BlobPath(*a.MD5Hash)
			if target != want {
				t.Errorf("%s: link %s, want %s", a.FileHandle, target, want)
			}
		}
	}
	// Dependents record their dependency's manifest hash.
	deps := 0
	for _, p := range pkgs {
		if p.Manifest == nil {
			continue
		}
		for _, d := range p.Manifest.DependencyPackagePaths {
			deps++
			if got := hashes[d.TargetPath]; got != d.PackageManifestHash {
				t.Errorf("%s depends on %s: recorded hash %s, manifest hash %s", p.PackageID, d.TargetPath, d.PackageManifestHash, got)
			}
		}
	}
	if deps == 0 {
		t.Error("the tree's dependency links were not seen")
	}

	// Keys recomputed from the recorded load arguments name the entry files.
	var rc negotiation.Runtime
	if err := json.Unmarshal(tr.Environment.RuntimeCompatibility, &rc); err != nil {
		t.Fatal(err)
	}
	keys := 0
	for _, ld := range tr.Loads {
		for _, k := range ld.AutoResolutionKeys {
			req := requestFromLoad(t, ld, k.ModelID, k.RequestedPackageID, rc)
			hash, content, err := autoresolve.Key(req)
			if err != nil {
				t.Fatal(err)
			}
			if string(content) != k.ContentJSON || hash != k.Hash {
				t.Errorf("load %s key %s:\n got %s\nwant %s", ld.ModelID, k.Hash, content, k.ContentJSON)
			}
			if _, err := os.Stat(filepath.Join(c.Home.AutoResolutionCache(), hash+".json")); err != nil {
				t.Errorf("no entry file for key %s: %v", hash, err)
			}
			keys++
		}
	}

	// Entries: valid under a clock just after they were written, every
	// resolved file present; expired (and removed) under the real clock and
	// the default 24 h TTL.
	entries, _ := filepath.Glob(filepath.Join(c.Home.AutoResolutionCache(), "*.json"))
	if len(entries) == 0 || keys < len(entries) {
		t.Fatalf("%d entries, %d keys recomputed", len(entries), keys)
	}
	written, err := time.ParseInLocation("2006-01-02T15:04:05.999999", tr.Environment.ClockCoreCreatedAt[len(tr.Environment.ClockCoreCreatedAt)-1], time.Local)
	if err != nil {
		t.Fatal(err)
	}
	then := openAt(t, home, cache.WithClock(func() time.Time { return written.Add(time.Hour) }))
	for _, path := range entries {
		key := strings.TrimSuffix(filepath.Base(path), ".json")
		e, ok, err := then.Resolutions.Retrieve(ctx, key)
		if err != nil || !ok {
			t.Fatalf("entry %s not valid just after it was written: %v", key, err)
		}
		for _, f := range e.ResolvedFiles {
			if _, err := os.Stat(f); err != nil {
				t.Errorf("entry %s: resolved file %s: %v", key, f, err)
			}
		}
		if e.CredentialHash == nil || *e.CredentialHash != autoresolve.CredentialHash(&tr.Environment.APIKey) {
			t.Errorf("entry %s: credential hash is not that of the recorded key", key)
		}
	}
	for _, path := range entries {
		key := strings.TrimSuffix(filepath.Base(path), ".json")
		if _, ok, err := c.Resolutions.Retrieve(ctx, key); ok || err != nil {
			t.Errorf("entry %s from %s still valid under a 24 h TTL (%v)", key, written.Format(time.DateOnly), err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("expired entry %s not removed online", key)
		}
	}
	t.Logf("reference tree: %d packages verified, %d blobs, %d dependency links, %d entries (%d keys recomputed)", len(pkgs), nblobs, deps, len(entries), keys)
}

func requestFromLoad(t *testing.T, ld compat.TreeLoad, modelID string, pkgID *string, rc negotiation.Runtime) autoresolve.Request {
	t.Helper()
	var device string
	json.Unmarshal(ld.Arguments["device"], &device)
	req := autoresolve.NewRequest(modelID, device)
	req.Runtime = rc
	req.ModelPackageID = pkgID
	if raw, ok := ld.Arguments["api_key"]; ok {
		var k string
		json.Unmarshal(raw, &k)
		req.APIKey = &k
	}
	if raw, ok := ld.Arguments["onnx_execution_providers"]; ok {
		var eps []string
		json.Unmarshal(raw, &eps)
		for _, n := range eps {
			req.ONNXExecutionProviders = append(req.ONNXExecutionProviders, negotiation.ExecutionProvider{Name: n})
		}
	}
	if raw, ok := ld.Arguments["download_files_without_hash"]; ok {
		json.Unmarshal(raw, &req.DownloadFilesWithoutHash)
	}
	for name := range ld.Arguments {
		switch name {
		case "device", "api_key", "onnx_execution_providers", "model_package_id", "download_files_without_hash":
		default:
			t.Fatalf("load argument %q not mapped", name)
		}
	}
	if modelID != ld.ModelID {
		// A nested dependency load: the reference disables dependency loading there.
		req.AllowLoadingDependencyModels = false
	}
	return req
}
