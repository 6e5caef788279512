// Package provider defines weights providers – sources of model metadata –
// and a registry of named providers.
//
// A Provider turns a model id (and an API key) into metadata.ModelMetadata.
// The built-in names are Roboflow ("roboflow", the HTTP API client in
// provider/roboflow) and RoboflowOfflineWeights ("roboflow-offline-weights",
// the offline-weights registry); they are reserved: users register their own
// providers under other names. Errors are *RetrievalError / *RetryError
// (see errors.go) so callers branch with errors.As / errors.Is.
package provider

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/metadata"
)

// Built-in provider names (reserved, compared case-insensitively).
const (
	Roboflow               = "roboflow"
	RoboflowOfflineWeights = "roboflow-offline-weights"
)

// BuiltinNames returns the reserved built-in provider names.
func BuiltinNames() []string { return []string{Roboflow, RoboflowOfflineWeights} }

// IsBuiltinName reports whether name equals (case-insensitively) a built-in name.
func IsBuiltinName(name string) bool {
	for _, b := range BuiltinNames() {
		if strings.EqualFold(name, b) {
			return true
		}
	}
	return false
}

// Request is one metadata request.
type Request struct {
	// ModelID is the requested id (alias or canonical).
	ModelID string
	// APIKey as given by the caller. Built-in providers fall back to their
	// configured key when it is empty or "local"; custom providers get it
	// unchanged.
	APIKey string
	// ExtraQuery are extra query parameters (name, value), in order; repeated
	// names are sent repeatedly. Built-in parameters win on collision.
	ExtraQuery [][2]string
	// ExtraHeaders are merged into the request; built-in headers win.
	ExtraHeaders map[string]string
}

// Provider returns the metadata of one model.
type Provider interface {
	ModelMetadata(ctx context.Context, req Request) (*metadata.ModelMetadata, error)
}

// Func adapts a function to Provider (the reference's custom provider callable).
type Func func(ctx context.Context, req Request) (*metadata.ModelMetadata, error)

// ModelMetadata calls f.
func (f Func) ModelMetadata(ctx context.Context, req Request) (*metadata.ModelMetadata, error) {
	return f(ctx, req)
}

// ValidateModelID checks a remote model id (on-disk-contract §4.3): non-blank
// after trimming Unicode whitespace, valid UTF-8, without NUL. The error wraps
// errdefs.ErrInvalidParameter.
func ValidateModelID(id string) error { return layout.ValidateRemoteModelID(id) }

// Registry maps provider names to providers. It is safe for concurrent use.
// The zero value is not usable; create one with NewRegistry.
type Registry struct {
	mu        sync.RWMutex
	providers map[string]Provider // key: exact name for custom, canonical name for built-ins
}

// NewRegistry returns a registry holding the given built-in providers. Every
// key of builtins must be a built-in name (BuiltinNames); a built-in name
// without an entry stays reserved and unresolvable until SetBuiltin.
func NewRegistry(builtins map[string]Provider) (*Registry, error) {
	r := &Registry{providers: map[string]Provider{}}
	for name, p := range builtins {
		if err := r.SetBuiltin(name, p); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// SetBuiltin installs (or replaces) the implementation of a built-in name.
// It is how the offline-weights provider is wired in after construction.
func (r *Registry) SetBuiltin(name string, p Provider) error {
	if p == nil {
		return fmt.Errorf("provider %q: nil provider: %w", name, errdefs.ErrInvalidParameter)
	}
	for _, b := range BuiltinNames() {
		if name == b {
			r.mu.Lock()
			r.providers[b] = p
			r.mu.Unlock()
			return nil
		}
	}
	return fmt.Errorf("%q is not a built-in provider name (built-ins: %s): %w",
		name, strings.Join(BuiltinNames(), ", "), errdefs.ErrInvalidParameter)
}

// Register adds or replaces a custom provider. It refuses an empty name, a
// name equal (case-insensitively) to a built-in one, and a nil provider.
func (r *Registry) Register(name string, p Provider) error {
	if strings.TrimSpace(name) == "" {
		return fmt.Errorf("provider name must not be empty: %w", errdefs.ErrInvalidParameter)
	}
	if IsBuiltinName(name) {
		return fmt.Errorf("provider name %q is reserved for a built-in provider: %w", name, errdefs.ErrInvalidParameter)
	}
	if p == nil {
		return fmt.Errorf("provider %q: nil provider: %w", name, errdefs.ErrInvalidParameter)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.providers[name] = p
	return nil
}

// Get returns the provider registered under name. An unknown name yields the
// reference's RetrievalError ("... provider which is not implemented.").
func (r *Registry) Get(name string) (Provider, error) {
	r.mu.RLock()
	p, ok := r.providers[name]
	r.mu.RUnlock()
	if !ok {
		return nil, Retrievalf("Requested model to be retrieved using '%s' provider which is not implemented.", name)
	}
	return p, nil
}

// Names lists the registered names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.providers))
	for n := range r.providers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ModelMetadata validates the model id, then asks the named provider.
func (r *Registry) ModelMetadata(ctx context.Context, name string, req Request) (*metadata.ModelMetadata, error) {
	if err := ValidateModelID(req.ModelID); err != nil {
		return nil, err
	}
	p, err := r.Get(name)
	if err != nil {
		return nil, err
	}
	return p.ModelMetadata(ctx, req)
}
