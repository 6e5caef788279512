package config

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
)

// The shared S3-compatible blob cache of a fleet (the reference's
// inference_models.configuration, MODEL_BLOB_CACHE_*; docs/fleet.md).
const (
	EnvBlobCacheEnabled          = "INFERENCE_MODELS_MODEL_BLOB_CACHE_ENABLED"
	EnvBlobCacheBucket           = "INFERENCE_MODELS_MODEL_BLOB_CACHE_BUCKET"
	EnvBlobCachePrefix           = "INFERENCE_MODELS_MODEL_BLOB_CACHE_PREFIX"
	EnvBlobCacheEndpointURL      = "INFERENCE_MODELS_MODEL_BLOB_CACHE_ENDPOINT_URL"
	EnvBlobCacheRegion           = "INFERENCE_MODELS_MODEL_BLOB_CACHE_REGION"
	EnvBlobCacheAddressingStyle  = "INFERENCE_MODELS_MODEL_BLOB_CACHE_ADDRESSING_STYLE"
	EnvBlobCacheAccessKeyID      = "INFERENCE_MODELS_MODEL_BLOB_CACHE_ACCESS_KEY_ID"
	EnvBlobCacheSecretAccessKey  = "INFERENCE_MODELS_MODEL_BLOB_CACHE_SECRET_ACCESS_KEY"
	EnvBlobCacheConnectTimeout   = "INFERENCE_MODELS_MODEL_BLOB_CACHE_CONNECT_TIMEOUT_SECONDS"
	EnvBlobCacheReadTimeout      = "INFERENCE_MODELS_MODEL_BLOB_CACHE_READ_TIMEOUT_SECONDS"
	EnvBlobCacheMaxObjectBytes   = "INFERENCE_MODELS_MODEL_BLOB_CACHE_MAX_OBJECT_BYTES"
	EnvBlobCacheFailureThreshold = "INFERENCE_MODELS_MODEL_BLOB_CACHE_FAILURE_THRESHOLD"
	EnvBlobCacheCooldown         = "INFERENCE_MODELS_MODEL_BLOB_CACHE_COOLDOWN_SECONDS"

	// Ours, not the reference's: the bounds of the background uploads.
	EnvBlobCacheUploadWorkers = "MODELCACHE_BLOB_CACHE_UPLOAD_WORKERS"
	EnvBlobCacheUploadQueue   = "MODELCACHE_BLOB_CACHE_UPLOAD_QUEUE"
	EnvBlobCacheExitWait      = "MODELCACHE_BLOB_CACHE_EXIT_WAIT_SECONDS"
)

// Addressing styles of the S3 client, as the reference names them.
const (
	AddressingAuto    = "auto"
	AddressingPath    = "path"
	AddressingVirtual = "virtual"
)

// BlobCache is the shared object-store tier's configuration. Values that do
// not parse stop the start (an *InvalidEnvError), as in the reference; values
// that parse but cannot work (no bucket, a zero timeout, half a key pair, an
// unknown addressing style) leave the tier disabled with one warning and
// never fail a pull, also as in the reference: Problem says why.
type BlobCache struct {
	Enabled bool
	Bucket  string
	// Prefix as given (default model-blobs); the object key is
	// <Prefix stripped of slashes>/<md5>, or the md5 alone when that is empty.
	Prefix string
	// EndpointURL of an S3-compatible service; empty means AWS S3.
	EndpointURL     string
	Region          string
	AddressingStyle string // auto, path or virtual
	// Static credentials, used only when both are set; otherwise the
	// standard AWS credential chain (environment, shared files, web
	// identity, container and instance roles).
	AccessKeyID     string
	SecretAccessKey Secret
	ConnectTimeout  time.Duration
	// ReadTimeout is a stall budget: a request that makes no progress for
	// this long fails. It never bounds a whole transfer.
	ReadTimeout      time.Duration
	MaxObjectBytes   int64
	FailureThreshold int
	Cooldown         time.Duration

	// UploadWorkers and UploadQueue bound the background uploads (a full
	// queue drops the offer); ExitWait bounds how long closing the tier
	// waits for queued uploads.
	UploadWorkers int
	UploadQueue   int
	ExitWait      time.Duration

	// Problem is why an enabled tier cannot be used (nil when it can). It is
	// an *InvalidEnvError naming the variable.
	Problem error
}

// StaticCredentials reports whether both halves of the static key pair are set.
func (b BlobCache) StaticCredentials() bool {
	return b.AccessKeyID != "" && b.SecretAccessKey != ""
}

// KeyPrefix is Prefix with leading and trailing slashes removed, as the
// reference strips it.
func (b BlobCache) KeyPrefix() string { return strings.Trim(b.Prefix, "/") }

// Usable reports whether the tier is enabled and correctly configured.
func (b BlobCache) Usable() bool { return b.Enabled && b.Problem == nil }

func defaultBlobCache() BlobCache {
	return BlobCache{
		Prefix:           "model-blobs",
		AddressingStyle:  AddressingAuto,
		ConnectTimeout:   time.Second,
		ReadTimeout:      2 * time.Second,
		MaxObjectBytes:   20 << 30,
		FailureThreshold: 3,
		Cooldown:         60 * time.Second,
		UploadWorkers:    2,
		UploadQueue:      8,
		ExitWait:         30 * time.Second,
	}
}

// blobCache reads the tier's variables. Like the reference, every number is
// parsed whether or not the tier is enabled (a typo stops the start either
// way), while the checks of what the values mean run only when it is.
func (r *reader) blobCache() BlobCache {
	b := defaultBlobCache()
	b.Enabled = r.bool(EnvBlobCacheEnabled, false)
	b.Bucket, _ = r.env(EnvBlobCacheBucket)
	if v, ok := r.env(EnvBlobCachePrefix); ok {
		b.Prefix = v // set but empty: no prefix, as os.getenv gives ""
	}
	b.EndpointURL, _ = r.env(EnvBlobCacheEndpointURL)
	b.Region, _ = r.env(EnvBlobCacheRegion)
	if v, ok := r.env(EnvBlobCacheAddressingStyle); ok {
		b.AddressingStyle = v
	}
	b.AccessKeyID, _ = r.env(EnvBlobCacheAccessKeyID)
	secret, _ := r.env(EnvBlobCacheSecretAccessKey)
	b.SecretAccessKey = Secret(secret)
	b.ConnectTimeout = r.floatSeconds(EnvBlobCacheConnectTimeout, b.ConnectTimeout)
	b.ReadTimeout = r.floatSeconds(EnvBlobCacheReadTimeout, b.ReadTimeout)
	b.MaxObjectBytes = int64(r.int(EnvBlobCacheMaxObjectBytes, int(b.MaxObjectBytes)))
	b.FailureThreshold = r.int(EnvBlobCacheFailureThreshold, b.FailureThreshold)
	b.Cooldown = r.floatSeconds(EnvBlobCacheCooldown, b.Cooldown)

	// Our own variables follow our own rule: out of range stops the start.
	b.UploadWorkers = r.intAtLeast(EnvBlobCacheUploadWorkers, b.UploadWorkers, 1)
	b.UploadQueue = r.intAtLeast(EnvBlobCacheUploadQueue, b.UploadQueue, 0)
	b.ExitWait = r.floatSeconds(EnvBlobCacheExitWait, b.ExitWait)
	if b.ExitWait < 0 {
		v, _ := r.env(EnvBlobCacheExitWait)
		r.fail(invalid(EnvBlobCacheExitWait, v, "a number of seconds >= 0"))
	}

	if b.Enabled {
		b.Problem = b.check()
	}
	return b
}

func (r *reader) intAtLeast(name string, def, least int) int {
	n := r.int(name, def)
	if n < least {
		v, _ := r.env(name)
		r.fail(invalid(name, v, fmt.Sprintf("an integer >= %d", least)))
		return def
	}
	return n
}

// check is the reference's validation of an enabled cache (ModelBlobCacheConfig),
// plus what the Go client cannot take (an endpoint it cannot address). It
// returns the first problem: the tier is off either way.
func (b BlobCache) check() error {
	if b.Bucket == "" {
		return invalid(EnvBlobCacheBucket, b.Bucket, "a bucket name; required when "+EnvBlobCacheEnabled+"=true")
	}
	switch b.AddressingStyle {
	case AddressingAuto, AddressingPath, AddressingVirtual:
	default:
		return invalid(EnvBlobCacheAddressingStyle, b.AddressingStyle, "one of auto, path, virtual (exact spelling)")
	}
	if (b.AccessKeyID == "") != (b.SecretAccessKey == "") {
		set, unset := EnvBlobCacheAccessKeyID, EnvBlobCacheSecretAccessKey
		if b.AccessKeyID == "" {
			set, unset = unset, set
		}
		return invalid(set, redacted, "set together with "+unset+" (or neither, for the standard AWS credential chain)")
	}
	if b.FailureThreshold < 1 {
		return invalid(EnvBlobCacheFailureThreshold, fmt.Sprint(b.FailureThreshold), "an integer >= 1")
	}
	if b.MaxObjectBytes < 1 {
		return invalid(EnvBlobCacheMaxObjectBytes, fmt.Sprint(b.MaxObjectBytes), "an integer >= 1 (bytes)")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{EnvBlobCacheConnectTimeout, b.ConnectTimeout}, {EnvBlobCacheReadTimeout, b.ReadTimeout}, {EnvBlobCacheCooldown, b.Cooldown}} {
		if d.v <= 0 {
			return invalid(d.name, secondsText(d.v), "a number of seconds greater than zero")
		}
	}
	if b.EndpointURL != "" {
		if err := checkEndpoint(b.EndpointURL); err != nil {
			return err
		}
	}
	return nil
}

// checkEndpoint accepts http(s)://host[:port][/], the form every S3 client
// takes. Credentials in the URL are refused: they would reach logs.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		return invalid(EnvBlobCacheEndpointURL, raw, "an http:// or https:// URL with a host, e.g. https://s3.example.com:9000")
	case u.User != nil:
		return invalid(EnvBlobCacheEndpointURL, u.Scheme+"://<redacted>@"+u.Host, "a URL without credentials; set "+EnvBlobCacheAccessKeyID+" and "+EnvBlobCacheSecretAccessKey)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return invalid(EnvBlobCacheEndpointURL, raw, "scheme://host[:port] without a path or query (the bucket goes in "+EnvBlobCacheBucket+")")
	}
	return nil
}

func secondsText(d time.Duration) string {
	if d == math.MinInt64 {
		return "-inf"
	}
	return fmt.Sprint(d.Seconds())
}
