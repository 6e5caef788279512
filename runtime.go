package modelcache

import (
	"context"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/xray"
)

// defaultProbe is the runtime x-ray of this machine. Online, the result is
// kept in .meta/xray.json and reused while the host's fingerprint holds: a
// fresh probe starts Python and scans libraries (hundreds of ms), which a
// warm CLI load cannot afford. Offline nothing is written.
func defaultProbe(cfg config.Config, options func() xray.Options) func(ctx context.Context) (negotiation.Runtime, error) {
	return func(ctx context.Context) (negotiation.Runtime, error) {
		opts := options()
		path := ""
		if home, err := layout.NewHome(cfg.Home); err == nil && !cfg.Offline {
			path = filepath.Join(home.Meta(), "xray.json")
		}
		rt, _, err := xray.CachedProbe(ctx, opts, path, time.Now())
		return rt.Facts, err
	}
}
