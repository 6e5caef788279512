package layout

import (
	"path/filepath"
	"strings"
	"syscall"

	"github.com/modelcache/modelcache/errdefs"
)

// Names under the cache root (§2, §12).
const (
	modelsCacheDir     = "models-cache"
	sharedBlobsDir     = "shared-blobs"
	autoResolutionDir  = "auto-resolution-cache"
	offlineRegistryDir = "offline-weights-registry"
	metaDir            = ".meta"
	cacheDirTagFile    = "CACHEDIR.TAG"
	gcLockFile         = "gc.lock"
)

// Names inside a package dir (§2).
const (
	// ManifestFile is the package manifest, written last (§6).
	ManifestFile = "model_config.json"
	// DependenciesDir holds a package's links to its dependency packages.
	DependenciesDir = "model_dependencies"
	// LocalTRTManifestFile marks a local TRT package.
	LocalTRTManifestFile = "local_trt_package_manifest.json"
)

// Home is a cache root (INFERENCE_HOME). Root must be absolute; it is used
// exactly as written (lexically normalized, never resolved through symlinks)
// because the reference embeds it verbatim in absolute link targets and
// resolved_files. Use NewHome to build one from a configured value.
//
// Methods only compute paths: they validate their arguments first and never
// touch the file system. Every path they return lies inside Root.
type Home struct {
	Root string
}

// NewHome returns the Home for a configured cache root, made absolute the way
// the reference's os.path.abspath does it: a relative root is joined to the
// kernel's working directory (getcwd(2), not $PWD, as in Python), then "."
// and ".." are resolved lexically; a root starting with exactly two slashes
// keeps them (POSIX normpath). Symlinks are not resolved.
func NewHome(root string) (Home, error) {
	if root == "" || strings.IndexByte(root, 0) >= 0 {
		return Home{}, newError(errdefs.ErrInvalidParameter, "cache root", root, "must be a non-empty path without NUL")
	}
	if !filepath.IsAbs(root) {
		wd, err := syscall.Getwd()
		if err != nil {
			return Home{}, newError(errdefs.ErrInvalidParameter, "cache root", root,
				"is relative and the working directory is unknown: %v", err)
		}
		root = join(wd, root)
	}
	return Home{Root: pyNormpath(root)}, nil
}

// pyNormpath is posixpath.normpath for an absolute path: filepath.Clean,
// except that exactly two leading slashes are kept.
func pyNormpath(p string) string {
	c := filepath.Clean(p)
	if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
		c = "/" + c
	}
	return c
}

// join appends validated, single-segment-or-handle names to dir the way
// os.path.join does (no cleaning), so that a root such as "//cache" survives.
func join(dir string, names ...string) string {
	for _, n := range names {
		switch {
		case dir == "":
			dir = n
		case strings.HasSuffix(dir, "/"):
			dir += n
		default:
			dir += "/" + n
		}
	}
	return dir
}

// lockName is the reference's lock file name for a file or link called base.
func lockName(base string) string { return "." + base + ".lock" }

func (h Home) checkRoot() error {
	if !filepath.IsAbs(h.Root) {
		return newError(errdefs.ErrInvalidParameter, "cache root", h.Root, "must be an absolute path (use NewHome)")
	}
	return nil
}

// ModelsCache is H/models-cache, the parent of every model cache root.
func (h Home) ModelsCache() string { return join(h.Root, modelsCacheDir) }

// SharedBlobs is H/shared-blobs, the content-addressed blob store.
func (h Home) SharedBlobs() string { return join(h.Root, sharedBlobsDir) }

// AutoResolutionCache is H/auto-resolution-cache (§8).
func (h Home) AutoResolutionCache() string { return join(h.Root, autoResolutionDir) }

// OfflineRegistry is H/offline-weights-registry.
func (h Home) OfflineRegistry() string { return join(h.Root, offlineRegistryDir) }

// Meta is H/.meta, Go-only bookkeeping (§12).
func (h Home) Meta() string { return join(h.Root, metaDir) }

// CacheDirTag is H/CACHEDIR.TAG (§12).
func (h Home) CacheDirTag() string { return join(h.Root, cacheDirTagFile) }

// GCLockPath is H/.meta/gc.lock, the store-wide lock of GC, prune and rm.
func (h Home) GCLockPath() string { return join(h.Root, metaDir, gcLockFile) }

// ModelDir is the model cache root H/models-cache/<Slug(modelID)>.
func (h Home) ModelDir(modelID string) (string, error) {
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	slug, err := Slug(modelID)
	if err != nil {
		return "", err
	}
	return join(h.Root, modelsCacheDir, slug), nil
}

// PackageDir is <ModelDir(modelID)>/<packageID>; packageID is checked with
// ValidatePackageID.
func (h Home) PackageDir(modelID, packageID string) (string, error) {
	if err := ValidatePackageID(packageID); err != nil {
		return "", err
	}
	dir, err := h.ModelDir(modelID)
	if err != nil {
		return "", err
	}
	return join(dir, packageID), nil
}

// MaterializationLockPath is <ModelDir(modelID)>/.<packageID>.materialization.lock,
// held for a package's whole materialization (§7, §9).
func (h Home) MaterializationLockPath(modelID, packageID string) (string, error) {
	if err := ValidatePackageID(packageID); err != nil {
		return "", err
	}
	dir, err := h.ModelDir(modelID)
	if err != nil {
		return "", err
	}
	return join(dir, "."+packageID+".materialization.lock"), nil
}

// BlobPath is H/shared-blobs/<md5>; md5 is checked with ValidateMD5.
func (h Home) BlobPath(md5 string) (string, error) {
	if err := ValidateMD5(md5); err != nil {
		return "", err
	}
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	return join(h.Root, sharedBlobsDir, md5), nil
}

// BlobLockPath is H/shared-blobs/.<md5>.lock, held while downloading a blob.
func (h Home) BlobLockPath(md5 string) (string, error) {
	if err := ValidateMD5(md5); err != nil {
		return "", err
	}
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	return join(h.Root, sharedBlobsDir, lockName(md5)), nil
}

// AutoResolutionEntryPath is H/auto-resolution-cache/<key>.json. The key is
// normally a SHA-256 hex digest; like the reference, any ^[A-Za-z0-9_-]+$
// stem is accepted and anything else refused (errdefs.ErrInvalidParameter).
func (h Home) AutoResolutionEntryPath(key string) (string, error) {
	if err := validateEntryKey(key); err != nil {
		return "", err
	}
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	return join(h.Root, autoResolutionDir, key+".json"), nil
}

// AutoResolutionLockPath is H/auto-resolution-cache/.<key>.json.lock.
func (h Home) AutoResolutionLockPath(key string) (string, error) {
	if err := validateEntryKey(key); err != nil {
		return "", err
	}
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	return join(h.Root, autoResolutionDir, lockName(key+".json")), nil
}

func validateEntryKey(key string) error {
	if key == "" {
		return newError(errdefs.ErrInvalidParameter, "auto-resolution key", key, "is empty")
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; !isASCIIAlnum(c) && c != '_' && c != '-' {
			return newError(errdefs.ErrInvalidParameter, "auto-resolution key", key,
				"may contain only ASCII letters, digits, '_' and '-'")
		}
	}
	return nil
}

// OfflineRecordPath is H/offline-weights-registry/<Slug(canonicalModelID)>.json.
func (h Home) OfflineRecordPath(canonicalModelID string) (string, error) {
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	slug, err := Slug(canonicalModelID)
	if err != nil {
		return "", err
	}
	return join(h.Root, offlineRegistryDir, slug+".json"), nil
}

// OfflineRecordLockPath is H/offline-weights-registry/.<Slug(canonicalModelID)>.json.lock.
func (h Home) OfflineRecordLockPath(canonicalModelID string) (string, error) {
	if err := h.checkRoot(); err != nil {
		return "", err
	}
	slug, err := Slug(canonicalModelID)
	if err != nil {
		return "", err
	}
	return join(h.Root, offlineRegistryDir, lockName(slug+".json")), nil
}

// The helpers below work on a package dir rather than on H: a dependency's
// package dir is recorded as a real path, which need not lie under H.

func checkPackageDir(packageDir string) error {
	if !filepath.IsAbs(packageDir) {
		return newError(errdefs.ErrInvalidParameter, "package dir", packageDir, "must be an absolute path")
	}
	return nil
}

// HandlePath is <packageDir>/<handle>. The handle is checked with
// ValidateHandle first, and the result is verified to lie strictly inside
// packageDir.
func HandlePath(packageDir, handle string) (string, error) {
	if err := ValidateHandle(handle); err != nil {
		return "", err
	}
	if err := checkPackageDir(packageDir); err != nil {
		return "", err
	}
	p := join(packageDir, handle)
	// Defence in depth: a valid handle has no "", "." or ".." segment, so the
	// lexical relation must come back as the handle itself.
	if rel, err := filepath.Rel(filepath.Clean(packageDir), filepath.Clean(p)); err != nil || rel != handle {
		return "", newError(errdefs.ErrCorruptPackage, "file handle", handle, "escapes package dir %q", packageDir)
	}
	return p, nil
}

// HandleLockPath is .<basename>.lock in the handle's own directory, held
// while the handle's file or blob link is created (§9).
func HandleLockPath(packageDir, handle string) (string, error) {
	p, err := HandlePath(packageDir, handle)
	if err != nil {
		return "", err
	}
	i := strings.LastIndexByte(p, '/')
	return p[:i+1] + lockName(p[i+1:]), nil
}

// ManifestPath is <packageDir>/model_config.json.
func ManifestPath(packageDir string) (string, error) {
	if err := checkPackageDir(packageDir); err != nil {
		return "", err
	}
	return join(packageDir, ManifestFile), nil
}

// ManifestLockPath is <packageDir>/.model_config.json.lock.
func ManifestLockPath(packageDir string) (string, error) {
	if err := checkPackageDir(packageDir); err != nil {
		return "", err
	}
	return join(packageDir, lockName(ManifestFile)), nil
}

// DependencyLinkPath is <packageDir>/model_dependencies/<name>, the link to a
// dependency's package dir; name follows ValidateDependencyNames.
func DependencyLinkPath(packageDir, name string) (string, error) {
	if err := validateDependencyName(name); err != nil {
		return "", err
	}
	if err := checkPackageDir(packageDir); err != nil {
		return "", err
	}
	return join(packageDir, DependenciesDir, name), nil
}

// DependencyLockPath is <packageDir>/model_dependencies/.<name>.lock.
func DependencyLockPath(packageDir, name string) (string, error) {
	if err := validateDependencyName(name); err != nil {
		return "", err
	}
	if err := checkPackageDir(packageDir); err != nil {
		return "", err
	}
	return join(packageDir, DependenciesDir, lockName(name)), nil
}
