package config

// Variable documents one environment variable. docs/config.md holds a table
// generated from Variables() and a test keeps the two equal, so the documented
// defaults cannot drift from the code (lessons U4).
type Variable struct {
	Name    string
	Type    string // bool, int, int s, int min, float s, int list, duration, path, string, secret
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
		{EnvGuardOfflineGrace, "duration", "0", "modelcache only: tenant guard offline grace period (e.g. 30m); 0 denies loads the provider cannot verify"},
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
		{EnvBlobCacheEnabled, "bool", "false", "use the shared S3-compatible blob tier (docs/fleet.md)"},
		{EnvBlobCacheBucket, "string", "", "bucket of the tier; required when enabled"},
		{EnvBlobCachePrefix, "string", "model-blobs", "object key prefix, slashes stripped; set but empty: keys are the bare MD5"},
		{EnvBlobCacheEndpointURL, "string", "", "http(s)://host[:port] of an S3-compatible service; unset: AWS S3"},
		{EnvBlobCacheRegion, "string", "", "region to sign for; unset: AWS_REGION, else asked of the service"},
		{EnvBlobCacheAddressingStyle, "string", "auto", "auto, path or virtual (bucket in the path or in the host name)"},
		{EnvBlobCacheAccessKeyID, "string", "", "static key id; used only with the secret, else the AWS credential chain"},
		{EnvBlobCacheSecretAccessKey, "secret", "", "static secret key; never printed"},
		{EnvBlobCacheConnectTimeout, "float s", "1", "tier connect timeout; > 0"},
		{EnvBlobCacheReadTimeout, "float s", "2", "tier stall budget: no progress for this long fails a request (not a transfer deadline); > 0"},
		{EnvBlobCacheMaxObjectBytes, "int", "21474836480", "largest object trusted from the tier (20 GiB); >= 1"},
		{EnvBlobCacheFailureThreshold, "int", "3", "failures (leaky count) that open the tier's circuit breaker; >= 1"},
		{EnvBlobCacheCooldown, "float s", "60", "how long an open breaker skips the tier before one probe; > 0"},
		{EnvBlobCacheUploadWorkers, "int", "2", "modelcache only: concurrent background uploads to the tier; >= 1"},
		{EnvBlobCacheUploadQueue, "int", "8", "modelcache only: uploads waiting for a worker; a full queue drops offers; >= 0"},
		{EnvBlobCacheExitWait, "float s", "30", "modelcache only: how long closing waits for queued uploads; >= 0"},
		{EnvOfflineLatch, "bool", "", "private: offline decision inherited from the parent process"},
		{EnvOfflineStartupErr, "string", "", "private: a parent's OFFLINE_MODE parse error, raised again"},
	}
}
