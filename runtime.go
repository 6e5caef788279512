package modelcache

import (
	"context"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/negotiation"
	"github.com/modelcache/modelcache/xray"
)

// defaultProbe is the runtime x-ray of this machine.
func defaultProbe(cfg config.Config) func(ctx context.Context) (negotiation.Runtime, error) {
	return func(ctx context.Context) (negotiation.Runtime, error) {
		rt, err := xray.Probe(ctx, xray.OptionsFromConfig(cfg))
		return rt.Facts, err
	}
}
