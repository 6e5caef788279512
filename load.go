package modelcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/local"
)

// Package is a loaded model package.
type Package struct {
	// Dir is the package directory (model_config.json and the files).
	Dir string
	// Files maps each file handle to its path (links resolve to shared blobs).
	Files map[string]string
	// ModelID is the requested id; CanonicalModelID the provider's id;
	// CacheModelID owns the package directory (models-cache/<slug of it>).
	ModelID          string
	CanonicalModelID string
	CacheModelID     string
	PackageID        string
	Backend          string
	Quantization     string
	// BatchSize is "dynamic", "static N" or "" when not declared.
	BatchSize             string
	Architecture          string
	TaskType              string
	RecommendedParameters any
	ModelFeatures         any
	Dependencies          map[string]*Package
	// FromCache is true when the auto-resolution cache answered (no network).
	FromCache bool
	// Report is the negotiation report (nil on a cache hit or a local dir).
	Report *negotiation.Report
}

// Load is AutoModel.from_pretrained up to constructing the model: it returns
// a verified package directory for modelIDOrPath (a model id, or a local
// directory holding model_config.json).
func (c *Client) Load(ctx context.Context, modelIDOrPath string, opts ...LoadOption) (*Package, error) {
	o := defaultLoadOptions()
	for _, f := range opts {
		f(&o)
	}
	if local.IsModelDir(modelIDOrPath) {
		return c.loadLocalDir(ctx, modelIDOrPath)
	}
	if err := layout.ValidateRemoteModelID(modelIDOrPath); err != nil {
		return nil, err
	}
	return c.load(ctx, modelIDOrPath, &o)
}

func (c *Client) loadLocalDir(ctx context.Context, dir string) (*Package, error) {
	lm, err := local.Load(ctx, dir)
	if err != nil {
		return nil, err
	}
	md, p := lm.Metadata, lm.Package()
	pkg := &Package{Dir: lm.Dir, Files: map[string]string{}, ModelID: dir, CanonicalModelID: md.ModelID,
		PackageID: p.PackageID, Backend: string(p.Backend), Quantization: string(p.Quantization),
		Architecture: md.ModelArchitecture, ModelFeatures: p.ModelFeatures}
	if md.TaskType != nil {
		pkg.TaskType = *md.TaskType
	}
	for _, a := range p.Artefacts {
		pkg.Files[a.FileHandle] = filepath.Join(lm.Dir, filepath.FromSlash(a.FileHandle))
	}
	return pkg, nil
}

// plan is what a load or a resolution needs before touching the provider.
type plan struct {
	runtime  negotiation.Runtime
	key      string // "" when the request has no key (device=None)
	keyErr   error
	apiKey   *string
	provider string
}

func (c *Client) plan(ctx context.Context, modelID string, o *loadOptions) (*plan, error) {
	rt, err := c.Runtime(ctx)
	var inconsistent *negotiation.RuntimeIntrospectionError
	if err != nil && !errors.As(err, &inconsistent) { // an inconsistent runtime is negotiation's to report
		return nil, fmt.Errorf("runtime x-ray: %w", err)
	}
	if !o.deviceGiven {
		o.neg.Device = c.defaultDevice(rt)
	}
	o.neg.EnvONNXExecutionProviders = c.envONNXProviders()
	var envKey *string
	if k := c.cfg.APIKey.Reveal(); k != "" {
		envKey = &k
	}
	// The effective provider and key depend on these four inputs only, so
	// they exist even when the request has no key document (device=None).
	eff := autoresolve.Request{Provider: o.providerName, APIKey: o.apiKey, EnvAPIKey: envKey, Offline: c.cfg.Offline}
	p := &plan{runtime: rt, apiKey: eff.EffectiveAPIKey(), provider: eff.EffectiveProvider()}
	rreq, err := o.resolutionRequest(modelID, rt.Compatibility(), envKey, c.cfg.Offline)
	if err == nil {
		p.key, _, err = autoresolve.Key(rreq)
	}
	p.keyErr = err
	return p, nil
}

// Resolution is a negotiation outcome without any download.
type Resolution struct {
	// Metadata is nil when the provider did not answer.
	Metadata *metadata.ModelMetadata
	// Report is nil when negotiation did not run.
	Report  *negotiation.Report
	Device  string
	Runtime negotiation.Runtime
	// Key is the auto-resolution key of the request ("" with device=None).
	Key string
}

// Resolve asks the provider for modelID's packages and negotiates them for
// this runtime, as Load would, without downloading anything. The returned
// Resolution holds whatever was learnt even when err is not nil.
func (c *Client) Resolve(ctx context.Context, modelID string, opts ...LoadOption) (*Resolution, error) {
	o := defaultLoadOptions()
	for _, f := range opts {
		f(&o)
	}
	if err := layout.ValidateRemoteModelID(modelID); err != nil {
		return nil, err
	}
	p, err := c.plan(ctx, modelID, &o)
	if err != nil {
		return nil, err
	}
	res := &Resolution{Device: o.neg.Device, Runtime: p.runtime, Key: p.key}
	res.Metadata, res.Report, err = c.negotiate(ctx, modelID, p, &o)
	return res, err
}

// negotiate fetches metadata and negotiates.
func (c *Client) negotiate(ctx context.Context, modelID string, p *plan, o *loadOptions) (*metadata.ModelMetadata, *negotiation.Report, error) {
	if c.access.IsModelAccessForbidden(ctx, modelID, p.apiKey) {
		return nil, nil, &AccessDeniedError{ModelID: modelID}
	}
	prov, err := c.metadataProvider(p.provider, p.apiKey, o)
	if err != nil {
		return nil, nil, err
	}
	preq := provider.Request{ModelID: modelID, ExtraQuery: o.extraQuery, ExtraHeaders: o.extraHeaders}
	if p.apiKey != nil {
		preq.APIKey = *p.apiKey
	}
	md, err := prov.ModelMetadata(ctx, preq)
	if err != nil {
		if errors.Is(err, provider.ErrUnauthorized) || errors.Is(err, provider.ErrForbidden) {
			c.access.OnModelAccessForbidden(ctx, modelID, p.apiKey)
		}
		return nil, nil, err
	}
	rep, err := negotiation.Negotiate(md, o.neg, p.runtime)
	return md, rep, err
}

func (c *Client) load(ctx context.Context, modelID string, o *loadOptions) (*Package, error) {
	p, err := c.plan(ctx, modelID, o)
	if err != nil {
		return nil, err
	}
	if p.keyErr != nil {
		return nil, p.keyErr
	}
	useCache := !o.noResolution
	if useCache {
		pkg, err := c.fromResolutionCache(ctx, p.key, modelID, p.apiKey, o)
		if err != nil {
			return nil, err
		}
		if pkg != nil {
			c.afterLoad(ctx, pkg, p.provider, o, p.apiKey, nil)
			return pkg, nil
		}
	}
	md, report, err := c.negotiate(ctx, modelID, p, o)
	if err != nil {
		return nil, err
	}
	selected := report.Selected
	if o.maxAttempts > 0 && len(selected) > o.maxAttempts {
		selected = selected[:o.maxAttempts]
	}
	var failures []PackageFailure
	for _, id := range selected {
		mp, _ := md.Package(id)
		pkg, err := c.loadPackage(ctx, modelID, md, mp, o, useCache, p.key, p.apiKey)
		if err == nil {
			pkg.Report = report
			c.afterLoad(ctx, pkg, p.provider, o, p.apiKey, md)
			return pkg, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		c.log.Warn("package failed; trying the next one", "model_id", modelID, "package_id", id, "err", err)
		failures = append(failures, PackageFailure{PackageID: id, Err: err})
	}
	return nil, &AllPackagesFailedError{ModelID: modelID, Failures: failures}
}

// defaultDevice is the loader's default: DEFAULT_DEVICE, else cuda when the
// runtime lists a GPU, else cpu.
func (c *Client) defaultDevice(rt negotiation.Runtime) string {
	if d := strings.TrimSpace(c.cfg.DefaultDevice); d != "" {
		return d
	}
	if len(rt.GPUDevices) > 0 {
		return "cuda"
	}
	return "cpu"
}

func (c *Client) envONNXProviders() []string {
	if c.cfg.ONNXExecutionProviders == "" {
		return nil
	}
	return negotiation.ParseEnvONNXExecutionProviders(c.cfg.ONNXExecutionProviders)
}

// loadPackage materializes one negotiated package (dependencies first) and,
// under its materialization lock, registers the auto-resolution entry.
func (c *Client) loadPackage(ctx context.Context, modelID string, md *metadata.ModelMetadata, p *metadata.ModelPackage,
	o *loadOptions, useCache bool, key string, apiKey *string) (*Package, error) {
	deps := map[string]*Package{}
	var links []materialize.Dependency
	if len(md.ModelDependencies) > 0 {
		if !o.allowDependency {
			return nil, fmt.Errorf("model %s needs dependency models, but loading them is disabled: %w", modelID, errdefs.ErrInvalidParameter)
		}
		for _, d := range md.ModelDependencies {
			dopts := *o
			dopts.neg.ModelPackageID = d.ModelPackageID
			dopts.allowDependency = false
			dopts.neg.Backends, dopts.neg.Quantization, dopts.neg.BatchSize = nil, nil, nil
			dp, err := c.load(ctx, d.ModelID, &dopts)
			if err != nil {
				return nil, fmt.Errorf("dependency %q (%s): %w", d.Name, d.ModelID, err)
			}
			deps[d.Name] = dp
			links = append(links, materialize.Dependency{Name: d.Name, PackageDir: dp.Dir})
		}
	}
	if p.PackageSource == metadata.SourceLocalCache {
		pkg, err := c.localCachePackage(ctx, modelID, md, p)
		if err != nil {
			return nil, err
		}
		pkg.Dependencies = deps
		return pkg, nil
	}
	req := materializeRequest(md, p, o.withoutHash, links)
	req.LockTimeout = o.lockTimeout
	hooks := hooksFor(c.fetcher, c.urlRefresher(modelID, p.PackageID, o, apiKey))
	hooks.Published = func(ctx context.Context, r *materialize.Result) error {
		if !useCache || c.cfg.Offline {
			return nil
		}
		return c.cache.Resolutions.Register(ctx, key, resolution(modelID, md, p, req, r, apiKey))
	}
	res, err := c.cache.Packages.Materialize(ctx, req, nil, hooks)
	if err != nil {
		return nil, err
	}
	pkg := packageFrom(modelID, res.PackageDir, &res.Spec, p.PackageID)
	pkg.Dependencies = deps
	return pkg, nil
}

// urlRefresher re-asks the provider for a package's download URLs, once per
// load however many files need it: signed URLs can expire while a large
// package downloads.
func (c *Client) urlRefresher(modelID, packageID string, o *loadOptions, apiKey *string) RefreshFunc {
	var (
		mu   sync.Mutex
		urls map[string]string
		err  error
	)
	return func(ctx context.Context, handle string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if urls == nil && err == nil {
			urls = map[string]string{}
			var prov provider.Provider
			var md *metadata.ModelMetadata
			if prov, err = c.metadataProvider(o.providerName, apiKey, o); err == nil {
				preq := provider.Request{ModelID: modelID, ExtraQuery: o.extraQuery, ExtraHeaders: o.extraHeaders}
				if apiKey != nil {
					preq.APIKey = *apiKey
				}
				md, err = prov.ModelMetadata(ctx, preq)
			}
			if err == nil {
				if p, ok := md.Package(packageID); ok {
					for _, a := range p.Artefacts {
						urls[a.FileHandle] = a.DownloadURL
					}
				}
			}
		}
		if err != nil {
			return "", fmt.Errorf("refresh download URLs of %s: %w", modelID, err)
		}
		u, ok := urls[handle]
		if !ok {
			return "", fmt.Errorf("refreshed metadata of %s no longer lists %q in package %s", modelID, handle, packageID)
		}
		return u, nil
	}
}

// localCachePackage serves a package that already sits in the cache (offline
// registry, local TRT engines): presence only, no hashing, nothing written
// (offline.md §5).
func (c *Client) localCachePackage(ctx context.Context, modelID string, md *metadata.ModelMetadata, p *metadata.ModelPackage) (*Package, error) {
	owner := p.CacheModelID
	if owner == "" {
		owner = md.ModelID
	}
	if missing := c.missingFiles(owner, *p); len(missing) > 0 {
		return nil, fmt.Errorf("package %s is incomplete in the cache (missing %v): %w", p.PackageID, missing, errdefs.ErrCorruptPackage)
	}
	dir, err := c.cache.Home.PackageDir(owner, p.PackageID)
	if err != nil {
		return nil, err
	}
	if m, err := manifest.Read(ctx, dir); err == nil && m.Complete() {
		spec := specFromManifest(m)
		return packageFrom(modelID, dir, &spec, p.PackageID), nil
	}
	spec := materializeRequest(md, p, false, nil).Manifest
	spec.CanonicalModelID, spec.ModelID = md.ModelID, owner
	for _, a := range p.Artefacts {
		spec.PackageArtifacts = append(spec.PackageArtifacts, manifest.Artifact{FileHandle: a.FileHandle, MD5Hash: a.MD5Hash, Storage: manifest.StoragePackageFile})
	}
	return packageFrom(modelID, dir, &spec, p.PackageID), nil
}

func materializeRequest(md *metadata.ModelMetadata, p *metadata.ModelPackage, withoutHash bool, deps []materialize.Dependency) materialize.Request {
	owner := p.CacheModelID
	if owner == "" {
		owner = md.ModelID
	}
	arts := make([]layout.Artefact, 0, len(p.Artefacts))
	for _, a := range p.Artefacts {
		la := layout.Artefact{Kind: layout.ArtefactDownload, FileHandle: a.FileHandle, DownloadURL: a.DownloadURL}
		if p.PackageSource == metadata.SourceLocalCache {
			la.Kind = layout.ArtefactLocal
		}
		if a.MD5Hash != nil {
			la.MD5 = *a.MD5Hash
		}
		arts = append(arts, la)
	}
	trusted := p.TrustedSource
	spec := manifest.Spec{
		ModelArchitecture: strPtr(md.ModelArchitecture), TaskType: md.TaskType,
		BackendType: string(p.Backend), ModelFeatures: p.ModelFeatures, TrustedSource: &trusted,
		Quantization: string(p.Quantization), DynamicBatchSizeSupported: p.DynamicBatchSizeSupported,
		RecommendedParameters: manifestParams(p.EffectiveRecommendedParameters(md)),
	}
	if p.StaticBatchSize != nil {
		n := int64(*p.StaticBatchSize)
		spec.StaticBatchSize = &n
	}
	for _, d := range md.ModelDependencies {
		spec.ModelDependencies = append(spec.ModelDependencies, manifest.Dependency{Name: d.Name, ModelID: d.ModelID, ModelPackageID: d.ModelPackageID})
	}
	return materialize.Request{
		CacheOwner: owner, CanonicalModelID: md.ModelID, PackageID: p.PackageID,
		Artefacts: arts, DownloadFilesWithoutHash: withoutHash, Manifest: spec, Dependencies: deps,
	}
}

func manifestParams(rp *metadata.RecommendedParameters) *manifest.RecommendedParameters {
	if rp == nil {
		return nil
	}
	out := &manifest.RecommendedParameters{Confidence: rp.Confidence}
	if rp.PerClassConfidence != nil {
		out.PerClassConfidence = []manifest.ClassConfidence{}
		for _, cc := range rp.PerClassConfidence {
			out.PerClassConfidence = append(out.PerClassConfidence, manifest.ClassConfidence{Class: cc.Class, Confidence: cc.Confidence})
		}
	}
	return out
}

func resolution(modelID string, md *metadata.ModelMetadata, p *metadata.ModelPackage, req materialize.Request, r *materialize.Result, apiKey *string) autoresolve.Resolution {
	res := autoresolve.Resolution{
		ModelID: modelID, CacheModelID: strPtr(req.CacheOwner), CanonicalModelID: strPtr(md.ModelID),
		ModelPackageID: p.PackageID, ResolvedFiles: r.ResolvedFiles,
		ModelArchitecture: strPtr(md.ModelArchitecture), TaskType: md.TaskType, BackendType: strPtr(string(p.Backend)),
		ModelFeatures: p.ModelFeatures, TrustedSource: r.Spec.TrustedSource, APIKey: apiKey,
	}
	for _, d := range md.ModelDependencies {
		res.ModelDependencies = append(res.ModelDependencies, autoresolve.Dependency{Name: d.Name, ModelID: d.ModelID, ModelPackageID: d.ModelPackageID})
	}
	if rp := p.EffectiveRecommendedParameters(md); rp != nil {
		arp := &autoresolve.RecommendedParameters{Confidence: rp.Confidence}
		if rp.PerClassConfidence != nil {
			arp.PerClassConfidence = []autoresolve.ClassConfidence{}
			for _, cc := range rp.PerClassConfidence {
				arp.PerClassConfidence = append(arp.PerClassConfidence, autoresolve.ClassConfidence{Class: cc.Class, Confidence: cc.Confidence})
			}
		}
		res.RecommendedParameters = arp
	}
	return res
}

func strPtr(s string) *string { return &s }

// packageFrom describes a materialized (or cached) package from its manifest spec.
func packageFrom(modelID, dir string, s *manifest.Spec, packageID string) *Package {
	p := &Package{Dir: dir, Files: map[string]string{}, ModelID: modelID, CanonicalModelID: s.CanonicalModelID,
		CacheModelID: s.ModelID, PackageID: packageID, Backend: s.BackendType, Quantization: s.Quantization, ModelFeatures: s.ModelFeatures}
	if s.ModelArchitecture != nil {
		p.Architecture = *s.ModelArchitecture
	}
	if s.TaskType != nil {
		p.TaskType = *s.TaskType
	}
	switch {
	case s.DynamicBatchSizeSupported != nil && *s.DynamicBatchSizeSupported:
		p.BatchSize = "dynamic"
	case s.StaticBatchSize != nil:
		p.BatchSize = fmt.Sprintf("static %d", *s.StaticBatchSize)
	}
	if s.RecommendedParameters != nil {
		p.RecommendedParameters = s.RecommendedParameters
	}
	for _, a := range s.PackageArtifacts {
		p.Files[a.FileHandle] = filepath.Join(dir, filepath.FromSlash(a.FileHandle))
	}
	return p
}

// fromResolutionCache is the hit path (on-disk contract §8.4): no network, no
// hashing. It returns (nil, nil) on a miss.
func (c *Client) fromResolutionCache(ctx context.Context, key, modelID string, apiKey *string, o *loadOptions) (*Package, error) {
	e, ok, err := c.cache.Resolutions.Retrieve(ctx, key)
	if err != nil || !ok {
		return nil, err
	}
	invalidate := func(why string) (*Package, error) {
		c.log.Debug("auto-resolution entry invalidated", "key", key, "why", why)
		return nil, c.cache.Resolutions.Invalidate(ctx, key)
	}
	if e.ModelID != modelID {
		return invalidate("model id differs")
	}
	if e.TrustedSource != nil && !*e.TrustedSource && !o.neg.AllowUntrustedPackages {
		return nil, nil
	}
	if e.CacheModelID == nil || e.CanonicalModelID == nil || strings.TrimSpace(*e.CacheModelID) == "" || strings.TrimSpace(*e.CanonicalModelID) == "" {
		return invalidate("entry without cache attribution")
	}
	dir, err := c.cache.Home.PackageDir(*e.CacheModelID, e.ModelPackageID)
	if err != nil {
		return invalidate(err.Error())
	}
	m, err := manifest.Read(ctx, dir)
	if err != nil || m.ModelID == nil || *m.ModelID != *e.CacheModelID || m.CanonicalModelID == nil || *m.CanonicalModelID != *e.CanonicalModelID {
		return invalidate("package manifest missing or attributed elsewhere")
	}
	if !c.access.CanUseCachedPackage(ctx, modelID, e.ModelPackageID, apiKey) {
		return nil, nil
	}
	for _, f := range e.ResolvedFiles {
		if _, err := os.Stat(f); err != nil {
			return invalidate("resolved file missing: " + f)
		}
	}
	if len(e.ModelDependencies) > 0 && !o.allowDependency {
		return nil, nil
	}
	deps := map[string]*Package{}
	for _, d := range m.DependencyPackagePaths {
		// Step 7: the dependency is still the package this one was built with.
		dm, err := manifest.Read(ctx, d.TargetPath)
		if err != nil || dm.ContentHash() != d.PackageManifestHash {
			return invalidate("dependency " + d.Name + " changed")
		}
		deps[d.Name] = &Package{Dir: d.TargetPath, ModelID: d.CacheModelID, CanonicalModelID: d.CanonicalModelID, PackageID: d.ModelPackageID, Files: map[string]string{}}
	}
	spec := specFromManifest(m)
	pkg := packageFrom(modelID, dir, &spec, e.ModelPackageID)
	pkg.Dependencies = deps
	pkg.FromCache = true
	return pkg, nil
}

func specFromManifest(m *manifest.Manifest) manifest.Spec {
	s := manifest.Spec{
		ModelArchitecture: m.ModelArchitecture, TaskType: m.TaskType, ModelFeatures: m.ModelFeatures,
		TrustedSource: m.TrustedSource, DynamicBatchSizeSupported: m.DynamicBatchSizeSupported,
		PackageArtifacts: m.PackageArtifacts, DependencyPackagePaths: m.DependencyPackagePaths,
	}
	if m.CanonicalModelID != nil {
		s.CanonicalModelID = *m.CanonicalModelID
	}
	if m.ModelID != nil {
		s.ModelID = *m.ModelID
	}
	if m.BackendType != nil {
		s.BackendType = *m.BackendType
	}
	if m.Quantization != nil {
		s.Quantization = *m.Quantization
	}
	if m.StaticBatchSize != nil {
		if n, ok := m.StaticBatchSize.Int64(); ok {
			s.StaticBatchSize = &n
		}
	}
	return s
}

// afterLoad runs the bookkeeping of a successful load; none of it fails the load.
func (c *Client) afterLoad(ctx context.Context, pkg *Package, providerName string, o *loadOptions, apiKey *string, md *metadata.ModelMetadata) {
	c.access.OnModelPackageAccessGranted(ctx, pkg.ModelID, pkg.PackageID, apiKey)
	if !c.cfg.Offline && pkg.CacheModelID != "" {
		if err := meta.TouchLastUsed(c.cache.Home, pkg.CacheModelID, pkg.PackageID); err != nil {
			c.log.Debug("last-used stamp not written", "err", err)
		}
	}
	if c.cfg.OfflineWarmUp && providerName == provider.Roboflow {
		if md == nil {
			// Warm-up records metadata even on a cache hit (offline.md §3.3).
			prov, err := c.metadataProvider(providerName, apiKey, o)
			if err == nil {
				preq := provider.Request{ModelID: pkg.ModelID, ExtraQuery: o.extraQuery, ExtraHeaders: o.extraHeaders}
				if apiKey != nil {
					preq.APIKey = *apiKey
				}
				md, err = prov.ModelMetadata(ctx, preq)
			}
			if err != nil {
				c.log.Warn("Warm-up metadata pre-fetch failed; model NOT registered for offline use", "model_id", pkg.ModelID, "err", err)
				return
			}
		}
		if _, err := c.cache.Registry.RecordSuccessfulLoad(ctx, md, pkg.ModelID, pkg.PackageID, "warmup", c.now()); err != nil {
			c.log.Warn("offline registry not updated", "model_id", pkg.ModelID, "err", err)
		}
	}
}
