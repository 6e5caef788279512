// Package providertest is the conformance suite of provider.Provider: every
// weights provider (the Roboflow API client, local directories, the
// offline-weights registry, a user's own) runs Run from its tests.
package providertest

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/provider"
)

// Fixture is what the provider under test was set up to serve.
type Fixture struct {
	// Known is a model id the provider serves; Canonical the id its metadata
	// must carry (equal to Known unless Known is an alias).
	Known, Canonical string
	// Packages are the package ids it announces for Known, in any order.
	Packages []string
	// Unknown is a model id it does not serve.
	Unknown string
	// APIKey, if set, is sent with every request.
	APIKey string
}

// Run runs every conformance test against p.
func Run(t *testing.T, p provider.Provider, f Fixture) {
	req := func(id string) provider.Request { return provider.Request{ModelID: id, APIKey: f.APIKey} }
	t.Run("Known", func(t *testing.T) {
		md, err := p.ModelMetadata(context.Background(), req(f.Known))
		if err != nil {
			t.Fatalf("ModelMetadata(%q): %v", f.Known, err)
		}
		if md.ModelID != f.Canonical {
			t.Errorf("model id %q, want the canonical %q", md.ModelID, f.Canonical)
		}
		var ids []string
		for _, pk := range md.Packages {
			ids = append(ids, pk.PackageID)
			if err := layout.ValidatePackageID(pk.PackageID); err != nil {
				t.Errorf("package id %q: %v", pk.PackageID, err)
			}
			var handles []string
			for _, a := range pk.Artifacts {
				handles = append(handles, a.FileHandle)
				if a.MD5Hash != nil {
					if err := blobstore.ValidateMD5(*a.MD5Hash); err != nil {
						t.Errorf("package %s, file %s: %v", pk.PackageID, a.FileHandle, err)
					}
				}
			}
			if err := layout.ValidateHandleSet(handles); err != nil {
				t.Errorf("package %s: %v", pk.PackageID, err)
			}
		}
		want := slices.Clone(f.Packages)
		sort.Strings(ids)
		sort.Strings(want)
		if !slices.Equal(ids, want) {
			t.Errorf("packages %v, want %v", ids, want)
		}
	})
	t.Run("Unknown", func(t *testing.T) {
		md, err := p.ModelMetadata(context.Background(), req(f.Unknown))
		if md != nil || !errors.Is(err, provider.ErrModelNotFound) {
			t.Fatalf("ModelMetadata(%q) = %v, %v; want no metadata and an error matching provider.ErrModelNotFound", f.Unknown, md, err)
		}
	})
	t.Run("CancelledContext", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		md, err := p.ModelMetadata(ctx, req(f.Known))
		// A provider that answers from memory may finish; one that does I/O
		// must stop with the context's error.
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled: %v, want context.Canceled", err)
		}
		if err == nil && md == nil {
			t.Fatal("cancelled: no metadata and no error")
		}
	})
	t.Run("ConcurrentAndIndependent", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				md, err := p.ModelMetadata(context.Background(), req(f.Known))
				if err == nil {
					// Callers own what they get: scribbling on it must not
					// reach another caller.
					md.ModelID = "scribbled"
					for i := range md.Packages {
						md.Packages[i].PackageID = "scribbled"
						md.Packages[i].Artifacts = nil
					}
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		md, err := p.ModelMetadata(context.Background(), req(f.Known))
		if err != nil || md.ModelID != f.Canonical || len(md.Packages) != len(f.Packages) || md.Packages[0].PackageID == "scribbled" {
			t.Fatalf("after concurrent callers changed their copies: %v %+v", err, md)
		}
	})
}
