package negotiation

import (
	"context"

	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// Resolve asks p for the metadata of modelID and negotiates its packages:
// the path `modelcache resolve` takes (weights-API JSON -> parse ->
// negotiate). The metadata is returned whenever the provider answered.
func Resolve(ctx context.Context, p provider.Provider, preq provider.Request, req Request, rt Runtime) (*metadata.ModelMetadata, *Report, error) {
	md, err := p.ModelMetadata(ctx, preq)
	if err != nil {
		return nil, nil, err
	}
	rep, err := Negotiate(md, req, rt)
	return md, rep, err
}
