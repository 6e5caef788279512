// Package modelcache resolves, downloads, verifies and caches computer-vision
// model packages, sharing one cache directory with inference-models 0.36.0.
//
//	pkg, err := modelcache.Load(ctx, "acme-ws/parcel-detector/7")
//	// pkg.Dir holds model_config.json and the package files.
//
// Load is the Go counterpart of AutoModel.from_pretrained up to (not
// including) running the model: auto-resolution cache hit, else provider
// metadata → negotiation → download and materialization → cache entry.
// The package orchestrates; the rules live in the packages it calls (see
// docs/architecture.md).
package modelcache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/xray"
	"github.com/modelcache/modelcache/provider"
	"github.com/modelcache/modelcache/provider/offline"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// Runtime is the machine a package is negotiated for: GPUs, drivers, CUDA,
// TensorRT, ONNX Runtime and torch versions (what `modelcache xray` prints).
type Runtime = negotiation.Runtime

// Client loads models into one cache. It is safe for concurrent use; create
// one per process and share it (it holds the lock table and the x-ray).
type Client struct {
	cfg       config.Config
	cache     *cache.Cache
	providers *provider.Registry
	offline   *offline.Provider
	roboflow  *roboflow.Client
	access    AccessManager
	http      *http.Client
	log       *slog.Logger
	now       func() time.Time
	engine    *download.Engine
	fetcher   Fetcher
	observer  download.Observer

	probe       func(ctx context.Context) (Runtime, error)
	runtimeOnce sync.Once
	runtime     Runtime
	runtimeErr  error
}

// Option configures a Client.
type Option func(*settings)

// settings collects the options; New checks them.
type settings struct {
	Client
	custom []namedProvider
}

type namedProvider struct {
	name string
	p    provider.Provider
}

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// WithRuntime replaces the runtime x-ray with fixed facts (a target machine
// described in a file, or tests).
func WithRuntime(rt Runtime) Option {
	return func(s *settings) {
		s.probe = func(context.Context) (Runtime, error) { return rt, nil }
	}
}

// WithHTTPClient sets the HTTP client used for metadata and downloads.
func WithHTTPClient(h *http.Client) Option { return func(s *settings) { s.http = h } }

// WithAccessManager installs an access manager (default: allow everything).
func WithAccessManager(a AccessManager) Option { return func(s *settings) { s.access = a } }

// WithProvider registers a custom weights provider under name; loads select
// it with WithWeightsProvider(name). New fails on an empty or reserved name.
func WithProvider(name string, p provider.Provider) Option {
	return func(s *settings) { s.custom = append(s.custom, namedProvider{name, p}) }
}

// WithClock injects "now" (entries' created_at and TTL checks).
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithFetcher replaces the download engine as the source of package bytes.
func WithFetcher(f Fetcher) Option { return func(s *settings) { s.fetcher = f } }

// WithDownloadObserver receives download progress events (the CLI draws
// bars from them).
func WithDownloadObserver(o download.Observer) Option { return func(s *settings) { s.observer = o } }

// New opens the cache at cfg.Home and returns a Client.
func New(cfg config.Config, opts ...Option) (*Client, error) {
	s := settings{Client: Client{cfg: cfg, access: AllowAll{}, log: slog.Default(), now: time.Now}}
	for _, o := range opts {
		o(&s)
	}
	c := &s.Client
	reg, err := provider.NewRegistry(nil)
	if err != nil {
		return nil, err
	}
	for _, np := range s.custom {
		if err := reg.Register(np.name, np.p); err != nil {
			return nil, fmt.Errorf("modelcache.WithProvider: %w", err)
		}
	}
	c.providers = reg
	if c.http == nil {
		c.http = download.NewClient(download.TransportOptionsFrom(cfg))
	}
	if c.probe == nil {
		c.probe = defaultProbe(cfg, c.log)
	}
	if c.cache, err = cache.Open(cfg, cache.WithLogger(c.log), cache.WithClock(c.now)); err != nil {
		return nil, err
	}
	if c.offline, err = offline.New(cfg.Home, offline.WithLogger(c.log)); err != nil {
		return nil, err
	}
	c.roboflow = roboflow.New(roboflow.Options{
		APIHost: cfg.APIHost, Timeout: cfg.APITimeout, MaxTries: cfg.APIMaxTries, RetryCodes: cfg.RetryCodes,
		SecureGateway: cfg.SecureGateway, Offline: cfg.Offline, HTTPClient: c.http, Logger: c.log,
	})
	if c.fetcher == nil {
		eopts := []download.Option{download.WithLogger(c.log), download.WithHTTPClient(c.http)}
		if c.observer != nil {
			eopts = append(eopts, download.WithObserver(c.observer))
		}
		if c.engine, err = download.New(cfg, c.cache.Blobs, c.cache.Locks, eopts...); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Runtime returns the runtime facts negotiation uses (probed once).
func (c *Client) Runtime(ctx context.Context) (Runtime, error) {
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

// metadataProvider returns the provider of a load: the Roboflow weights API
// client, the offline-weights registry in offline mode, or a custom one.
func (c *Client) metadataProvider(name string) (provider.Provider, error) {
	switch name {
	case provider.Roboflow:
		return c.roboflow, nil
	case provider.RoboflowOfflineWeights:
		return c.offline, nil
	}
	return c.providers.Get(name)
}

// defaultProbe is the runtime x-ray of this machine, kept in .meta/xray.json
// online while the host's fingerprint holds (a fresh probe costs hundreds of
// ms); offline nothing is written.
func defaultProbe(cfg config.Config, log *slog.Logger) func(ctx context.Context) (Runtime, error) {
	return func(ctx context.Context) (Runtime, error) {
		opts := xray.OptionsFromConfig(cfg)
		opts.Logger = log
		rt, _, err := xray.CachedProbe(ctx, opts, xray.CachePath(cfg), time.Now())
		return rt.Facts, err
	}
}

var errNoDevice = errors.New("device=None has no resolution key")
