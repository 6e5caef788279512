package access_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/config"
)

// TestMisconfiguredGuardDeniesAll: options the guard cannot work with make
// every load fail closed, and say why.
func TestMisconfiguredGuardDeniesAll(t *testing.T) {
	w := newWorld(t)
	up := newUpstream(t, w, modelX, modelY)
	cfg := config.Default()
	cfg.Home, cfg.APIHost = w.home(t), up.URL
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()), modelcache.WithLogger(w.logger()),
		modelcache.WithAccessGuard(access.Options{PositiveTTL: -1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Load(context.Background(), modelX, modelcache.WithAPIKey(keyA)); err == nil {
		t.Fatal("a misconfigured guard allowed a load")
	}
	err = c.CheckAccess(context.Background(), modelX, modelcache.WithAPIKey(keyA))
	var ade *access.AccessDeniedError
	var oe *access.OptionsError
	if !errors.As(err, &ade) || ade.Reason != access.ReasonMisconfigured || !errors.As(err, &oe) || oe.Field != "PositiveTTL" {
		t.Errorf("CheckAccess: %v", err)
	}
	if !strings.Contains(w.logs.String(), "PositiveTTL") || c.AccessGuard() != nil {
		t.Errorf("the misconfiguration is not logged, or a guard is returned")
	}
}

// TestAccessManagerAliases: the root's names are the access package's.
func TestAccessManagerAliases(t *testing.T) {
	var m modelcache.AccessManager = modelcache.AllowAll{}
	if _, ok := m.(access.AllowAll); !ok {
		t.Error("modelcache.AllowAll is not access.AllowAll")
	}
	var g access.AccessManager = &access.ProviderGuard{}
	var _ modelcache.AccessManager = g
	w := newWorld(t)
	cfg := config.Default()
	cfg.Home = w.home(t)
	c, err := modelcache.New(cfg, modelcache.WithRuntime(cpuRuntime()), modelcache.WithLogger(w.logger()))
	if err != nil {
		t.Fatal(err)
	}
	if c.AccessGuard() != nil {
		t.Error("a client without WithAccessGuard reports a guard")
	}
}
