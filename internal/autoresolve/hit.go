package autoresolve

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/metadata"
)

// HitQuery is what a load brings to the hit check besides the key.
type HitQuery struct {
	// ModelID is the requested id; an entry for another id is invalid.
	ModelID string
	// AllowUntrusted: an entry of an untrusted package may be served.
	AllowUntrusted bool
	// AllowDependencies: an entry with dependency models may be served.
	AllowDependencies bool
	// CheckDir is the cache's rule for serving a package directory (the
	// cache's top-level directories and the package's own are real
	// directories, not symlinks): an error makes the entry a miss, logged.
	CheckDir func(packageDir string) error
	// CanUse is the access manager's step 4 (nil allows), asked for the
	// package and for every dependency package it would serve with it.
	CanUse func(ctx context.Context, modelID, packageID string) bool
}

// Hit is a validated auto-resolution hit: the package to serve.
type Hit struct {
	Entry *Entry
	// PackageDir is the package's directory in the current cache.
	PackageDir string
	// Manifest is the package's model_config.json.
	Manifest *manifest.Manifest
	// Dependencies are the manifest's dependency identities, their target
	// paths in the current cache.
	Dependencies []manifest.DependencyPath
}

// Hit runs the hit validation of on-disk contract §8.4 for key, without
// network and without hashing: (1) an entry exists and is fresh (Retrieve),
// (2) it names the requested model and carries cache attribution, (3) the
// package's manifest exists and is attributed to the same cache owner and
// canonical model, (4) the access manager allows the cached package, (5)
// every resolved file exists, (6) dependencies are allowed, (7) every
// dependency is still the package this one was built with (its manifest
// hash). A stale entry is invalidated; a refusal that is about this request
// only (an untrusted package, dependencies not allowed, access) leaves it.
// (nil, nil) is a miss.
//
// Everything is checked inside the cache at home: the absolute paths an
// entry and a manifest record (resolved_files, dependency target paths) are
// read relative to their models-cache/ or shared-blobs/ component, so that a
// cache that was moved or copied is judged by its own files, never by the
// tree it was copied from; q.CheckDir judges the layout it is served from.
func (c *Cache) Hit(ctx context.Context, home layout.Home, key string, q HitQuery) (*Hit, error) {
	e, ok, err := c.Retrieve(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	invalidate := func(why string) (*Hit, error) {
		c.log.Debug("auto-resolution entry invalidated", "key", key, "why", why)
		return nil, c.Invalidate(ctx, key)
	}
	if e.ModelID != q.ModelID {
		return invalidate("model id differs")
	}
	if e.TrustedSource != nil && !*e.TrustedSource && !q.AllowUntrusted {
		return nil, nil
	}
	if e.CacheModelID == nil || e.CanonicalModelID == nil || strings.TrimSpace(*e.CacheModelID) == "" || strings.TrimSpace(*e.CanonicalModelID) == "" {
		return invalidate("entry without cache attribution")
	}
	dir, err := home.PackageDir(*e.CacheModelID, e.ModelPackageID)
	if err != nil {
		return invalidate(err.Error())
	}
	if q.CheckDir != nil {
		if err := q.CheckDir(dir); err != nil {
			c.log.Warn("auto-resolution hit refused: the package is not served from this cache layout", "key", key, "err", err)
			return nil, nil
		}
	}
	m, err := manifest.Read(ctx, dir)
	if err != nil || m.ModelID == nil || *m.ModelID != *e.CacheModelID || m.CanonicalModelID == nil || *m.CanonicalModelID != *e.CanonicalModelID {
		return invalidate("package manifest missing or attributed elsewhere")
	}
	if q.CanUse != nil && !q.CanUse(ctx, q.ModelID, e.ModelPackageID) {
		return nil, nil
	}
	for _, f := range e.ResolvedFiles {
		local, ok := inHome(home, f)
		if !ok {
			return invalidate("resolved file outside the cache: " + f)
		}
		if _, err := os.Stat(local); err != nil {
			return invalidate("resolved file missing: " + local)
		}
	}
	if len(e.ModelDependencies) > 0 && !q.AllowDependencies {
		return nil, nil
	}
	deps := make([]manifest.DependencyPath, 0, len(m.DependencyPackagePaths))
	for _, d := range m.DependencyPackagePaths {
		target, ok := inHome(home, d.TargetPath)
		if !ok {
			return invalidate("dependency " + d.Name + " lies outside the cache")
		}
		dm, err := manifest.Read(ctx, target)
		if err != nil || dm.ContentHash() != d.PackageManifestHash {
			return invalidate("dependency " + d.Name + " changed")
		}
		d.TargetPath = target
		deps = append(deps, d)
	}
	if q.CanUse != nil {
		for _, d := range deps {
			if !q.CanUse(ctx, dependencyModelID(e, m, d), d.ModelPackageID) {
				return nil, nil
			}
		}
	}
	return &Hit{Entry: e, PackageDir: dir, Manifest: m, Dependencies: deps}, nil
}

// inHome maps an absolute path recorded in an entry or a manifest onto the
// cache at home: unchanged when it lies under home, else rebased at its last
// models-cache/ or shared-blobs/ component (a cache that was moved or
// copied). Paths with neither component do not belong to a cache.
func inHome(home layout.Home, p string) (string, bool) {
	p = filepath.Clean(p)
	root := filepath.Clean(home.Root) + string(filepath.Separator)
	if strings.HasPrefix(p, root) {
		return p, true
	}
	best := -1
	var base string
	for _, top := range []string{home.ModelsCache(), home.SharedBlobs()} {
		marker := string(filepath.Separator) + filepath.Base(top) + string(filepath.Separator)
		if i := strings.LastIndex(p, marker); i > best {
			best, base = i, filepath.Join(top, p[i+len(marker):])
		}
	}
	if best < 0 || !strings.HasPrefix(base, root) { // Join cleaned away any ".."
		return "", false
	}
	return base, true
}

// dependencyModelID is the id a caller loads dependency d by: the one the
// model's dependency list names (an alias, perhaps), else its canonical id.
func dependencyModelID(e *Entry, m *manifest.Manifest, d manifest.DependencyPath) string {
	for _, list := range [][]metadata.ModelDependency{e.ModelDependencies, m.ModelDependencies} {
		for _, md := range list {
			if md.Name == d.Name {
				return md.ModelID
			}
		}
	}
	return d.CanonicalModelID
}
