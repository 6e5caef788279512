package modelcache

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"

	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/meta"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/local"
)

// Load is AutoModel.from_pretrained up to constructing the model: it returns
// a verified package directory for modelIDOrPath (a model id, or a local
// directory holding model_config.json).
func (c *Client) Load(ctx context.Context, modelIDOrPath string, opts ...LoadOption) (*Package, error) {
	o := newLoadOptions(opts)
	if local.IsModelDir(modelIDOrPath) {
		if err := c.localDirAllowed(modelIDOrPath); err != nil {
			return nil, err
		}
		lm, err := local.Load(ctx, modelIDOrPath)
		if err != nil {
			return nil, err
		}
		return localPackage(modelIDOrPath, lm), nil
	}
	if err := provider.ValidateModelID(modelIDOrPath); err != nil {
		return nil, err
	}
	return c.load(ctx, modelIDOrPath, &o)
}

// plan is what a load or a resolution needs before touching the provider.
type plan struct {
	runtime  Runtime
	key      string // "" when the request has no key (device=None)
	keyErr   error
	apiKey   *string // the effective key
	provider string  // the effective provider
}

func (c *Client) plan(ctx context.Context, modelID string, o *loadOptions) (*plan, error) {
	rt, err := c.Runtime(ctx)
	var inconsistent *negotiation.RuntimeIntrospectionError
	if err != nil && !errors.As(err, &inconsistent) { // an inconsistent runtime is negotiation's to report
		return nil, fmt.Errorf("runtime x-ray: %w", err)
	}
	if !o.deviceGiven {
		o.neg.Device = negotiation.DefaultDevice(c.cfg.DefaultDevice, rt)
	}
	if c.cfg.ONNXExecutionProviders != "" {
		o.neg.EnvONNXExecutionProviders = negotiation.ParseEnvONNXExecutionProviders(c.cfg.ONNXExecutionProviders)
	}
	r := o.resolutionRequest(modelID, rt, c.cfg)
	p := &plan{runtime: rt, apiKey: r.EffectiveAPIKey(), provider: r.EffectiveProvider()}
	switch {
	case o.neg.Device == "":
		p.keyErr = errNoDevice
	default:
		if p.keyErr = r.SetNegotiation(o.neg); p.keyErr == nil {
			p.key, _, p.keyErr = autoresolve.Key(r)
		}
	}
	return p, nil
}

// providerRequest is the metadata request of a load for modelID.
func providerRequest(modelID string, apiKey *string, o *loadOptions) provider.Request {
	r := provider.Request{ModelID: modelID, ExtraQuery: o.extraQuery, ExtraHeaders: o.extraHeaders}
	if apiKey != nil {
		r.APIKey = *apiKey
	}
	return r
}

// metadata asks the load's provider for modelID's metadata.
func (c *Client) metadata(ctx context.Context, modelID string, p *plan, o *loadOptions) (*metadata.ModelMetadata, error) {
	prov, err := c.metadataProvider(p.provider)
	if err != nil {
		return nil, err
	}
	return prov.ModelMetadata(ctx, providerRequest(modelID, p.apiKey, o))
}

// negotiate fetches metadata and negotiates.
func (c *Client) negotiate(ctx context.Context, modelID string, p *plan, o *loadOptions) (*metadata.ModelMetadata, *negotiation.Report, error) {
	if c.access.IsModelAccessForbidden(ctx, modelID, p.apiKey) {
		return nil, nil, c.refusal(ctx, modelID, p.apiKey)
	}
	md, err := c.metadata(ctx, modelID, p, o)
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
		hit, err := c.cache.Resolutions.Hit(ctx, c.cache.Home, p.key, autoresolve.HitQuery{
			ModelID: modelID, AllowUntrusted: o.neg.AllowUntrustedPackages, AllowDependencies: o.allowDependency,
			CheckDir: func(dir string) error { return cache.CheckPackageDir(c.cache.Home, dir) },
			CanUse: func(ctx context.Context, model, packageID string) bool {
				return c.access.CanUseCachedPackage(ctx, model, packageID, p.apiKey)
			},
		})
		if err != nil {
			return nil, err
		}
		if hit != nil {
			pkg := hitPackage(modelID, hit)
			c.afterLoad(ctx, pkg, p, o, nil)
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
		pkg, err := c.loadPackage(ctx, modelID, md, mp, o, useCache, p)
		if err == nil {
			pkg.Report = report
			c.afterLoad(ctx, pkg, p, o, md)
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

// loadPackage materializes one negotiated package (dependencies first) and,
// under its materialization lock, registers the auto-resolution entry.
func (c *Client) loadPackage(ctx context.Context, modelID string, md *metadata.ModelMetadata, mp *metadata.ModelPackage,
	o *loadOptions, useCache bool, p *plan) (*Package, error) {
	deps := map[string]*Package{}
	var links []materialize.Dependency
	var moved Transfer
	if len(md.ModelDependencies) > 0 && !o.allowDependency {
		return nil, fmt.Errorf("model %s needs dependency models, but loading them is disabled: %w", modelID, errdefs.ErrInvalidParameter)
	}
	for _, d := range md.ModelDependencies {
		dopts := o.forDependency(d.ModelPackageID)
		dp, err := c.load(ctx, d.ModelID, &dopts)
		if err != nil {
			return nil, fmt.Errorf("dependency %q (%s): %w", d.Name, d.ModelID, err)
		}
		deps[d.Name] = dp
		moved.add(dp.Transfer)
		links = append(links, materialize.Dependency{Name: d.Name, PackageDir: dp.Dir})
	}
	if mp.PackageSource == metadata.SourceLocalCache {
		dir, spec, err := c.cache.Packages.LocalPackage(ctx, md, mp)
		if err != nil {
			return nil, err
		}
		pkg := specPackage(modelID, dir, &spec, mp.PackageID)
		pkg.RecommendedParameters = mp.EffectiveRecommendedParameters(md)
		pkg.Dependencies, pkg.Transfer = deps, moved
		return pkg, nil
	}
	req := materialize.RequestFor(md, mp, o.withoutHash, links)
	req.LockTimeout = o.lockTimeout
	src := c.source(c.urlRefresher(modelID, mp.PackageID, p, o))
	var warnings []string
	hooks := materialize.Hooks{Published: func(ctx context.Context, r *materialize.Result) error {
		if !useCache || c.cfg.Offline {
			return nil
		}
		// The package is complete once its manifest is written: failing to
		// record the decision (a full disk) costs the next load a provider
		// request, not this load its result.
		err := c.cache.Resolutions.Register(ctx, p.key,
			autoresolve.ResolutionFor(modelID, md, mp, req.CacheOwner, r.ResolvedFiles, r.Spec.TrustedSource, p.apiKey))
		if err != nil {
			c.log.Warn("package loaded, but the auto-resolution decision was not cached; the next load asks the provider again",
				"model_id", modelID, "package_id", mp.PackageID, "err", err)
			warnings = append(warnings, "auto-resolution decision not cached: "+err.Error())
		}
		return nil
	}}
	res, err := c.cache.Packages.Materialize(ctx, req, src, hooks)
	if err != nil {
		return nil, err
	}
	pkg := specPackage(modelID, res.PackageDir, &res.Spec, mp.PackageID)
	pkg.Warnings = warnings
	pkg.RecommendedParameters = res.Spec.RecommendedParameters
	moved.add(src.transfer())
	pkg.Dependencies, pkg.Transfer = deps, moved
	return pkg, nil
}

// urlRefresher re-asks the provider for a package's download URLs, once per
// load however many files need it: signed URLs can expire while a large
// package downloads.
func (c *Client) urlRefresher(modelID, packageID string, p *plan, o *loadOptions) refreshFunc {
	var (
		once sync.Once
		urls map[string]string
		err  error
	)
	return func(ctx context.Context, handle string) (string, error) {
		once.Do(func() {
			var md *metadata.ModelMetadata
			if md, err = c.metadata(ctx, modelID, p, o); err != nil {
				return
			}
			urls = map[string]string{}
			if mp, ok := md.Package(packageID); ok {
				for _, a := range mp.Artifacts {
					urls[a.FileHandle] = a.DownloadURL
				}
			}
		})
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

// afterLoad runs the bookkeeping of a successful load; none of it fails the
// load. md is nil on an auto-resolution hit.
func (c *Client) afterLoad(ctx context.Context, pkg *Package, p *plan, o *loadOptions, md *metadata.ModelMetadata) {
	c.access.OnModelPackageAccessGranted(ctx, pkg.ModelID, pkg.PackageID, p.apiKey)
	if !c.cfg.Offline && pkg.CacheModelID != "" {
		if err := meta.TouchLastUsed(c.cache.Home, pkg.CacheModelID, pkg.PackageID); err != nil {
			c.log.Debug("last-used stamp not written", "err", err)
		}
	}
	if !c.cfg.OfflineWarmUp || p.provider != provider.Roboflow {
		return
	}
	if md == nil { // warm-up records metadata even on a cache hit (offline.md §3.3)
		var err error
		if md, err = c.metadata(ctx, pkg.ModelID, p, o); err != nil {
			c.log.Warn("Warm-up metadata pre-fetch failed; model NOT registered for offline use", "model_id", pkg.ModelID, "err", err)
			return
		}
	}
	if _, err := c.cache.Registry.RecordSuccessfulLoad(ctx, md, pkg.ModelID, pkg.PackageID, "warmup", c.now()); err != nil {
		c.log.Warn("offline registry not updated", "model_id", pkg.ModelID, "err", err)
	}
}

// refusal is the error of a load the access manager forbids: its own
// explanation when it has one (access.Explainer), else AccessDeniedError.
func (c *Client) refusal(ctx context.Context, modelID string, apiKey *string) error {
	if e, ok := c.access.(access.Explainer); ok {
		if err := e.Check(ctx, modelID, "", apiKey); err != nil {
			return err
		}
	}
	return &AccessDeniedError{ModelID: modelID}
}

// localDirAllowed refuses, under an access manager, a local directory
// inside the cache: loading models-cache/<slug>/<package> by path would
// serve a cached package without asking the manager. Directories outside
// the cache are the caller's own files.
func (c *Client) localDirAllowed(dir string) error {
	if _, ok := c.access.(AllowAll); ok {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	for _, root := range []string{c.cfg.Home, c.cache.Home.Root} {
		r := filepath.Clean(root)
		if rr, err := filepath.EvalSymlinks(r); err == nil {
			r = rr
		}
		if abs == r || strings.HasPrefix(abs, r+string(filepath.Separator)) {
			return &AccessDeniedError{ModelID: dir, Reason: "a package directory inside the cache is loaded by its model id, so that the access manager can decide"}
		}
	}
	return nil
}
