// Package modelcache resolves, downloads, verifies and caches computer-vision
// model packages, sharing one cache directory with inference-models 0.36.0.
//
//	pkg, err := modelcache.Load(ctx, "acme-ws/parcel-detector/7")
//	// pkg.Dir holds model_config.json and the package files.
//
// Load is the Go counterpart of AutoModel.from_pretrained up to (not
// including) running the model: auto-resolution cache hit, else provider
// metadata → negotiation → download and materialization → cache entry.
package modelcache

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/xray"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// Client loads models into one cache. It is safe for concurrent use; create
// one per process and share it (it holds the lock table and the x-ray).
type Client struct {
	cfg       config.Config
	cache     *cache.Cache
	providers *provider.Registry
	access    AccessManager
	http      *http.Client
	log       *slog.Logger
	now       func() time.Time
	fetcher   Fetcher
	observer  download.Observer

	probe       func(ctx context.Context) (negotiation.Runtime, error)
	runtimeOnce sync.Once
	runtime     negotiation.Runtime
	runtimeErr  error
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// WithRuntime replaces the runtime x-ray with fixed facts (a target machine
// described in a file, or tests).
func WithRuntime(rt negotiation.Runtime) Option {
	return func(c *Client) {
		c.probe = func(context.Context) (negotiation.Runtime, error) { return rt, nil }
	}
}

// WithHTTPClient sets the HTTP client used for metadata and downloads.
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithAccessManager installs an access manager (default: allow everything).
func WithAccessManager(a AccessManager) Option { return func(c *Client) { c.access = a } }

// WithProvider registers a custom weights provider under name.
func WithProvider(name string, p provider.Provider) Option {
	return func(c *Client) {
		if err := c.providers.Register(name, p); err != nil {
			c.log.Error("provider not registered", "name", name, "err", err)
		}
	}
}

// WithClock injects "now" (entries' created_at and TTL checks).
func WithClock(now func() time.Time) Option { return func(c *Client) { c.now = now } }

// WithFetcher replaces the downloader.
func WithFetcher(f Fetcher) Option { return func(c *Client) { c.fetcher = f } }

// WithDownloadObserver receives download progress events (the CLI draws
// bars from them; download.JSONLines gives a machine-readable stream).
func WithDownloadObserver(o download.Observer) Option { return func(c *Client) { c.observer = o } }

// New opens the cache at cfg.Home and returns a Client.
func New(cfg config.Config, opts ...Option) (*Client, error) {
	c := &Client{cfg: cfg, access: AllowAll{}, log: slog.Default(), now: time.Now}
	reg, err := provider.NewRegistry(nil)
	if err != nil {
		return nil, err
	}
	c.providers = reg
	for _, o := range opts {
		o(c)
	}
	if c.http == nil {
		c.http = download.NewClient(download.TransportOptionsFrom(cfg))
	}
	if c.probe == nil {
		c.probe = defaultProbe(cfg, func() xray.Options {
			o := xray.OptionsFromConfig(cfg)
			o.Logger = c.log
			return o
		})
	}
	if c.cache, err = cache.Open(cfg, cache.WithLogger(c.log), cache.WithClock(c.now)); err != nil {
		return nil, err
	}
	if c.fetcher == nil {
		eopts := []download.Option{download.WithLogger(c.log), download.WithHTTPClient(c.http)}
		if c.observer != nil {
			eopts = append(eopts, download.WithObserver(c.observer))
		}
		e, err := download.New(cfg, c.cache.Blobs, c.cache.Locks, eopts...)
		if err != nil {
			return nil, err
		}
		c.fetcher = &engineFetcher{e: e, offline: cfg.Offline}
	}
	return c, nil
}

// Cache returns the opened cache.
func (c *Client) Cache() *cache.Cache { return c.cache }

// Runtime returns the runtime facts negotiation uses (probed once).
func (c *Client) Runtime(ctx context.Context) (negotiation.Runtime, error) {
	c.runtimeOnce.Do(func() { c.runtime, c.runtimeErr = c.probe(ctx) })
	return c.runtime, c.runtimeErr
}

// Load loads modelIDOrPath with a Client built from the environment. Programs
// that load more than once should create one Client and call its Load.
func Load(ctx context.Context, modelIDOrPath string, opts ...LoadOption) (*Package, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	c, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return c.Load(ctx, modelIDOrPath, opts...)
}

// metadataProvider returns the provider for a load: the configured
// Roboflow-API client, or the offline-weights registry in offline mode.
func (c *Client) metadataProvider(name string, apiKey *string, o *loadOptions) (provider.Provider, error) {
	switch name {
	case provider.Roboflow:
		key := ""
		if apiKey != nil {
			key = *apiKey
		}
		return roboflow.New(roboflow.Options{
			APIHost: c.cfg.APIHost, APIKey: key, Timeout: c.cfg.APITimeout,
			MaxTries: c.cfg.APIMaxTries, RetryCodes: c.cfg.RetryCodes, SecureGateway: c.cfg.SecureGateway,
			ExtraQuery: o.extraQuery, ExtraHeaders: o.extraHeaders, Offline: c.cfg.Offline,
			HTTPClient: c.http, Logger: c.log,
		}), nil
	case provider.RoboflowOfflineWeights:
		return provider.Func(c.offlineMetadata), nil
	}
	return c.providers.Get(name)
}

// offlineMetadata serves the offline-weights registry: only packages whose
// directory exists and holds every recorded file (offline.md §4).
func (c *Client) offlineMetadata(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
	md, err := c.cache.Registry.LoadModelMetadata(ctx, req.ModelID)
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, &OfflineError{ModelID: req.ModelID}
	}
	var kept []metadata.ModelPackage
	var incomplete []string
	for _, p := range md.Packages {
		owner := p.CacheModelID
		if owner == "" {
			owner = md.ModelID
		}
		if missing := c.missingFiles(owner, p); len(missing) == 0 {
			kept = append(kept, p)
		} else {
			incomplete = append(incomplete, fmt.Sprintf("%s (missing %v)", p.PackageID, missing))
		}
	}
	if len(kept) == 0 {
		return nil, &OfflineError{ModelID: req.ModelID, Incomplete: incomplete}
	}
	md.Packages = kept
	return md, nil
}

// missingFiles lists recorded artefacts of p that are not files on disk.
func (c *Client) missingFiles(owner string, p metadata.ModelPackage) []string {
	dir, err := c.cache.Home.PackageDir(owner, p.PackageID)
	if err != nil {
		return []string{"<invalid package id>"}
	}
	var missing []string
	for _, a := range p.Artefacts {
		path, err := layout.HandlePath(dir, a.FileHandle)
		if err != nil {
			missing = append(missing, a.FileHandle)
			continue
		}
		if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, a.FileHandle)
		}
	}
	return missing
}
