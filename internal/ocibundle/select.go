package ocibundle

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// CheckExportable says why a package cannot travel in a bundle (nil when
// it can): it must be complete and every file a provider-hashed shared blob.
func CheckExportable(m *manifest.Manifest) error {
	if !m.Complete() || m.ModelID == nil || m.CanonicalModelID == nil {
		return fmt.Errorf("%w: not a complete package", ErrUnsupportedPackage)
	}
	for _, a := range m.PackageArtifacts {
		if a.Storage != manifest.StorageSharedBlob || a.MD5Hash == nil {
			return fmt.Errorf("%w: file %q has no provider MD5 or is a local package file", ErrUnsupportedPackage, a.FileHandle)
		}
	}
	return nil
}

// CachePackages lists the exportable complete packages of canonicalID in
// the cache (whatever their cache owner); others are logged and skipped.
func CachePackages(ctx context.Context, c *cache.Cache, canonicalID string, log *slog.Logger) ([]cache.PackageInfo, error) {
	all, err := c.ScanPackages(ctx)
	if err != nil {
		return nil, err
	}
	var out []cache.PackageInfo
	for _, p := range all {
		if p.State != cache.StateComplete || p.Manifest.CanonicalModelID == nil || *p.Manifest.CanonicalModelID != canonicalID {
			continue
		}
		if err := CheckExportable(p.Manifest); err != nil {
			log.Warn("package left out of the bundle", "model_id", canonicalID, "package_id", p.PackageID, "reason", err)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// CacheMetadata answers a metadata request from the cache alone, for
// choosing packages without network: the offline-weights record when there
// is one (aliases work), else metadata rebuilt from the manifests of the
// model's exportable packages (modelID must then be the canonical id).
// Only complete packages are announced, as local-cache packages, so a load
// through it reads the cache and never downloads.
func CacheMetadata(ctx context.Context, c *cache.Cache, modelID string, log *slog.Logger) (*metadata.ModelMetadata, error) {
	md, err := c.Registry.LoadModelMetadata(ctx, modelID)
	if err != nil {
		return nil, err
	}
	if md != nil {
		kept := md.Packages[:0]
		for _, p := range md.Packages {
			owner := p.CacheModelID
			if owner == "" {
				owner = md.ModelID
			}
			if dir, err := c.Home.PackageDir(owner, p.PackageID); err == nil {
				if m, err := manifest.Read(ctx, dir); err == nil && CheckExportable(m) == nil {
					kept = append(kept, p)
				}
			}
		}
		if len(kept) > 0 {
			md.Packages = kept
			return md, nil
		}
	}
	pkgs, err := CachePackages(ctx, c, modelID, log)
	if err != nil {
		return nil, err
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("%w: no complete package of %q (and no offline-weights record naming it); pass the canonical model id, or pull it first", ErrNotInCache, modelID)
	}
	var model *pyjson.Object
	payloads := make([]any, 0, len(pkgs))
	for _, p := range pkgs {
		mo, po := reconstruct(p.Manifest, p.PackageID)
		if model == nil {
			model = mo
		}
		payloads = append(payloads, po)
	}
	doc := pyjson.ObjectOf("canonical_model_id", modelID, "format_version", offlinereg.FormatVersion, "model", model, "packages", payloads)
	data, err := pyjson.Marshal(doc)
	if err != nil {
		return nil, err
	}
	rec, err := offlinereg.ParseRecord(data)
	if err != nil {
		return nil, err
	}
	return rec.ModelMetadata(log)
}
