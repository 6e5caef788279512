// Package cache opens one INFERENCE_HOME and wires its stores together: the
// shared blob store, package materialization, the auto-resolution cache and
// the offline-weights registry, all sharing one lock table and one Config.
package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// Cache is an opened INFERENCE_HOME.
type Cache struct {
	Config      config.Config
	Home        layout.Home
	Locks       *lock.Locker
	Blobs       *blobfs.Store
	Packages    *materialize.Store
	Resolutions *autoresolve.Cache
	Registry    *offlinereg.Registry
	log         *slog.Logger
}

// Option configures Open.
type Option func(*options)

type options struct {
	log   *slog.Logger
	clock func() time.Time
}

// WithLogger sets the logger of every store.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock injects "now" for the auto-resolution cache (tests, replays).
func WithClock(c func() time.Time) Option { return func(o *options) { o.clock = c } }

// cacheDirTag marks the directory for backup tools (bford.net/cachedir).
const cacheDirTag = "Signature: 8a477f597d28d172789f06886806bc55\n" +
	"# This file is a cache directory tag created by modelcache.\n" +
	"# Model packages here can be downloaded again; see `modelcache gc` and `modelcache purge`.\n"

// Open opens the cache at cfg.Home. Online it creates the directories it
// needs and CACHEDIR.TAG; offline (cfg.Offline) it writes nothing.
func Open(cfg config.Config, opts ...Option) (*Cache, error) {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	home, err := layout.NewHome(cfg.Home)
	if err != nil {
		return nil, err
	}
	locks := lock.NewLocker(lock.Options{Timeout: cfg.LockTimeout, Logger: o.log})
	c := &Cache{Config: cfg, Home: home, Locks: locks, log: o.log}
	readOnly := cfg.Offline
	if !cfg.Offline {
		if err := fsx.EnsureDir(home.Root, 0o777); err != nil {
			if errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotDir) {
				return nil, fmt.Errorf("cache root %s: %w", home.Root, err)
			}
			// A read-only cache (a mounted image, another user's cache) can
			// still answer lookups; writes fail later with their own errors.
			o.log.Warn("cache root is not writable; opening it read-only (set INFERENCE_HOME to a writable directory to download)",
				"home", home.Root, "err", err)
			readOnly = true
		} else if err := writeTag(home.CacheDirTag()); err != nil {
			o.log.Debug("could not write CACHEDIR.TAG", "err", err)
		}
	}
	bopts := []blobfs.Option{blobfs.WithLogger(o.log)}
	if readOnly {
		bopts = append(bopts, blobfs.WithoutCreate())
	}
	if c.Blobs, err = blobfs.Open(home.Root, locks, bopts...); err != nil {
		return nil, err
	}
	c.Packages = materialize.New(home, locks, c.Blobs, materialize.WithLogger(o.log))
	ttl := autoresolve.TTLMinutes(int64(cfg.AutoResolutionTTLMinutes))
	if c.Resolutions, err = autoresolve.New(autoresolve.Options{
		Dir: home.AutoResolutionCache(), Offline: cfg.Offline, TTL: ttl,
		Clock: o.clock, Locker: locks, Logger: o.log,
	}); err != nil {
		return nil, err
	}
	c.Registry = offlinereg.New(home, offlinereg.Options{Locker: locks, Logger: o.log, LockTimeout: cfg.LockTimeout})
	return c, nil
}

func writeTag(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	return fsx.WriteFileAtomic(path, []byte(cacheDirTag), 0o644)
}

// PackageState says how far a package dir got.
type PackageState string

// Package states.
const (
	// StateComplete: a v4 manifest is present (the package was published).
	StateComplete PackageState = "complete"
	// StatePartial: no v4 manifest yet (in progress, interrupted or legacy).
	StatePartial PackageState = "partial"
	// StateBroken: the manifest is unreadable or invalid.
	StateBroken PackageState = "broken"
)

// PackageInfo describes one package dir found under models-cache.
type PackageInfo struct {
	Slug      string
	PackageID string
	Dir       string
	State     PackageState
	// Manifest is set when it parses.
	Manifest *manifest.Manifest
	Err      error
}

var slugPattern = regexp.MustCompile(`^v2-[A-Za-z0-9_-]+-[0-9a-f]{32}$`)

// ScanPackages lists every package dir under models-cache, sorted by slug
// and case-folded package id. Legacy (v1) slug dirs, dotfiles and symlinks
// are not entered.
func (c *Cache) ScanPackages(ctx context.Context) ([]PackageInfo, error) {
	models, err := os.ReadDir(c.Home.ModelsCache())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []PackageInfo
	for _, m := range models {
		if !m.IsDir() || !slugPattern.MatchString(m.Name()) {
			continue
		}
		modelDir := filepath.Join(c.Home.ModelsCache(), m.Name())
		pkgs, err := os.ReadDir(modelDir)
		if err != nil {
			return nil, err
		}
		sort.SliceStable(pkgs, func(i, j int) bool {
			return strings.ToLower(pkgs[i].Name()) < strings.ToLower(pkgs[j].Name())
		})
		for _, p := range pkgs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if !p.IsDir() || layout.ValidatePackageID(p.Name()) != nil {
				continue
			}
			info := PackageInfo{Slug: m.Name(), PackageID: p.Name(), Dir: filepath.Join(modelDir, p.Name())}
			mf, err := manifest.Read(ctx, info.Dir)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				info.State = StatePartial
			case err != nil:
				info.State, info.Err = StateBroken, err
			case mf.Complete():
				info.State, info.Manifest = StateComplete, mf
			default:
				info.State, info.Manifest = StatePartial, mf
			}
			out = append(out, info)
		}
	}
	return out, nil
}
