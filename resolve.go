package modelcache

import (
	"context"

	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// Resolution is a negotiation outcome without any download.
type Resolution struct {
	// Metadata is nil when the provider did not answer.
	Metadata *metadata.ModelMetadata
	// Report is nil when negotiation did not run.
	Report  *Report
	Device  string
	Runtime Runtime
	// Key is the auto-resolution key of the request ("" with device=None).
	Key string
}

// Resolve asks the provider for modelID's packages and negotiates them for
// this runtime, as Load would, without downloading anything. The returned
// Resolution holds whatever was learnt even when err is not nil.
func (c *Client) Resolve(ctx context.Context, modelID string, opts ...LoadOption) (*Resolution, error) {
	o := newLoadOptions(opts)
	if err := provider.ValidateModelID(modelID); err != nil {
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
