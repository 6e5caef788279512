// Package offline is the weights provider of OFFLINE_MODE
// ("roboflow-offline-weights"): model metadata from the offline-weights
// registry of a cache (offline.md §4), serving only the packages whose every
// recorded file is present in the cache. It makes no network call and
// writes nothing.
package offline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// Provider serves the offline-weights registry of one cache.
type Provider struct {
	home layout.Home
	reg  *offlinereg.Registry
}

// Option configures New.
type Option func(*options)

type options struct{ log *slog.Logger }

// WithLogger receives the warnings about skipped records and packages.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// New returns the provider of the cache at home ($INFERENCE_HOME).
func New(home string, opts ...Option) (*Provider, error) {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	h, err := layout.NewHome(home)
	if err != nil {
		return nil, err
	}
	return &Provider{home: h, reg: offlinereg.New(h, offlinereg.Options{Logger: o.log})}, nil
}

var _ provider.Provider = (*Provider)(nil)

// ModelMetadata returns the recorded metadata of req.ModelID (a canonical id
// or an alias) with only its complete packages. No record, or no complete
// package, is a *NotAvailableError.
func (p *Provider) ModelMetadata(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
	md, err := p.reg.LoadModelMetadata(ctx, req.ModelID)
	if err != nil {
		return nil, err
	}
	if md == nil {
		return nil, &NotAvailableError{ModelID: req.ModelID}
	}
	var kept []metadata.ModelPackage
	var incomplete []string
	for i := range md.Packages {
		pkg := &md.Packages[i]
		if missing := materialize.MissingFiles(p.home, materialize.CacheOwner(md, pkg), pkg.PackageID, pkg.Artifacts); len(missing) == 0 {
			kept = append(kept, *pkg)
		} else {
			incomplete = append(incomplete, fmt.Sprintf("%s (missing %v)", pkg.PackageID, missing))
		}
	}
	if len(kept) == 0 {
		return nil, &NotAvailableError{ModelID: req.ModelID, Incomplete: incomplete}
	}
	md.Packages = kept
	return md, nil
}

// NotAvailableError: the offline-weights registry cannot serve the model
// (no record, or its packages are incomplete on disk). It wraps
// errdefs.ErrOffline, and provider.ErrModelNotFound when there is no record.
type NotAvailableError struct {
	ModelID string
	// Incomplete describes each recorded package that is not complete.
	Incomplete []string
}

func (e *NotAvailableError) Error() string {
	if len(e.Incomplete) == 0 {
		return fmt.Sprintf("No offline-weights record found for model '%s'. Build the offline cache by running once with network access and OFFLINE_MODE_WARM_UP=True, then restart with OFFLINE_MODE=True.", e.ModelID)
	}
	return fmt.Sprintf("offline-weights record for model '%s' found, but its packages are incomplete on disk: %s; run `modelcache verify %s`, or warm the cache again with network access",
		e.ModelID, strings.Join(e.Incomplete, "; "), e.ModelID)
}

func (e *NotAvailableError) Unwrap() []error {
	if len(e.Incomplete) == 0 {
		return []error{errdefs.ErrOffline, provider.ErrModelNotFound}
	}
	return []error{errdefs.ErrOffline}
}
