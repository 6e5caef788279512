package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func mustFromEnv(t *testing.T, m map[string]string) Config {
	t.Helper()
	c, err := FromEnv(envOf(m))
	if err != nil {
		t.Fatalf("FromEnv(%v): %v", m, err)
	}
	return c
}

// TestDefaultMatchesSpec spells out on-disk-contract §1.2 and registry-protocol §1.
func TestDefaultMatchesSpec(t *testing.T) {
	want := Config{
		Home:                     "/tmp/cache",
		AutoResolutionTTL:        24 * time.Hour,
		AutoResolutionTTLMinutes: 1440,
		LockTimeout:              20 * time.Second,
		APITimeout:               5 * time.Second,
		APIMaxTries:              3,
		RetryCodes:               []int{408, 429, 502, 503, 504},
		ChunkConnectTimeout:      30 * time.Second,
		ChunkReadTimeout:         60 * time.Second,
		ChunkMaxAttempts:         60,
		APIHost:                  "https://api.roboflow.com",
		DirectIO:                 true, // ours (download engine), not in the spec
		// The reference's MODEL_BLOB_CACHE_* defaults (after 0.36.0), and ours
		// for the upload bounds.
		BlobCache: BlobCache{
			Prefix: "model-blobs", AddressingStyle: "auto",
			ConnectTimeout: time.Second, ReadTimeout: 2 * time.Second,
			MaxObjectBytes: 20 * 1024 * 1024 * 1024, FailureThreshold: 3, Cooldown: time.Minute,
			UploadWorkers: 2, UploadQueue: 8, ExitWait: 30 * time.Second,
		},
		DownloadLimits: DownloadLimits{ // ours too
			RetryDeadline: 10 * time.Minute, MaxUnknownSize: 32 << 30, DiskReservePercent: 1},
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() =\n%#v\nwant\n%#v", got, want)
	}
	if got := mustFromEnv(t, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("FromEnv(empty) =\n%#v\nwant\n%#v", got, want)
	}
}

func TestDefaultIsFresh(t *testing.T) {
	a := Default()
	a.RetryCodes[0] = 999
	if Default().RetryCodes[0] != 408 {
		t.Fatal("Default shares its RetryCodes slice between calls")
	}
}

func TestFromEnvReadsEachVariable(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        func(*Config)
	}{
		{EnvAutoResolutionTTL, "90", func(c *Config) { c.AutoResolutionTTL, c.AutoResolutionTTLMinutes = 90*time.Minute, 90 }},
		{EnvAutoResolutionTTL, "0", func(c *Config) { c.AutoResolutionTTL, c.AutoResolutionTTLMinutes = 0, 0 }},
		{EnvAutoResolutionTTL, " -5 ", func(c *Config) { c.AutoResolutionTTL, c.AutoResolutionTTLMinutes = -5*time.Minute, -5 }},
		{EnvAutoResolutionTTL, "99999999999999999999", func(c *Config) {
			c.AutoResolutionTTL, c.AutoResolutionTTLMinutes = math.MaxInt64, math.MaxInt64
		}},
		{EnvLockTimeout, "1_0", func(c *Config) { c.LockTimeout = 10 * time.Second }},
		{EnvLockTimeout, "-1", func(c *Config) { c.LockTimeout = -time.Second }},
		{EnvAPITimeout, "010", func(c *Config) { c.APITimeout = 10 * time.Second }},
		{EnvAPIMaxTries, "+7", func(c *Config) { c.APIMaxTries = 7 }},
		{EnvRetryCodes, "500, 503", func(c *Config) { c.RetryCodes = []int{500, 503} }},
		{EnvRetryCodes, "", func(c *Config) { c.RetryCodes = []int{} }},
		{EnvChunkConnectTimeout, "2.5", func(c *Config) { c.ChunkConnectTimeout = 2500 * time.Millisecond }},
		{EnvChunkConnectTimeout, "inf", func(c *Config) { c.ChunkConnectTimeout = math.MaxInt64 }},
		{EnvChunkReadTimeout, "1e1", func(c *Config) { c.ChunkReadTimeout, c.ChunkReadTimeoutSet = 10*time.Second, true }},
		{EnvChunkReadTimeout, "60.0", func(c *Config) { c.ChunkReadTimeoutSet = true }},
		{EnvChunkMaxAttempts, "5", func(c *Config) { c.ChunkMaxAttempts = 5 }},
		{EnvOffline, "True", func(c *Config) { c.Offline = true }},
		{EnvOffline, "FALSE", func(c *Config) {}},
		{EnvOfflineWarmUp, "TRUE", func(c *Config) { c.OfflineWarmUp = true }},
		{EnvDisableProgressBars, "true", func(c *Config) { c.DisableProgressBars = true }},
		{EnvDirectIO, "False", func(c *Config) { c.DirectIO = false }},
		{EnvDirectIO, "true", func(c *Config) {}},
		{EnvAPIKey, "rf_abc\tdef", func(c *Config) { c.APIKey = "rf_abc\tdef" }},
		{EnvDefaultDevice, "cuda:1", func(c *Config) { c.DefaultDevice = "cuda:1" }},
		{EnvONNXExecutionProviders, "[CUDAExecutionProvider,CPUExecutionProvider]", func(c *Config) {
			c.ONNXExecutionProviders = "[CUDAExecutionProvider,CPUExecutionProvider]"
		}},
		{EnvRunningOnJetson, "maybe", func(c *Config) { c.RunningOnJetson = "maybe" }}, // raw: negotiation validates
		{EnvJetsonModule, "orin-nx", func(c *Config) { c.JetsonModule = "orin-nx" }},
		{EnvL4TVersion, "36.4.3", func(c *Config) { c.L4TVersion = "36.4.3" }},
	} {
		want := Default()
		tc.want(&want)
		got := mustFromEnv(t, map[string]string{tc.name: tc.value})
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s=%q:\n got %#v\nwant %#v", tc.name, tc.value, got, want)
		}
	}
}

// TestFromEnvRejects runs every rejected example of on-disk-contract §1.3 through
// every variable of that type.
func TestFromEnvRejects(t *testing.T) {
	byType := map[string][]string{
		"bool":     {"", "yes", "1", " true", "on"},
		"int":      {"", "0x10", "1.0", "1e3", "ten", "1__0"},
		"float":    {"", "garbage", "0x10", "1_.5", "nan", "-NaN"}, // nan parses but is no duration
		"int list": {"408,abc", "408;429", "1.0", "0x1F4"},
	}
	vars := map[string][]string{
		"bool":     {EnvOffline, EnvOfflineWarmUp, EnvDisableProgressBars, EnvDirectIO, EnvOfflineLatch},
		"int":      {EnvAutoResolutionTTL, EnvLockTimeout, EnvAPITimeout, EnvAPIMaxTries, EnvChunkMaxAttempts},
		"float":    {EnvChunkConnectTimeout, EnvChunkReadTimeout},
		"int list": {EnvRetryCodes},
	}
	for typ, names := range vars {
		for _, name := range names {
			for _, value := range byType[typ] {
				_, err := FromEnv(envOf(map[string]string{name: value}))
				var ie *InvalidEnvError
				if !errors.As(err, &ie) {
					t.Errorf("%s=%q: error %v, want *InvalidEnvError", name, value, err)
					continue
				}
				if ie.Name != name || ie.Value != value || ie.Accepted == "" {
					t.Errorf("%s=%q: got %+v", name, value, ie)
				}
				msg := err.Error()
				if !strings.Contains(msg, name) || !strings.Contains(msg, `"`+value+`"`) || !strings.Contains(msg, "accepted: ") {
					t.Errorf("%s=%q: message %q must name the variable, the value and what is accepted", name, value, msg)
				}
			}
		}
	}
}

func TestFromEnvReportsEveryBadVariable(t *testing.T) {
	c, err := FromEnv(envOf(map[string]string{EnvAPITimeout: "5s", EnvOffline: "yes", EnvAPIMaxTries: "3"}))
	if err == nil {
		t.Fatal("no error")
	}
	if !reflect.DeepEqual(c, Config{}) {
		t.Errorf("a failed FromEnv returned a non-zero Config: %+v", c)
	}
	for _, name := range []string{EnvAPITimeout, EnvOffline} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not mention %s", err, name)
		}
	}
	if strings.Contains(err.Error(), EnvAPIMaxTries) {
		t.Errorf("error %q mentions a valid variable", err)
	}
}

func TestHome(t *testing.T) {
	wd := kernelWD(t)
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{nil, "/tmp/cache"},
		{map[string]string{EnvInferenceHome: "/data/cache"}, "/data/cache"},
		{map[string]string{EnvInferenceHome: "/data/cache", EnvModelCacheDir: "/m"}, "/data/cache"},
		{map[string]string{EnvModelCacheDir: "/m"}, "/m"},
		{map[string]string{EnvInferenceHome: "", EnvModelCacheDir: "/m"}, "/m"}, // empty counts as unset
		{map[string]string{EnvInferenceHome: "", EnvModelCacheDir: ""}, "/tmp/cache"},
		{map[string]string{EnvInferenceHome: "/a/b/../c/./d/"}, "/a/c/d"},   // lexical, like os.path.abspath
		{map[string]string{EnvInferenceHome: "//srv/cache"}, "//srv/cache"}, // POSIX keeps exactly two slashes
		{map[string]string{EnvInferenceHome: "///srv//cache"}, "/srv/cache"},
		{map[string]string{EnvInferenceHome: "cache"}, wd + "/cache"},
		{map[string]string{EnvModelCacheDir: "../x"}, filepath.Dir(wd) + "/x"},
	} {
		if got := mustFromEnv(t, tc.env).Home; got != tc.want {
			t.Errorf("%v: Home = %q, want %q", tc.env, got, tc.want)
		}
	}
}

// kernelWD is the working directory without symlinks, as getcwd(2) reports it.
func kernelWD(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err == nil {
		wd, err = filepath.EvalSymlinks(wd)
	}
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestHomeTildeIsLiteralWithWarning(t *testing.T) {
	wd := kernelWD(t)
	c := mustFromEnv(t, map[string]string{EnvInferenceHome: "~/cache"})
	if c.Home != wd+"/~/cache" {
		t.Errorf("Home = %q", c.Home)
	}
	if len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], "~") {
		t.Errorf("Warnings = %q", c.Warnings)
	}
}

// TestHomeKeepsSymlinks: a symlinked component stays as written, both in an absolute
// value and in the relative case, where only the working directory comes from the
// kernel (Python's os.getcwd()), not from $PWD.
func TestHomeKeepsSymlinks(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if got := mustFromEnv(t, map[string]string{EnvInferenceHome: link + "/cache"}).Home; got != link+"/cache" {
		t.Errorf("absolute: Home = %q, want %q", got, link+"/cache")
	}

	t.Chdir(link) // also sets PWD=link, which os.Getwd would return
	realWD, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	if got := mustFromEnv(t, map[string]string{EnvInferenceHome: "cache"}).Home; got != realWD+"/cache" {
		t.Errorf("relative: Home = %q, want %q (getcwd, as Python's abspath)", got, realWD+"/cache")
	}
}

func TestAPIHost(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    string
		warning string // substring of the only warning; "" = none
	}{
		{nil, "https://api.roboflow.com", ""},
		{map[string]string{EnvRegion: "us"}, "https://api.roboflow.com", ""},
		{map[string]string{EnvRegion: "eu"}, "https://api.roboflow.eu", ""},
		{map[string]string{EnvRegion: " EU\n"}, "https://api.roboflow.eu", ""}, // trimmed, lower-cased
		{map[string]string{EnvEnvironment: "prod"}, "https://api.roboflow.com", ""},
		{map[string]string{EnvEnvironment: "staging"}, "https://api.roboflow.one", ""},
		{map[string]string{EnvEnvironment: "dev"}, "https://api.roboflow.one", ""},
		{map[string]string{EnvRegion: "eu", EnvEnvironment: "staging"}, "https://api.roboflow-eu.one", ""},
		{map[string]string{EnvEnvironment: "Prod"}, "https://api.roboflow.one", "staging"}, // only exact prod
		{map[string]string{EnvEnvironment: ""}, "https://api.roboflow.one", "staging"},
		{map[string]string{EnvRegion: "ap"}, "https://api.roboflow.com", `"ap" is not a known region`},
		{map[string]string{EnvRegion: "", EnvEnvironment: "staging"}, "https://api.roboflow.one", "not a known region"},
		{map[string]string{EnvAPIHost: "http://127.0.0.1:8080/", EnvRegion: "eu"}, "http://127.0.0.1:8080/", ""},
		{map[string]string{EnvAPIHost: "", EnvRegion: "eu"}, "https://api.roboflow.eu", "set but empty"},
	} {
		c := mustFromEnv(t, tc.env)
		if c.APIHost != tc.want {
			t.Errorf("%v: APIHost = %q, want %q", tc.env, c.APIHost, tc.want)
		}
		checkOneWarning(t, tc.env, c.Warnings, tc.warning)
	}
}

func checkOneWarning(t *testing.T, env map[string]string, got []string, want string) {
	t.Helper()
	if want == "" {
		if len(got) != 0 {
			t.Errorf("%v: unexpected warnings %q", env, got)
		}
		return
	}
	if len(got) != 1 || !strings.Contains(got[0], want) {
		t.Errorf("%v: warnings %q, want one containing %q", env, got, want)
	}
}

func TestSecureGateway(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    string
		warning string
	}{
		{nil, "", ""},
		{map[string]string{EnvSecureGateway: "https://gw.local/edge"}, "https://gw.local/edge", ""},
		{map[string]string{EnvLicenseServer: "gw.local:8080"}, "gw.local:8080", "deprecated"},
		{map[string]string{EnvSecureGateway: "a", EnvLicenseServer: "b"}, "a", ""},
		{map[string]string{EnvSecureGateway: "", EnvLicenseServer: "b"}, "b", "deprecated"},
	} {
		c := mustFromEnv(t, tc.env)
		if c.SecureGateway != tc.want {
			t.Errorf("%v: SecureGateway = %q, want %q", tc.env, c.SecureGateway, tc.want)
		}
		checkOneWarning(t, tc.env, c.Warnings, tc.warning)
	}
}

func TestOfflineLatch(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		want    bool
		errVar  string // the variable the error names; "" = no error
		warning string
	}{
		{nil, false, "", ""},
		{map[string]string{EnvOffline: "true"}, true, "", ""},
		{map[string]string{EnvOffline: ""}, false, EnvOffline, ""},
		{map[string]string{EnvOffline: "1"}, false, EnvOffline, ""},
		// An inherited decision wins over OFFLINE_MODE, valid or not.
		{map[string]string{EnvOfflineLatch: "True", EnvOffline: "false"}, true, "", "is ignored"},
		{map[string]string{EnvOfflineLatch: "false", EnvOffline: "TRUE"}, false, "", "is ignored"},
		{map[string]string{EnvOfflineLatch: "TRUE"}, true, "", ""},
		{map[string]string{EnvOfflineLatch: "True", EnvOffline: "garbage"}, true, "", ""},
		{map[string]string{EnvOfflineLatch: "1"}, false, EnvOfflineLatch, ""},
		// A parent's parse failure is raised again, whatever else is set.
		{map[string]string{EnvOfflineStartupErr: "bad OFFLINE_MODE", EnvOffline: "true"}, false, EnvOfflineStartupErr, ""},
		{map[string]string{EnvOffline: "true", EnvOfflineWarmUp: "true"}, true, "", "mutually exclusive"},
	} {
		c, err := FromEnv(envOf(tc.env))
		if tc.errVar != "" {
			var ie *InvalidEnvError
			if !errors.As(err, &ie) || ie.Name != tc.errVar {
				t.Errorf("%v: error %v, want one naming %s", tc.env, err, tc.errVar)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.env, err)
			continue
		}
		if c.Offline != tc.want {
			t.Errorf("%v: Offline = %v, want %v", tc.env, c.Offline, tc.want)
		}
		checkOneWarning(t, tc.env, c.Warnings, tc.warning)
	}
}

func TestLookAlikeVariablesWarn(t *testing.T) {
	c := mustFromEnv(t, map[string]string{"API_KEY": "x", "ONNX_EXECUTION_PROVIDERS": "CPUExecutionProvider"})
	if len(c.Warnings) != 2 || !strings.Contains(c.Warnings[0], EnvONNXExecutionProviders) || !strings.Contains(c.Warnings[1], EnvAPIKey) {
		t.Errorf("Warnings = %q", c.Warnings)
	}
	if c.APIKey != "" {
		t.Error("API_KEY was read as the key")
	}
	c = mustFromEnv(t, map[string]string{"API_KEY": "x", EnvAPIKey: "y"})
	if len(c.Warnings) != 0 {
		t.Errorf("Warnings = %q with the right variable set too", c.Warnings)
	}
}

// TestEveryVariableReadIsDocumented ties FromEnv to Variables(): whatever FromEnv
// looks up (except the look-alikes it warns about) is documented, and the reverse.
func TestEveryVariableReadIsDocumented(t *testing.T) {
	var read []string
	_, err := FromEnv(func(k string) (string, bool) { read = append(read, k); return "", false })
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, v := range Variables() {
		documented = append(documented, v.Name)
	}
	for _, k := range read {
		if !slices.Contains(documented, k) && k != "API_KEY" && k != "ONNX_EXECUTION_PROVIDERS" {
			t.Errorf("FromEnv reads %s, which Variables() does not document", k)
		}
	}
	for _, k := range documented {
		if !slices.Contains(read, k) {
			t.Errorf("Variables() documents %s, which FromEnv never reads", k)
		}
	}
}
