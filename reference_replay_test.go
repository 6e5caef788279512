package modelcache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// recordedHost is where the reference downloaded from when it wrote the tree.
const recordedHost = "127.0.0.1:38917"

// counterBytes regenerates a served artefact: sha256(label:i) blocks, cut to size.
func counterBytes(label string, size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		s := sha256.Sum256([]byte(fmt.Sprintf("%s:%d", label, i)))
		b.Write(s[:])
	}
	return b.Bytes()[:size]
}

// TestReplayReferenceLoads serves the weights-API responses and the bytes the
// reference consumed, runs the same four loads through Load, and compares
// the tree Go writes with the one the reference wrote: the same paths, the
// same manifests byte for byte, the same entry file names with the same
// content (created_at and resolved_files order aside), links resolving to
// the same blobs, the same offline records (timestamps aside).
func TestReplayReferenceLoads(t *testing.T) {
	ctx := context.Background()
	tr := compat.LoadTree(t)
	// The recorded URLs (hence the unhashed artefact's source_hash) name the
	// recorded port; serve there when it is free, else rewrite them.
	ln, err := net.Listen("tcp", recordedHost)
	sameHost := err == nil
	if !sameHost {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s is busy: URLs rewritten to %s, source hashes not compared", recordedHost, ln.Addr())
	}
	base := "http://" + ln.Addr().String()
	files := map[string][]byte{}
	for path, a := range tr.ServedArtefacts {
		files["/files/"+path] = counterBytes(a.Label, a.Size)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/models/v1/external/weights" {
			body, ok := tr.ProviderResponses[r.URL.Query().Get("modelId")]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(bytes.ReplaceAll(body, []byte("http://"+recordedHost), []byte(base)))
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	var rt negotiation.Runtime
	if err := json.Unmarshal(tr.Environment.RuntimeXRay, &rt); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	cfg := config.Default()
	cfg.Home, cfg.APIHost, cfg.OfflineWarmUp = home, base, true
	c, err := modelcache.New(cfg, modelcache.WithRuntime(rt))
	if err != nil {
		t.Fatal(err)
	}
	for _, ld := range tr.Loads {
		opts := []modelcache.LoadOption{}
		var s string
		var b bool
		var eps []string
		for k, raw := range ld.Arguments {
			switch k {
			case "api_key":
				json.Unmarshal(raw, &s)
				opts = append(opts, modelcache.WithAPIKey(s))
			case "device":
				json.Unmarshal(raw, &s)
				opts = append(opts, modelcache.WithDevice(s))
			case "model_package_id":
				json.Unmarshal(raw, &s)
				opts = append(opts, modelcache.WithPackageID(s))
			case "onnx_execution_providers":
				json.Unmarshal(raw, &eps)
				opts = append(opts, modelcache.WithONNXExecutionProviders(eps...))
			case "download_files_without_hash":
				if json.Unmarshal(raw, &b); b {
					opts = append(opts, modelcache.AllowFilesWithoutHash())
				}
			default:
				t.Fatalf("load argument %q not mapped", k)
			}
		}
		pkg, err := c.Load(ctx, ld.ModelID, opts...)
		if err != nil {
			t.Fatalf("load %s %v: %v", ld.ModelID, ld.Arguments, err)
		}
		if want := tr.Expand(ld.PackageDir, home); pkg.Dir != want {
			t.Errorf("load %s: package dir %s, the reference used %s", ld.ModelID, pkg.Dir, want)
		}
	}

	// Compare the trees.
	want := map[string]compat.TreeEntry{}
	for _, e := range tr.Entries {
		want[e.Path] = e
	}
	got := map[string]bool{}
	filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == home {
			return err
		}
		rel, _ := filepath.Rel(home, p)
		rel = filepath.ToSlash(rel)
		if rel == ".meta" || rel == "CACHEDIR.TAG" {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil // ours, ignored by the reference (on-disk contract §12)
		}
		got[rel] = true
		w, ok := want[rel]
		if !ok {
			t.Errorf("Go wrote %s; the reference did not", rel)
			return nil
		}
		compareEntry(t, tr, home, rel, p, w, sameHost)
		return nil
	})
	for p := range want {
		if !got[p] {
			t.Errorf("the reference wrote %s; Go did not", p)
		}
	}
	t.Logf("replayed %d loads; compared %d paths with the reference's tree", len(tr.Loads), len(want))
}

func compareEntry(t *testing.T, tr *compat.Tree, home, rel, path string, w compat.TreeEntry, sameHost bool) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Error(err)
		return
	}
	switch w.Kind {
	case "dir":
		if !fi.IsDir() {
			t.Errorf("%s: want a directory", rel)
		}
	case "symlink":
		if fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("%s: want a symlink", rel)
			return
		}
		gotT, err1 := filepath.EvalSymlinks(path)
		wantT, err2 := filepath.EvalSymlinks(filepath.Join(home, filepath.FromSlash(w.Target)))
		if err1 != nil || err2 != nil || gotT != wantT {
			t.Errorf("%s resolves to %s (%v), the reference's to %s (%v)", rel, gotT, err1, wantT, err2)
		}
	case "file":
		if !fi.Mode().IsRegular() {
			t.Errorf("%s: want a regular file", rel)
			return
		}
		data, _ := os.ReadFile(path)
		switch {
		case w.ContentB64 != "" || w.Content == "":
			if w.Size != len(data) {
				t.Errorf("%s: %d bytes, the reference's %d", rel, len(data), w.Size)
			}
		case strings.HasSuffix(rel, "/model_config.json"):
			wantText := tr.Expand(w.Content, home)
			if !sameHost {
				wantText, data = dropKey(t, wantText, "source_hash"), []byte(dropKey(t, string(data), "source_hash"))
			}
			if string(data) != wantText {
				t.Errorf("%s differs:\n got %s\nwant %s", rel, data, wantText)
			}
		case strings.HasPrefix(rel, "auto-resolution-cache/"):
			ge, err1 := autoresolve.ParseEntry(data)
			we, err2 := autoresolve.ParseEntry([]byte(tr.Expand(w.Content, home)))
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: %v %v", rel, err1, err2)
			}
			ge.CreatedAt, we.CreatedAt = autoresolve.Timestamp{}, autoresolve.Timestamp{}
			sort.Strings(ge.ResolvedFiles)
			sort.Strings(we.ResolvedFiles)
			gb, _ := autoresolve.MarshalEntry(ge)
			wb, _ := autoresolve.MarshalEntry(we)
			if !bytes.Equal(gb, wb) {
				t.Errorf("%s differs (created_at and order aside):\n got %s\nwant %s", rel, gb, wb)
			}
		case strings.HasPrefix(rel, "offline-weights-registry/"):
			g, w := dropKey(t, string(data), "recorded_at", "last_proven_at"), dropKey(t, tr.Expand(w.Content, home), "recorded_at", "last_proven_at")
			if g != w {
				t.Errorf("%s differs (timestamps aside):\n got %s\nwant %s", rel, g, w)
			}
		}
	}
}

// dropKey re-encodes a JSON document without the named keys, at any depth.
func dropKey(t *testing.T, doc string, keys ...string) string {
	t.Helper()
	v, err := pyjson.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("%v: %s", err, doc)
	}
	var strip func(any)
	strip = func(v any) {
		switch x := v.(type) {
		case *pyjson.Object:
			for _, k := range keys {
				x.Delete(k)
			}
			for _, k := range x.Keys() {
				c, _ := x.Get(k)
				strip(c)
			}
		case []any:
			for _, c := range x {
				strip(c)
			}
		}
	}
	strip(v)
	b, _ := pyjson.MarshalSorted(v)
	return string(b)
}
