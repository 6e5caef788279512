package config

import (
	"errors"
	"testing"
	"time"
)

func TestGuardOfflineGrace(t *testing.T) {
	if got := mustFromEnv(t, nil).GuardOfflineGrace; got != 0 {
		t.Errorf("default %v, want 0 (deny)", got)
	}
	for v, want := range map[string]time.Duration{"30m": 30 * time.Minute, " 1h30m ": 90 * time.Minute, "0": 0, "": 0} {
		if got := mustFromEnv(t, map[string]string{EnvGuardOfflineGrace: v}).GuardOfflineGrace; got != want {
			t.Errorf("%s=%q: %v, want %v", EnvGuardOfflineGrace, v, got, want)
		}
	}
	for _, v := range []string{"-5m", "10", "ten minutes"} {
		_, err := FromEnv(envOf(map[string]string{EnvGuardOfflineGrace: v}))
		var ie *InvalidEnvError
		if !errors.As(err, &ie) || ie.Name != EnvGuardOfflineGrace || ie.Value != v {
			t.Errorf("%s=%q: %v, want an InvalidEnvError naming it", EnvGuardOfflineGrace, v, err)
		}
	}
}
