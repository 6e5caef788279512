package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func enabledEnv(kv ...string) map[string]string {
	m := map[string]string{EnvBlobCacheEnabled: "true", EnvBlobCacheBucket: "models"}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func TestBlobCacheReadsEachVariable(t *testing.T) {
	c := mustFromEnv(t, map[string]string{
		EnvBlobCacheEnabled:          "TRUE",
		EnvBlobCacheBucket:           "fleet-models",
		EnvBlobCachePrefix:           "/team/blobs/",
		EnvBlobCacheEndpointURL:      "http://127.0.0.1:7070",
		EnvBlobCacheRegion:           "eu-2",
		EnvBlobCacheAddressingStyle:  "path",
		EnvBlobCacheAccessKeyID:      "AKID",
		EnvBlobCacheSecretAccessKey:  "s3cr3t",
		EnvBlobCacheConnectTimeout:   "0.5",
		EnvBlobCacheReadTimeout:      "7",
		EnvBlobCacheMaxObjectBytes:   "1_000",
		EnvBlobCacheFailureThreshold: "5",
		EnvBlobCacheCooldown:         "1e1",
		EnvBlobCacheUploadWorkers:    "4",
		EnvBlobCacheUploadQueue:      "0",
		EnvBlobCacheExitWait:         "0",
	})
	b := c.BlobCache
	want := BlobCache{
		Enabled: true, Bucket: "fleet-models", Prefix: "/team/blobs/", EndpointURL: "http://127.0.0.1:7070",
		Region: "eu-2", AddressingStyle: "path", AccessKeyID: "AKID", SecretAccessKey: "s3cr3t",
		ConnectTimeout: 500 * time.Millisecond, ReadTimeout: 7 * time.Second, MaxObjectBytes: 1000,
		FailureThreshold: 5, Cooldown: 10 * time.Second, UploadWorkers: 4, UploadQueue: 0, ExitWait: 0,
	}
	if fmt.Sprintf("%#v", b) != fmt.Sprintf("%#v", want) || b.SecretAccessKey.Reveal() != "s3cr3t" {
		t.Fatalf("got  %#v\nwant %#v", b, want)
	}
	if !b.Usable() || !b.StaticCredentials() || b.KeyPrefix() != "team/blobs" {
		t.Fatalf("Usable %v, StaticCredentials %v, KeyPrefix %q", b.Usable(), b.StaticCredentials(), b.KeyPrefix())
	}
}

func TestBlobCacheEmptyPrefixMeansBareKeys(t *testing.T) {
	for _, p := range []string{"", "/", "///"} {
		b := mustFromEnv(t, enabledEnv(EnvBlobCachePrefix, p)).BlobCache
		if b.KeyPrefix() != "" || b.Problem != nil {
			t.Errorf("prefix %q: KeyPrefix %q, problem %v", p, b.KeyPrefix(), b.Problem)
		}
	}
}

func TestBlobCacheCredentialChainUnlessBothSet(t *testing.T) {
	b := mustFromEnv(t, enabledEnv()).BlobCache
	if b.StaticCredentials() || b.Problem != nil {
		t.Fatalf("no keys: static %v, problem %v", b.StaticCredentials(), b.Problem)
	}
	// Set-but-empty counts as unset, like Python's bool("").
	b = mustFromEnv(t, enabledEnv(EnvBlobCacheAccessKeyID, "", EnvBlobCacheSecretAccessKey, "")).BlobCache
	if b.StaticCredentials() || b.Problem != nil {
		t.Fatalf("empty keys: static %v, problem %v", b.StaticCredentials(), b.Problem)
	}
}

// TestBlobCacheParseErrorsStopTheStart: like the reference's
// get_float_from_env / get_integer_from_env / str2bool, a value that does not
// parse is an error at start, enabled or not.
func TestBlobCacheParseErrorsStopTheStart(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{EnvBlobCacheEnabled, "yes"},
		{EnvBlobCacheConnectTimeout, "1s"},
		{EnvBlobCacheReadTimeout, "nan"},
		{EnvBlobCacheCooldown, "a minute"},
		{EnvBlobCacheMaxObjectBytes, "20GiB"},
		{EnvBlobCacheFailureThreshold, "3.0"},
		{EnvBlobCacheUploadWorkers, "0"},
		{EnvBlobCacheUploadWorkers, "two"},
		{EnvBlobCacheUploadQueue, "-1"},
		{EnvBlobCacheExitWait, "-1"},
	} {
		_, err := FromEnv(envOf(map[string]string{tc.name: tc.value}))
		var ie *InvalidEnvError
		if !errors.As(err, &ie) || ie.Name != tc.name || ie.Value != tc.value {
			t.Errorf("%s=%q: got %v, want *InvalidEnvError naming it", tc.name, tc.value, err)
		}
	}
}

// TestBlobCacheProblemsDisableTheTier: values that parse but cannot work
// leave the tier off (Problem), never stop the start; as in the reference,
// they are checked only when the tier is enabled.
func TestBlobCacheProblemsDisableTheTier(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		name string
	}{
		{map[string]string{EnvBlobCacheEnabled: "true"}, EnvBlobCacheBucket},
		{enabledEnv(EnvBlobCacheBucket, ""), EnvBlobCacheBucket},
		{enabledEnv(EnvBlobCacheAddressingStyle, "Path"), EnvBlobCacheAddressingStyle},
		{enabledEnv(EnvBlobCacheAddressingStyle, ""), EnvBlobCacheAddressingStyle},
		{enabledEnv(EnvBlobCacheAccessKeyID, "AKID"), EnvBlobCacheAccessKeyID},
		{enabledEnv(EnvBlobCacheSecretAccessKey, "s3cr3t"), EnvBlobCacheSecretAccessKey},
		{enabledEnv(EnvBlobCacheFailureThreshold, "0"), EnvBlobCacheFailureThreshold},
		{enabledEnv(EnvBlobCacheMaxObjectBytes, "0"), EnvBlobCacheMaxObjectBytes},
		{enabledEnv(EnvBlobCacheConnectTimeout, "0"), EnvBlobCacheConnectTimeout},
		{enabledEnv(EnvBlobCacheReadTimeout, "-2"), EnvBlobCacheReadTimeout},
		{enabledEnv(EnvBlobCacheCooldown, "-inf"), EnvBlobCacheCooldown},
		{enabledEnv(EnvBlobCacheEndpointURL, "s3.example.com"), EnvBlobCacheEndpointURL},
		{enabledEnv(EnvBlobCacheEndpointURL, "ftp://s3.example.com"), EnvBlobCacheEndpointURL},
		{enabledEnv(EnvBlobCacheEndpointURL, "https://s3.example.com/bucket"), EnvBlobCacheEndpointURL},
		{enabledEnv(EnvBlobCacheEndpointURL, "https://user:pw@s3.example.com"), EnvBlobCacheEndpointURL},
	} {
		c, err := FromEnv(envOf(tc.env))
		if err != nil {
			t.Errorf("%v: start failed (%v); a problem must only disable the tier", tc.env, err)
			continue
		}
		var ie *InvalidEnvError
		if !errors.As(c.BlobCache.Problem, &ie) || ie.Name != tc.name || c.BlobCache.Usable() {
			t.Errorf("%v: Problem = %v, want one naming %s", tc.env, c.BlobCache.Problem, tc.name)
		}
		// Disabled, the same values are not checked at all.
		tc.env[EnvBlobCacheEnabled] = "false"
		if c := mustFromEnv(t, tc.env); c.BlobCache.Problem != nil {
			t.Errorf("%v (disabled): Problem = %v", tc.env, c.BlobCache.Problem)
		}
	}
}

func TestBlobCacheSecretsNeverPrinted(t *testing.T) {
	const secret = "wJalrXUtnFEMI-K7MDENG"
	c := mustFromEnv(t, enabledEnv(EnvBlobCacheSecretAccessKey, secret))
	for _, s := range []string{fmt.Sprintf("%v %+v %#v", c, c, c), c.BlobCache.Problem.Error()} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret printed: %s", s)
		}
	}
	c = mustFromEnv(t, enabledEnv(EnvBlobCacheEndpointURL, "https://AKID:"+secret+"@s3.example.com"))
	if strings.Contains(c.BlobCache.Problem.Error(), secret) {
		t.Fatalf("secret of the endpoint URL printed: %v", c.BlobCache.Problem)
	}
}

func TestBlobCacheSaturates(t *testing.T) {
	b := mustFromEnv(t, enabledEnv(EnvBlobCacheMaxObjectBytes, "99999999999999999999", EnvBlobCacheCooldown, "inf")).BlobCache
	if b.MaxObjectBytes != math.MaxInt64 || b.Cooldown != math.MaxInt64 || b.Problem != nil {
		t.Fatalf("got max %d, cooldown %d, problem %v", b.MaxObjectBytes, b.Cooldown, b.Problem)
	}
}
