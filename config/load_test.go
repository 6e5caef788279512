package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// isolateEnv makes every variable Load reads or writes unset for the test and
// restored afterwards (t.Setenv records the old value; Unsetenv then clears it).
// Load changes the process environment, so these tests cannot run in parallel.
func isolateEnv(t *testing.T, extra ...string) {
	t.Helper()
	names := append([]string{envHFHubOffline, envTransformersOffline, envYOLOOffline, "API_KEY", "ONNX_EXECUTION_PROVIDERS"}, extra...)
	for _, v := range Variables() {
		names = append(names, v.Name)
	}
	for _, n := range names {
		t.Setenv(n, "")
		if err := os.Unsetenv(n); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(t.TempDir())
}

func writeDotEnv(t *testing.T, content string) {
	t.Helper()
	if err := os.WriteFile(".env", []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadAppliesDotEnvWithoutOverriding(t *testing.T) {
	isolateEnv(t, "MODELCACHE_TEST_EXTRA")
	writeDotEnv(t, "INFERENCE_HOME=/from/dotenv\nMODEL_CACHE_DIR=/models\nAPI_CALLS_MAX_TRIES=9\nexport MODELCACHE_TEST_EXTRA='x y'\n")
	t.Setenv(EnvInferenceHome, "") // set, though empty: .env must not override it
	t.Setenv(EnvAPIMaxTries, "4")

	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Home != "/models" || c.APIMaxTries != 4 {
		t.Errorf("Home = %q, APIMaxTries = %d; want /models (empty INFERENCE_HOME kept, so MODEL_CACHE_DIR) and 4", c.Home, c.APIMaxTries)
	}
	if got := os.Getenv("MODELCACHE_TEST_EXTRA"); got != "x y" {
		t.Errorf("MODELCACHE_TEST_EXTRA = %q: .env values must reach the process environment", got)
	}
}

func TestLoadSkipDotEnv(t *testing.T) {
	isolateEnv(t)
	writeDotEnv(t, "INFERENCE_HOME=/from/dotenv\n")
	c, err := LoadOptions{SkipDotEnv: true}.Load()
	if err != nil {
		t.Fatal(err)
	}
	if c.Home != DefaultHome {
		t.Errorf("Home = %q, want %q", c.Home, DefaultHome)
	}
}

func TestLoadWithoutDotEnvFile(t *testing.T) {
	isolateEnv(t)
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
}

// A bare OFFLINE_MODE line must not silently run online (offline.md §1.1 "fails closed").
func TestLoadRejectsMalformedDotEnv(t *testing.T) {
	for _, content := range []string{"OFFLINE_MODE\n", "INFERENCE_HOME=/x\nOFFLINE_MODE", "A=1\n-bad=2\n"} {
		isolateEnv(t)
		writeDotEnv(t, content)
		wd, _ := os.Getwd()
		_, err := Load()
		if err == nil || !strings.Contains(err.Error(), filepath.Join(wd, ".env")) {
			t.Errorf(".env %q: error %v, want one naming the file", content, err)
		}
	}
}

func TestLoadDotEnvOfflineModeIsValidated(t *testing.T) {
	isolateEnv(t)
	writeDotEnv(t, "OFFLINE_MODE=\n")
	if _, err := Load(); err == nil || !strings.Contains(err.Error(), EnvOffline) {
		t.Errorf("error %v, want one naming %s", err, EnvOffline)
	}
}

func TestLoadPublishesOfflineDecision(t *testing.T) {
	isolateEnv(t)
	t.Setenv(EnvOffline, "TRUE")
	c, err := Load()
	if err != nil || !c.Offline {
		t.Fatalf("Offline = %v, err = %v", c.Offline, err)
	}
	for k, want := range map[string]string{EnvOfflineLatch: "True", envHFHubOffline: "1", envTransformersOffline: "1", envYOLOOffline: "True"} {
		if got, _ := os.LookupEnv(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// A child started now inherits the decision even if OFFLINE_MODE changes.
	t.Setenv(EnvOffline, "false")
	if c, err := Load(); err != nil || !c.Offline {
		t.Errorf("child: Offline = %v, err = %v; want the inherited true", c.Offline, err)
	}
}

func TestLoadPublishesOnlineDecision(t *testing.T) {
	isolateEnv(t)
	if _, err := Load(); err != nil {
		t.Fatal(err)
	}
	if got := os.Getenv(EnvOfflineLatch); got != "False" {
		t.Errorf("%s = %q, want False", EnvOfflineLatch, got)
	}
	if _, set := os.LookupEnv(envHFHubOffline); set {
		t.Errorf("%s set while online", envHFHubOffline)
	}
}

func TestLoadPublishesStartupError(t *testing.T) {
	isolateEnv(t)
	t.Setenv(EnvOffline, "yes")
	if _, err := Load(); err == nil {
		t.Fatal("OFFLINE_MODE=yes accepted")
	}
	stored := os.Getenv(EnvOfflineStartupErr)
	if !strings.Contains(stored, EnvOffline) || !strings.Contains(stored, `"yes"`) {
		t.Errorf("%s = %q", EnvOfflineStartupErr, stored)
	}
	// A child fails the same way even with a valid OFFLINE_MODE, and keeps the text.
	t.Setenv(EnvOffline, "true")
	_, err := Load()
	if err == nil || !strings.Contains(err.Error(), EnvOfflineStartupErr) {
		t.Errorf("child: error %v, want the inherited start-up error", err)
	}
	if got := os.Getenv(EnvOfflineStartupErr); got != stored {
		t.Errorf("child rewrote %s: %q", EnvOfflineStartupErr, got)
	}
}
