package config

// Variable documents one environment variable. docs/config.md holds a table
// generated from Variables() and a test keeps the two equal, so the documented
// defaults cannot drift from the code (lessons U4).
type Variable struct {
	Name    string
	Type    string // bool, int, int s, int min, float s, int list, path, string, secret
	Default string // as a user would write it; "" when there is none
	Meaning string
}

// Variables lists every variable Config reads, in documentation order.
func Variables() []Variable {
	return []Variable{
		{EnvInferenceHome, "path", DefaultHome, "cache root H; empty counts as unset"},
		{EnvModelCacheDir, "path", DefaultHome, "cache root when INFERENCE_HOME is unset or empty; empty counts as unset"},
		{EnvAutoResolutionTTL, "int min", "1440", "auto-resolution entry lifetime; <= 0 expires every entry"},
		{EnvLockTimeout, "int s", "20", "bound of every file-lock wait"},
		{EnvAPITimeout, "int s", "5", "API, HEAD and stream connect / read timeout"},
		{EnvAPIMaxTries, "int", "3", "tries per API page or stream; retryable-status cap per chunk"},
		{EnvRetryCodes, "int list", "408,429,502,503,504", "HTTP statuses retried (500 is not)"},
		{EnvChunkConnectTimeout, "float s", "30.0", "ranged-chunk connect timeout"},
		{EnvChunkReadTimeout, "float s", "60.0", "unused by the reference; when set, our stall timeout"},
		{EnvChunkMaxAttempts, "int", "60", "passes per chunk"},
		{EnvOffline, "bool", "false", "serve only the warmed cache, no network"},
		{EnvOfflineWarmUp, "bool", "false", "record online loads for offline use; exclusive with OFFLINE_MODE"},
		{EnvDisableProgressBars, "bool", "false", "no progress bars"},
		{EnvDirectIO, "bool", "true", "modelcache only: write blobs >= 64 MiB with O_DIRECT (no page cache); false for page-cache writes"},
		{EnvDownloadRetryDeadline, "float s", "600", "modelcache only: how long one file may retry transient failures without receiving a byte; <= 0: only the attempt counts bound it"},
		{EnvDownloadMaxUnknownSize, "size", "32GiB", "modelcache only: cap of a download whose size nobody announced; past it the file fails and nothing is kept"},
		{EnvDiskReservePercent, "float %", "1", "modelcache only: free space a pull leaves beyond its need, in % of that need (+ 1 MiB); 0 to 100"},
		{EnvAPIKey, "secret", "", "Roboflow API key; never printed"},
		{EnvAPIHost, "string", "", "weights-API base URL, verbatim; overrides region and environment"},
		{EnvRegion, "string", "us", "us or eu (trimmed, any case); unknown -> warning, us"},
		{EnvEnvironment, "string", "prod", "exactly prod; any other value selects staging"},
		{EnvSecureGateway, "string", "", "gateway base URL; API and file URLs are proxied through it"},
		{EnvLicenseServer, "string", "", "deprecated alias of SECURE_GATEWAY (used when that is unset or empty)"},
		{EnvDefaultDevice, "string", "", "device for negotiation, e.g. cuda:0 (raw here)"},
		{EnvONNXExecutionProviders, "string", "", "comma-separated ONNX Runtime providers (raw here)"},
		{EnvRunningOnJetson, "string", "", "Jetson override (raw here; negotiation parses it as bool)"},
		{EnvJetsonModule, "string", "", "Jetson module name (raw here)"},
		{EnvL4TVersion, "string", "", "L4T version, e.g. 36.4.3 (raw here)"},
		{EnvOfflineLatch, "bool", "", "private: offline decision inherited from the parent process"},
		{EnvOfflineStartupErr, "string", "", "private: a parent's OFFLINE_MODE parse error, raised again"},
	}
}
