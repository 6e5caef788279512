// Package maintaintest builds real caches for tests of package maintain and
// of the CLI: packages through materialize.Store.Materialize with an
// in-memory fetcher, auto-resolution entries through autoresolve Register,
// offline records through offlinereg. Nothing here fakes the on-disk format.
package maintaintest

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/metadata"
)

// Cache is a temporary INFERENCE_HOME with its stores and a Maintainer
// sharing one adjustable clock.
type Cache struct {
	T      testing.TB
	Config config.Config
	C      *cache.Cache
	M      *maintain.Maintainer
	// shift is added to the wall clock (nanoseconds): tests move time forward.
	shift atomic.Int64
}

// New opens a fresh cache under t.TempDir().
func New(t testing.TB) *Cache {
	t.Helper()
	return Open(t, t.TempDir())
}

// Open opens the cache at home.
func Open(t testing.TB, home string) *Cache {
	t.Helper()
	cfg := config.Default()
	cfg.Home = home
	cfg.LockTimeout = 5 * time.Second
	tc := &Cache{T: t, Config: cfg}
	c, err := cache.Open(cfg, cache.WithClock(tc.Now))
	if err != nil {
		t.Fatal(err)
	}
	tc.C = c
	tc.M = maintain.New(c, maintain.WithClock(tc.Now))
	return tc
}

// Now is the shared clock.
func (c *Cache) Now() time.Time { return time.Now().Add(time.Duration(c.shift.Load())) }

// Advance moves the shared clock forward.
func (c *Cache) Advance(d time.Duration) { c.shift.Add(int64(d)) }

// Home is the cache root.
func (c *Cache) Home() string { return c.C.Home.Root }

// Content returns deterministic bytes for a label.
func Content(label string, size int) []byte {
	var out bytes.Buffer
	for i := 0; out.Len() < size; i++ {
		s := sha256.Sum256([]byte(label + ":" + strconv.Itoa(i)))
		out.Write(s[:])
	}
	return out.Bytes()[:size]
}

// MD5 is the lower-case hex MD5 of b.
func MD5(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// Package describes a package to materialize.
type Package struct {
	ModelID   string // cache owner and canonical id
	PackageID string
	// Files are hashed artefacts (stored as blobs), by handle.
	Files map[string][]byte
	// Unhashed are artefacts without a provider MD5 (package files).
	Unhashed map[string][]byte
	Deps     []materialize.Dependency
	// NoManifest stops before the manifest (an in-progress package).
	NoManifest bool
}

// Materialize writes p with the real store and returns its result.
func (c *Cache) Materialize(p Package) *materialize.Result {
	c.T.Helper()
	var arts []metadata.Artifact
	files := map[string][]byte{}
	for h, b := range p.Files {
		sum := MD5(b)
		arts = append(arts, metadata.Artifact{FileHandle: h, MD5Hash: &sum, DownloadURL: "http://127.0.0.1:1/" + h})
		files[h] = b
	}
	for h, b := range p.Unhashed {
		arts = append(arts, metadata.Artifact{FileHandle: h, DownloadURL: "http://127.0.0.1:1/u/" + h})
		files[h] = b
	}
	sort.Slice(arts, func(i, j int) bool { return arts[i].FileHandle < arts[j].FileHandle })
	fetch := func(_ context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
		b, ok := files[a.FileHandle]
		if !ok {
			return nil, 0, fmt.Errorf("no file %q", a.FileHandle)
		}
		return io.NopCloser(bytes.NewReader(b)), int64(len(b)), nil
	}
	arch, task, trusted, dyn := "yolov8", "object-detection", true, false
	req := materialize.Request{
		CacheOwner: p.ModelID, CanonicalModelID: p.ModelID, PackageID: p.PackageID, Artifacts: arts,
		DownloadFilesWithoutHash: len(p.Unhashed) > 0, Dependencies: p.Deps,
		Manifest: manifest.Spec{ModelArchitecture: &arch, TaskType: &task, BackendType: "onnx",
			TrustedSource: &trusted, Quantization: "fp32", DynamicBatchSizeSupported: &dyn},
	}
	var hooks materialize.Hooks
	if p.NoManifest {
		hooks.Construct = func(context.Context, string) error { return errStop }
	}
	res, err := c.C.Packages.Materialize(context.Background(), req, materialize.StreamSource(c.C.Blobs, fetch), hooks)
	if p.NoManifest {
		if err == nil {
			c.T.Fatal("materialize: construct hook did not stop it")
		}
		dir, _ := c.C.Home.PackageDir(p.ModelID, p.PackageID)
		return &materialize.Result{PackageDir: dir}
	}
	if err != nil {
		c.T.Fatal(err)
	}
	return res
}

var errStop = fmt.Errorf("construction stopped by the test")

// Register writes an auto-resolution entry resolving requestedID to res
// and returns its key.
func (c *Cache) Register(requestedID string, res *materialize.Result) string {
	c.T.Helper()
	r := autoresolve.NewRequest(requestedID, "cpu")
	r.Runtime.OSVersion = &res.PackageDir // any distinct value keys distinct entries
	key, _, err := autoresolve.Key(r)
	if err != nil {
		c.T.Fatal(err)
	}
	owner, canonical := res.Spec.ModelID, res.Spec.CanonicalModelID
	if err := c.C.Resolutions.Register(context.Background(), key, autoresolve.Resolution{
		ModelID: requestedID, CacheModelID: &owner, CanonicalModelID: &canonical,
		ModelPackageID: filepath.Base(res.PackageDir), ResolvedFiles: res.ResolvedFiles,
		ModelArchitecture: res.Spec.ModelArchitecture, TaskType: res.Spec.TaskType, BackendType: &res.Spec.BackendType,
		TrustedSource: res.Spec.TrustedSource,
	}); err != nil {
		c.T.Fatal(err)
	}
	return key
}

// Record writes an offline record proving packages of modelID (each with
// its hashed files), with alias as a requested alias when it is not "".
func (c *Cache) Record(modelID, alias string, pkgs ...Package) {
	c.T.Helper()
	meta := &metadata.ModelMetadata{ModelID: modelID, ModelArchitecture: "yolov8"}
	for _, p := range pkgs {
		mp := metadata.ModelPackage{PackageID: p.PackageID, Backend: metadata.BackendONNX, Quantization: metadata.QuantizationFP32, TrustedSource: true}
		handles := make([]string, 0, len(p.Files))
		for h := range p.Files {
			handles = append(handles, h)
		}
		sort.Strings(handles)
		for _, h := range handles {
			sum := MD5(p.Files[h])
			mp.Artifacts = append(mp.Artifacts, metadata.Artifact{FileHandle: h, MD5Hash: &sum})
		}
		if p.ModelID != modelID {
			mp.CacheModelID = p.ModelID
		}
		meta.Packages = append(meta.Packages, mp)
	}
	requested := modelID
	if alias != "" {
		requested = alias
	}
	for _, p := range pkgs {
		if _, err := c.C.Registry.RecordSuccessfulLoad(context.Background(), meta, requested, p.PackageID, "", c.Now()); err != nil {
			c.T.Fatal(err)
		}
	}
}

// BlobPath is shared-blobs/<md5 of b>.
func (c *Cache) BlobPath(b []byte) string {
	p, err := c.C.Home.BlobPath(MD5(b))
	if err != nil {
		c.T.Fatal(err)
	}
	return p
}

// Age sets the mtime of paths (not following symlinks' targets: paths must
// be regular files or dirs) d into the past of the shared clock.
func (c *Cache) Age(d time.Duration, paths ...string) {
	c.T.Helper()
	t := c.Now().Add(-d)
	for _, p := range paths {
		if err := os.Chtimes(p, t, t); err != nil {
			c.T.Fatal(err)
		}
	}
}

// AgeBlobs ages every regular file in shared-blobs.
func (c *Cache) AgeBlobs(d time.Duration) {
	c.T.Helper()
	ents, err := os.ReadDir(c.C.Home.SharedBlobs())
	if err != nil {
		c.T.Fatal(err)
	}
	for _, e := range ents {
		if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
			c.Age(d, filepath.Join(c.C.Home.SharedBlobs(), e.Name()))
		}
	}
}

// WriteFile writes a file (creating parents) with mode 0644.
func WriteFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
