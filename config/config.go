// Package config reads modelcache's settings once, at start, with the variable names,
// defaults and parsing strictness of inference-models 0.36.0 (spec: on-disk-contract
// §1, registry-protocol §1 and §6, offline §1). The result is a plain Config value that
// callers pass down; nothing in this package keeps state between calls.
//
// Library users who do not want the environment start from Default() (or a struct
// literal) and set the fields they need.
package config

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultHome is the cache root when neither INFERENCE_HOME nor MODEL_CACHE_DIR is
// set. It is wiped at reboot, so cold-cache messages should suggest INFERENCE_HOME.
const DefaultHome = "/tmp/cache"

// Variable names, for messages that tell users what to set.
const (
	EnvInferenceHome          = "INFERENCE_HOME"
	EnvModelCacheDir          = "MODEL_CACHE_DIR"
	EnvAutoResolutionTTL      = "AUTO_LOADER_CACHE_EXPIRATION_MINUTES"
	EnvLockTimeout            = "INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT"
	EnvAPITimeout             = "API_CALLS_TIMEOUT"
	EnvAPIMaxTries            = "API_CALLS_MAX_TRIES"
	EnvRetryCodes             = "IDEMPOTENT_API_REQUEST_CODES_TO_RETRY"
	EnvChunkConnectTimeout    = "CHUNK_DOWNLOAD_CONNECT_TIMEOUT"
	EnvChunkReadTimeout       = "CHUNK_DOWNLOAD_READ_TIMEOUT"
	EnvChunkMaxAttempts       = "CHUNK_DOWNLOAD_MAX_ATTEMPTS"
	EnvOffline                = "OFFLINE_MODE"
	EnvOfflineWarmUp          = "OFFLINE_MODE_WARM_UP"
	EnvDisableProgressBars    = "DISABLE_INTERACTIVE_PROGRESS_BARS"
	EnvDirectIO               = "MODELCACHE_DIRECT_IO"
	EnvGuardOfflineGrace      = "MODELCACHE_GUARD_OFFLINE_GRACE"
	EnvAPIKey                 = "ROBOFLOW_API_KEY"
	EnvAPIHost                = "ROBOFLOW_API_HOST"
	EnvRegion                 = "ROBOFLOW_REGION"
	EnvEnvironment            = "ROBOFLOW_ENVIRONMENT"
	EnvSecureGateway          = "SECURE_GATEWAY"
	EnvLicenseServer          = "LICENSE_SERVER" // deprecated alias of SECURE_GATEWAY
	EnvDefaultDevice          = "DEFAULT_DEVICE"
	EnvONNXExecutionProviders = "ONNXRUNTIME_EXECUTION_PROVIDERS"
	EnvRunningOnJetson        = "RUNNING_ON_JETSON"
	EnvJetsonModule           = "JETSON_MODULE"
	EnvL4TVersion             = "L4T_VERSION"

	// The offline latch shared with the reference across a process tree (offline.md §1.1).
	EnvOfflineLatch        = "_ROBOFLOW_INFERENCE_OFFLINE_MODE_AT_PROCESS_START"
	EnvOfflineStartupErr   = "_ROBOFLOW_INFERENCE_OFFLINE_MODE_STARTUP_ERROR"
	envHFHubOffline        = "HF_HUB_OFFLINE"
	envTransformersOffline = "TRANSFORMERS_OFFLINE"
	envYOLOOffline         = "YOLO_OFFLINE"
)

// Config is every setting modelcache reads from the environment, parsed and
// defaulted. Build it once (Load, FromEnv or Default) and pass it down.
type Config struct {
	// Home is the cache root H, absolute. FromEnv makes it absolute lexically, like
	// Python's os.path.abspath (symlinks are kept as written, never resolved).
	Home string

	// AutoResolutionTTL is how long an auto-resolution entry stays valid.
	// AutoResolutionTTLMinutes is the raw value it was computed from: the reference
	// compares minutes, and a value <= 0 expires every entry.
	AutoResolutionTTL        time.Duration
	AutoResolutionTTLMinutes int

	// LockTimeout bounds every file-lock wait. As given: 0 or negative values are not
	// rejected here (the reference passes them to its lock library).
	LockTimeout time.Duration

	APITimeout  time.Duration // connect and per-read timeout of API calls, HEAD and streams
	APIMaxTries int           // tries per API page or stream, counting the first
	RetryCodes  []int         // HTTP statuses retried as transient (500 is not one by default)

	ChunkConnectTimeout time.Duration // connect timeout of ranged chunk requests
	// ChunkReadTimeout is the declared chunk read timeout (the reference never uses it).
	// ChunkReadTimeoutSet tells whether the variable was set: only then does it
	// replace the stall detector's own default (download.md §2.4).
	ChunkReadTimeout    time.Duration
	ChunkReadTimeoutSet bool
	ChunkMaxAttempts    int // passes per chunk

	// Offline is the process tree's OFFLINE_MODE decision (offline.md §1.1): an
	// inherited latch wins over OFFLINE_MODE itself.
	Offline bool
	// OfflineWarmUp records every successful online load for later offline use.
	// Both it and Offline true is a load-time error, not a start-up one.
	OfflineWarmUp bool

	DisableProgressBars bool
	// DirectIO: blobs of 64 MiB and more are written with O_DIRECT, bypassing
	// the page cache (MODELCACHE_DIRECT_IO, default true; ours, not the
	// reference's). False suits a pull that is loaded at once on a machine
	// where memory is plentiful and backed.
	DirectIO bool
	// GuardOfflineGrace is the tenant guard's offline grace period
	// (MODELCACHE_GUARD_OFFLINE_GRACE, a Go duration such as 30m; 0, the
	// default, denies what the provider cannot verify). See docs/multi-tenant.md.
	GuardOfflineGrace time.Duration

	// DownloadLimits bound retries, downloads of unknown size and the
	// free space a pull leaves (MODELCACHE_DOWNLOAD_*, MODELCACHE_DISK_*).
	DownloadLimits

	APIKey Secret // ROBOFLOW_API_KEY as given; may be empty (anonymous requests)
	// APIHost is the weights-API base URL: ROBOFLOW_API_HOST verbatim, else chosen by
	// ROBOFLOW_REGION and ROBOFLOW_ENVIRONMENT (registry-protocol §1).
	APIHost string
	// SecureGateway is SECURE_GATEWAY (else the deprecated LICENSE_SERVER) as given;
	// empty means no gateway. The URL rewrite belongs to the registry client.
	SecureGateway string

	// Runtime hints, raw; negotiation parses and validates them.
	DefaultDevice          string
	ONNXExecutionProviders string
	RunningOnJetson        string
	JetsonModule           string
	L4TVersion             string

	// BlobCache is the shared S3-compatible blob tier of a fleet (docs/fleet.md).
	BlobCache BlobCache

	// Warnings are problems worth telling the user that do not stop the process,
	// e.g. an unknown ROBOFLOW_REGION. The CLI logs them at start.
	Warnings []string
}

const (
	hostUSProd    = "https://api.roboflow.com"
	hostUSStaging = "https://api.roboflow.one"
	hostEUProd    = "https://api.roboflow.eu"
	hostEUStaging = "https://api.roboflow-eu.one"
)

// Default returns the settings of an empty environment.
func Default() Config {
	return Config{
		Home:                     DefaultHome,
		AutoResolutionTTL:        1440 * time.Minute,
		AutoResolutionTTLMinutes: 1440,
		LockTimeout:              20 * time.Second,
		APITimeout:               5 * time.Second,
		APIMaxTries:              3,
		RetryCodes:               []int{408, 429, 502, 503, 504},
		ChunkConnectTimeout:      30 * time.Second,
		ChunkReadTimeout:         60 * time.Second,
		ChunkMaxAttempts:         60,
		APIHost:                  hostUSProd,
		DirectIO:                 true,
		BlobCache:                defaultBlobCache(),
		DownloadLimits:           DefaultDownloadLimits(),
	}
}

// FromEnv builds a Config from env (os.LookupEnv in production, a map in tests).
// It neither reads .env nor changes the environment: Load does both. Every bad
// variable is reported, joined; each is an *InvalidEnvError (use errors.As).
func FromEnv(env func(string) (string, bool)) (Config, error) {
	r := &reader{env: env}
	c := Default()
	c.Home = r.home()
	c.AutoResolutionTTLMinutes = r.int(EnvAutoResolutionTTL, c.AutoResolutionTTLMinutes)
	c.AutoResolutionTTL = scaleDuration(c.AutoResolutionTTLMinutes, time.Minute)
	c.LockTimeout = r.intSeconds(EnvLockTimeout, c.LockTimeout)
	c.APITimeout = r.intSeconds(EnvAPITimeout, c.APITimeout)
	c.APIMaxTries = r.int(EnvAPIMaxTries, c.APIMaxTries)
	c.RetryCodes = r.intList(EnvRetryCodes, c.RetryCodes)
	c.ChunkConnectTimeout = r.floatSeconds(EnvChunkConnectTimeout, c.ChunkConnectTimeout)
	_, c.ChunkReadTimeoutSet = env(EnvChunkReadTimeout)
	c.ChunkReadTimeout = r.floatSeconds(EnvChunkReadTimeout, c.ChunkReadTimeout)
	c.ChunkMaxAttempts = r.int(EnvChunkMaxAttempts, c.ChunkMaxAttempts)

	offline, warning, err := decideOffline(env)
	r.fail(err)
	r.warn(warning)
	c.Offline = offline
	c.OfflineWarmUp = r.bool(EnvOfflineWarmUp, false)
	if c.Offline && c.OfflineWarmUp {
		r.warn(EnvOffline + " and " + EnvOfflineWarmUp + " are both true; they are mutually exclusive and every load will fail")
	}
	c.DisableProgressBars = r.bool(EnvDisableProgressBars, false)
	c.DirectIO = r.bool(EnvDirectIO, true)
	c.GuardOfflineGrace = r.duration(EnvGuardOfflineGrace, 0)
	c.DownloadLimits = r.downloadLimits()

	c.APIKey = r.apiKey()
	c.APIHost = r.apiHost()
	c.SecureGateway = r.secureGateway()

	c.DefaultDevice, _ = env(EnvDefaultDevice)
	c.ONNXExecutionProviders, _ = env(EnvONNXExecutionProviders)
	c.RunningOnJetson, _ = env(EnvRunningOnJetson)
	c.JetsonModule, _ = env(EnvJetsonModule)
	c.L4TVersion, _ = env(EnvL4TVersion)
	c.BlobCache = r.blobCache()
	r.lookAlikes()

	if len(r.errs) > 0 {
		return Config{}, errors.Join(r.errs...)
	}
	c.Warnings = r.warnings
	return c, nil
}

// reader collects every error and warning so one start-up reports them all.
type reader struct {
	env      func(string) (string, bool)
	errs     []error
	warnings []string
}

func (r *reader) fail(err error) {
	if err != nil {
		r.errs = append(r.errs, err)
	}
}

func (r *reader) warn(w string) {
	if w != "" {
		r.warnings = append(r.warnings, w)
	}
}

func (r *reader) bool(name string, def bool) bool {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	b, ok := parseBool(v)
	if !ok {
		r.fail(invalid(name, v, acceptBool))
		return def
	}
	return b
}

func (r *reader) int(name string, def int) int {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	n, ok := parseInt(v)
	if !ok {
		r.fail(invalid(name, v, acceptInt))
		return def
	}
	return n
}

func (r *reader) intSeconds(name string, def time.Duration) time.Duration {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	n, ok := parseInt(v)
	if !ok {
		r.fail(invalid(name, v, acceptInt+" (seconds)"))
		return def
	}
	return scaleDuration(n, time.Second)
}

func (r *reader) floatSeconds(name string, def time.Duration) time.Duration {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	f, ok := parseFloat(v)
	if !ok {
		r.fail(invalid(name, v, acceptFloat+" (seconds)"))
		return def
	}
	d, ok := floatSeconds(f)
	if !ok {
		r.fail(invalid(name, v, "a number of seconds; nan is no duration"))
		return def
	}
	return d
}

// duration reads a Go duration (30m, 1h30m, 0) that must not be negative.
func (r *reader) duration(name string, def time.Duration) time.Duration {
	v, ok := r.env(name)
	if !ok || strings.TrimSpace(v) == "" {
		return def
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		r.fail(invalid(name, v, "a duration such as 30m, 12h or 0 (Go syntax: ns, us, ms, s, m, h), not negative"))
		return def
	}
	return d
}

func (r *reader) intList(name string, def []int) []int {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	list, ok := parseIntList(v)
	if !ok {
		r.fail(invalid(name, v, acceptIntList))
		return def
	}
	return list
}

// nonEmpty treats set-but-empty as unset, as the reference does for paths.
func (r *reader) nonEmpty(name string) string {
	v, _ := r.env(name)
	return v
}

func (r *reader) home() string {
	h := DefaultHome
	if v := r.nonEmpty(EnvInferenceHome); v != "" {
		h = v
	} else if v := r.nonEmpty(EnvModelCacheDir); v != "" {
		h = v
	}
	if strings.HasPrefix(h, "~") {
		r.warn(fmt.Sprintf("cache root %q starts with ~, which is not expanded (the reference does not expand it either); use an absolute path", h))
	}
	abs, err := AbsPath(h)
	if err != nil {
		r.fail(fmt.Errorf("make cache root %q absolute: %w", h, err))
	}
	return abs
}

func (r *reader) apiKey() Secret {
	v, _ := r.env(EnvAPIKey)
	// A control character (typically the newline of a key file) cannot go into an
	// Authorization header; say so now instead of failing at the first request.
	if strings.IndexFunc(v, func(c rune) bool { return (c < 0x20 && c != '\t') || c == 0x7f }) >= 0 {
		r.fail(invalid(EnvAPIKey, v, "an API key without control characters such as a trailing newline (it is sent in an HTTP header)"))
		return ""
	}
	return Secret(v)
}

// apiHost implements registry-protocol §1.
func (r *reader) apiHost() string {
	if v, ok := r.env(EnvAPIHost); ok {
		if v != "" {
			return v
		}
		r.warn(EnvAPIHost + " is set but empty; using the host chosen by " + EnvRegion + " and " + EnvEnvironment)
	}
	staging := false
	if v, ok := r.env(EnvEnvironment); ok && v != "prod" {
		staging = true // any value but exactly "prod" means staging, as in the reference
		if pyStrip(strings.ToLower(v)) == "prod" || v == "" {
			r.warn(fmt.Sprintf("%s=%q selects the staging API: only the exact value \"prod\" means production", EnvEnvironment, v))
		}
	}
	region := "us"
	if v, ok := r.env(EnvRegion); ok {
		region = strings.ToLower(pyStrip(v))
	}
	switch {
	case region == "eu" && staging:
		return hostEUStaging
	case region == "eu":
		return hostEUProd
	case region != "us":
		r.warn(fmt.Sprintf("%s=%q is not a known region (us, eu); using us", EnvRegion, region))
	}
	if staging {
		return hostUSStaging
	}
	return hostUSProd
}

func (r *reader) secureGateway() string {
	if v := r.nonEmpty(EnvSecureGateway); v != "" {
		return v
	}
	if v := r.nonEmpty(EnvLicenseServer); v != "" {
		r.warn(EnvLicenseServer + " is deprecated; set " + EnvSecureGateway + " instead")
		return v
	}
	return ""
}

// lookAlikes warns about variables users set believing they are read (lessons U5):
// the reference's own docs name them, yet nothing reads them.
func (r *reader) lookAlikes() {
	for _, p := range [][2]string{
		{"ONNX_EXECUTION_PROVIDERS", EnvONNXExecutionProviders},
		{"API_KEY", EnvAPIKey},
	} {
		_, wrong := r.env(p[0])
		_, right := r.env(p[1])
		if wrong && !right {
			r.warn(fmt.Sprintf("%s is set but not read; did you mean %s?", p[0], p[1]))
		}
	}
}

// decideOffline is the OFFLINE_MODE latch of offline.md §1.1, first match wins:
// an error inherited from a parent, the inherited decision, OFFLINE_MODE, false.
// (The .env step is covered because Load has applied .env to the environment.)
func decideOffline(env func(string) (string, bool)) (offline bool, warning string, err error) {
	if msg, ok := env(EnvOfflineStartupErr); ok && msg != "" {
		return false, "", invalid(EnvOfflineStartupErr, msg,
			"unset: a parent process could not read "+EnvOffline+"; fix it and restart the whole process tree")
	}
	own, ownSet := env(EnvOffline)
	if v, ok := env(EnvOfflineLatch); ok {
		latched, ok := parseBool(v)
		if !ok {
			return false, "", invalid(EnvOfflineLatch, v, acceptBool)
		}
		if b, valid := parseBool(own); ownSet && valid && b != latched {
			warning = fmt.Sprintf("%s=%s is ignored: this process tree decided offline=%t at its start (%s)",
				EnvOffline, own, latched, EnvOfflineLatch)
		}
		return latched, warning, nil
	}
	if !ownSet {
		return false, "", nil
	}
	b, ok := parseBool(own)
	if !ok {
		return false, "", invalid(EnvOffline, own, acceptBool)
	}
	return b, "", nil
}
