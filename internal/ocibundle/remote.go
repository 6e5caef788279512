package ocibundle

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"github.com/modelcache/modelcache/internal/cache"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
)

// Scheme prefixes a registry reference on the command line.
const Scheme = "oci://"

// IsReference reports whether s names a registry artifact (oci://…).
func IsReference(s string) bool { return strings.HasPrefix(s, Scheme) }

// RemoteOptions configure a registry connection.
type RemoteOptions struct {
	// PlainHTTP talks HTTP instead of HTTPS (local registries).
	PlainHTTP bool
	// RegistryConfig is a docker config.json with credentials; "" uses the
	// docker default ($DOCKER_CONFIG/config.json, else ~/.docker/config.json),
	// with its credential helpers.
	RegistryConfig string
	// HTTPClient carries the requests (the process's single transport
	// factory, which refuses dials in OFFLINE_MODE); nil uses a default.
	HTTPClient *http.Client
}

// Remote is one repository of a registry and the tag or digest named.
type Remote struct {
	Repo *remote.Repository
	// Reference is the tag or digest.
	Reference string
	ref       registry.Reference
}

// OpenRemote parses oci://HOST[:PORT]/REPO[:TAG|@DIGEST] and prepares a
// client with credentials from the docker config.
func OpenRemote(s string, o RemoteOptions) (*Remote, error) {
	if !IsReference(s) {
		return nil, fmt.Errorf("%w: %q: a registry reference starts with %s (oci://HOST/REPO:TAG)", ErrInvalid, s, Scheme)
	}
	ref, err := registry.ParseReference(strings.TrimPrefix(s, Scheme))
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %v (want oci://HOST/REPO:TAG)", ErrInvalid, s, err)
	}
	if ref.Reference == "" {
		return nil, fmt.Errorf("%w: %q names no tag or digest (want oci://HOST/REPO:TAG)", ErrInvalid, s)
	}
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, err
	}
	repo.PlainHTTP = o.PlainHTTP
	var store credentials.Store
	if o.RegistryConfig != "" {
		store, err = credentials.NewStore(o.RegistryConfig, credentials.StoreOptions{})
	} else {
		store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("registry credentials: %w", err)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	repo.Client = &auth.Client{Client: hc, Cache: auth.NewCache(), Credential: credentials.Credential(store)}
	return &Remote{Repo: repo, Reference: ref.Reference, ref: ref}, nil
}

// String is the reference as given, without the scheme.
func (r *Remote) String() string { return r.ref.String() }

// PushOptions configure Push.
type PushOptions struct {
	// Concurrency bounds parallel blob uploads (default 4).
	Concurrency int
	// MountFrom lists repositories of the same registry to mount blobs from
	// instead of uploading them, where the registry supports it.
	MountFrom []string
}

// PushStats counts what a push did.
type PushStats struct {
	Uploaded int64 `json:"blobs_uploaded"`
	Mounted  int64 `json:"blobs_mounted"`
	Existing int64 `json:"blobs_existing"`
	Bytes    int64 `json:"bytes_uploaded"`
}

// Push uploads the graph and tags its root (the package manifest, or an
// index when there are several packages) with r.Reference.
func (r *Remote) Push(ctx context.Context, g *Graph, o PushOptions) (ocispec.Descriptor, PushStats, error) {
	if err := registry.Reference.ValidateReferenceAsTag(r.ref); err != nil {
		return ocispec.Descriptor{}, PushStats{}, fmt.Errorf("%w: push needs a tag: %v", ErrInvalid, err)
	}
	root, err := g.Root()
	if err != nil {
		return ocispec.Descriptor{}, PushStats{}, err
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	var uploaded, mounted, existing, bytes atomic.Int64
	opts := oras.CopyGraphOptions{
		Concurrency: o.Concurrency,
		PostCopy: func(_ context.Context, d ocispec.Descriptor) error {
			uploaded.Add(1)
			bytes.Add(d.Size)
			return nil
		},
		OnCopySkipped: func(context.Context, ocispec.Descriptor) error { existing.Add(1); return nil },
		OnMounted:     func(context.Context, ocispec.Descriptor) error { mounted.Add(1); return nil },
	}
	if len(o.MountFrom) > 0 {
		opts.MountFrom = func(context.Context, ocispec.Descriptor) ([]string, error) { return o.MountFrom, nil }
	}
	if err := oras.CopyGraph(ctx, g, r.Repo, root, opts); err != nil {
		return ocispec.Descriptor{}, PushStats{}, fmt.Errorf("push to %s: %w", r, err)
	}
	if err := r.Repo.Tag(ctx, root, r.Reference); err != nil {
		return ocispec.Descriptor{}, PushStats{}, fmt.Errorf("tag %s: %w", r, err)
	}
	return root, PushStats{Uploaded: uploaded.Load(), Mounted: mounted.Load(), Existing: existing.Load(), Bytes: bytes.Load()}, nil
}

// Pull imports the artifact r names into the cache: its packages are
// materialized from verified layers (blobs the cache already has are not
// downloaded) and recorded in the offline-weights registry.
func (r *Remote) Pull(ctx context.Context, c *cache.Cache, opts Options) (*Result, ocispec.Descriptor, error) {
	root, err := r.Repo.Resolve(ctx, r.Reference)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", r, err)
	}
	if root.MediaType != MediaTypeOCIManifest && root.MediaType != MediaTypeOCIIndex {
		return nil, root, fmt.Errorf("%w: %s is a %q", ErrNotModelcache, r, root.MediaType)
	}
	opts.SkipPresentBlobs = true
	res, err := Import(ctx, c, r.Repo, []ocispec.Descriptor{root}, opts)
	return res, root, err
}
