// Package roboflow is the client of the Roboflow weights API
// (GET {host}/models/v1/external/weights, registry-protocol.md). It
// implements provider.Provider: paging, retries with full jitter (honouring
// Retry-After), the reference's error mapping, secure-gateway rewriting and
// per-package robust parsing. API keys never reach logs or error strings;
// URLs are logged as scheme://host/path only.
package roboflow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/internal/retry"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider"
)

// Defaults of Options.
const (
	DefaultAPIHost      = "https://api.roboflow.com"
	DefaultTimeout      = 5 * time.Second
	DefaultMaxTries     = 3
	DefaultMaxBodyBytes = 32 << 20
	// MaxPages is the page cap: after this many pages the client stops
	// silently, even if nextPage is set.
	MaxPages = 10
	// MaxRetryAfter caps a server's Retry-After.
	MaxRetryAfter = 60 * time.Second
)

// DefaultRetryCodes returns IDEMPOTENT_API_REQUEST_CODES_TO_RETRY's default.
func DefaultRetryCodes() []int { return []int{408, 429, 502, 503, 504} }

// Options configure a Client. Zero values take the defaults above.
type Options struct {
	// APIHost is the API base URL, e.g. https://api.roboflow.com.
	APIHost string
	// APIKey is the fallback key (ROBOFLOW_API_KEY), used when a request's
	// key is empty or "local".
	APIKey string
	// Timeout bounds connecting and every gap between reads (API_CALLS_TIMEOUT).
	Timeout time.Duration
	// MaxTries per page, counting the first (API_CALLS_MAX_TRIES).
	MaxTries int
	// RetryCodes are the retryable statuses; nil means DefaultRetryCodes.
	RetryCodes []int
	// SecureGateway, when set, rewrites the API URL and every download URL
	// to <gateway>/proxy?url=<encoded>.
	SecureGateway string
	// ExtraQuery and ExtraHeaders apply to every request, before the
	// per-request extras of provider.Request.
	ExtraQuery   [][2]string
	ExtraHeaders map[string]string
	// Offline refuses every request (OFFLINE_MODE).
	Offline bool
	// HTTPClient sends the requests; nil uses a client whose transport
	// honours HTTP(S)_PROXY / NO_PROXY.
	HTTPClient *http.Client
	// Logger receives structured logs; nil uses slog.Default().
	Logger *slog.Logger
	// Sleep waits d or until ctx is done; nil uses a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a uniform value in [0, 1) for the retry jitter; nil uses math/rand/v2.
	Rand func() float64
	// Now is the clock used for HTTP-date Retry-After values; nil uses time.Now.
	Now func() time.Time
	// MaxBodyBytes caps a metadata response body; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// LocalPackages, when set, is asked for locally built packages (local
	// TRT engines, registry-protocol §9) of the canonical id and then of the
	// requested id; packages whose id is already known are ignored and errors
	// are logged and skipped.
	LocalPackages func(ctx context.Context, modelID string) ([]metadata.ModelPackage, error)
}

// Client talks to the weights API. It is safe for concurrent use.
type Client struct {
	o          Options
	retryCodes []int
	log        *slog.Logger
	http       *http.Client
}

// New returns a client for opts.
func New(opts Options) *Client {
	c := &Client{o: opts}
	if c.o.APIHost == "" {
		c.o.APIHost = DefaultAPIHost
	}
	if c.o.Timeout <= 0 {
		c.o.Timeout = DefaultTimeout
	}
	if c.o.MaxTries <= 0 {
		c.o.MaxTries = DefaultMaxTries
	}
	c.retryCodes = opts.RetryCodes
	if c.retryCodes == nil {
		c.retryCodes = DefaultRetryCodes()
	}
	if c.o.MaxBodyBytes <= 0 {
		c.o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	c.log = opts.Logger
	if c.log == nil {
		c.log = slog.Default()
	}
	c.http = opts.HTTPClient
	if c.http == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyFromEnvironment
		tr.DialContext = (&net.Dialer{Timeout: c.o.Timeout, KeepAlive: 30 * time.Second}).DialContext
		tr.TLSHandshakeTimeout = c.o.Timeout
		tr.ResponseHeaderTimeout = c.o.Timeout
		tr.DisableCompression = false
		c.http = &http.Client{Transport: tr}
	}
	if c.o.Sleep == nil {
		c.o.Sleep = retry.Sleep
	}
	if c.o.Rand == nil {
		c.o.Rand = rand.Float64
	}
	if c.o.Now == nil {
		c.o.Now = time.Now
	}
	return c
}

// NewRegistry returns a provider registry with this client registered as the
// built-in "roboflow" provider.
func NewRegistry(c *Client) (*provider.Registry, error) {
	return provider.NewRegistry(map[string]provider.Provider{provider.Roboflow: c})
}

// EffectiveKey returns the key sent for a request key: the request key,
// unless it is empty or "local", in which case the configured fallback.
func (c *Client) EffectiveKey(requestKey string) string {
	if requestKey == "" || requestKey == "local" {
		return c.o.APIKey
	}
	return requestKey
}

// ModelMetadata fetches every page (at most MaxPages) and parses the result.
func (c *Client) ModelMetadata(ctx context.Context, req provider.Request) (*metadata.ModelMetadata, error) {
	if err := provider.ValidateModelID(req.ModelID); err != nil {
		return nil, err
	}
	key := c.EffectiveKey(req.APIKey)
	secrets := []string{key, c.o.APIKey, req.APIKey}
	for _, hv := range [](map[string]string){c.o.ExtraHeaders, req.ExtraHeaders} {
		for _, v := range hv {
			if len(v) >= minRedactLen {
				secrets = append(secrets, v)
			}
		}
	}
	red := newRedactor(secrets...)
	if c.o.Offline {
		return nil, &provider.RetrievalError{Kind: provider.KindRetrieval, ModelID: req.ModelID, Err: errdefs.ErrOffline,
			Message: fmt.Sprintf("Could not retrieve metadata of model %s: OFFLINE_MODE is enabled, so the weights API is not called.", req.ModelID)}
	}
	var (
		pages   []*page
		raw     []*pyjson.Object
		cursor  *string
		lastURL string
	)
	for n := 1; n <= MaxPages; n++ {
		params := [][2]string{{"modelId", req.ModelID}}
		if cursor != nil {
			params = append(params, [2]string{"startAfter", *cursor})
		}
		u, err := buildURL(strings.TrimRight(c.o.APIHost, "/")+WeightsPath, requestParams(params, c.o.ExtraQuery, req.ExtraQuery))
		if err != nil {
			return nil, err
		}
		u = GatewayRewrite(c.o.SecureGateway, u)
		lastURL = u
		pg, err := c.fetchPage(ctx, u, n, req, key, red)
		if err != nil {
			return nil, err
		}
		pages = append(pages, pg)
		raw = append(raw, pg.packages...)
		if pg.nextPage == nil {
			break
		}
		cursor = pg.nextPage
		if n == MaxPages {
			c.log.DebugContext(ctx, "page cap reached, ignoring further pages", "url", LogURL(lastURL), "pages", n)
		}
	}
	last := pages[len(pages)-1]
	if len(raw) == 0 {
		return nil, &provider.RetrievalError{Kind: provider.KindRetrieval, ModelID: req.ModelID,
			Message: fmt.Sprintf("Backend provided empty list of model packages for model %s. If you see this error using Roboflow platform your model may not be ready - if the problem persists, contact Roboflow support.", red.clean(req.ModelID))}
	}
	md := &metadata.ModelMetadata{
		ModelID:               last.modelID,
		ModelArchitecture:     last.architecture,
		TaskType:              last.taskType,
		ModelVariant:          last.variant,
		ModelDependencies:     last.dependencies,
		RecommendedParameters: last.recommended,
		NextPage:              last.nextPage,
		Packages:              make([]metadata.ModelPackage, 0, len(raw)),
	}
	for i, o := range raw {
		pkg, kind, err := parsePackage(o, c.o.SecureGateway)
		if kind == parsed {
			md.Packages = append(md.Packages, *pkg)
			continue
		}
		id := rawPackageID(o)
		switch kind {
		case SkipIgnored:
			c.log.DebugContext(ctx, "ignoring model package of an unsupported kind", "model_id", req.ModelID, "package_id", id, "reason", red.clean(err.Error()))
		case SkipUnsupported:
			c.log.WarnContext(ctx, "model package announced by the weights provider has a type that is not supported - your inference-models package is outdated. Silently skipping this package.",
				"model_id", req.ModelID, "package_id", id, "index", i, "reason", red.clean(err.Error()))
		default:
			c.log.WarnContext(ctx, "could not parse model package announced by the weights provider. Silently skipping this package.",
				"model_id", req.ModelID, "package_id", id, "index", i, "reason", red.clean(err.Error()))
		}
	}
	c.mergeLocal(ctx, md, req.ModelID)
	return md, nil
}

func rawPackageID(o *pyjson.Object) string {
	if v, ok := o.Get("packageId"); ok {
		if s, ok := v.(string); ok {
			return s
		}
	}
	return ""
}

func (c *Client) mergeLocal(ctx context.Context, md *metadata.ModelMetadata, requested string) {
	if c.o.LocalPackages == nil {
		return
	}
	ids := []string{md.ModelID}
	if requested != md.ModelID {
		ids = append(ids, requested)
	}
	known := map[string]bool{}
	for _, p := range md.Packages {
		known[p.PackageID] = true
	}
	for _, id := range ids {
		pkgs, err := c.o.LocalPackages(ctx, id)
		if err != nil {
			c.log.WarnContext(ctx, "could not discover local packages", "model_id", id, "error", err.Error())
			continue
		}
		for _, p := range pkgs {
			if known[p.PackageID] {
				continue
			}
			known[p.PackageID] = true
			md.Packages = append(md.Packages, p)
		}
	}
}

// attemptResult is the outcome of one HTTP try.
type attemptResult struct {
	status     int
	header     http.Header
	body       []byte
	err        error // transport-level error (retryable unless ctx is done)
	tooLarge   bool
	retryAfter time.Duration
	hasRA      bool
}

func (c *Client) fetchPage(ctx context.Context, u string, pageNo int, req provider.Request, key string, red redactor) (*page, error) {
	logURL := LogURL(u)
	var last attemptResult
	for try := 1; ; try++ {
		c.log.DebugContext(ctx, "requesting model metadata", "url", logURL, "page", pageNo, "try", try)
		res := c.attempt(ctx, u, req, key)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("model metadata request to %s cancelled: %w", logURL, ctxErr)
		}
		last = res
		retryable := false
		switch {
		case res.err != nil:
			retryable = true
		case res.tooLarge:
			return nil, &provider.RetrievalError{Kind: provider.KindRetrieval, ModelID: req.ModelID, StatusCode: res.status,
				Message: fmt.Sprintf("Roboflow API response for model %s exceeds %d bytes.", red.clean(req.ModelID), c.o.MaxBodyBytes)}
		case slices.Contains(c.retryCodes, res.status):
			retryable = true
		}
		if !retryable {
			return c.interpret(res, req.ModelID, red)
		}
		if try >= c.o.MaxTries {
			break
		}
		b := retry.FullJitter(time.Second)
		b.Rand = c.o.Rand
		wait := b.Delay(try)
		if res.hasRA {
			wait = res.retryAfter
		}
		attrs := []any{"url", logURL, "page", pageNo, "try", try, "max_tries", c.o.MaxTries, "wait", wait.String()}
		if res.err != nil {
			attrs = append(attrs, "error", red.clean(res.err.Error()))
		} else {
			attrs = append(attrs, "status", res.status)
		}
		c.log.WarnContext(ctx, "transient weights API failure, retrying", attrs...)
		if err := c.o.Sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("model metadata request to %s cancelled: %w", logURL, err)
		}
	}
	re := &provider.RetryError{StatusCode: last.status, Tries: c.o.MaxTries, Err: last.err}
	if last.err != nil {
		re.Message = fmt.Sprintf("Connectivity error while retrieving model %s metadata from %s after %d tries: %s",
			red.clean(req.ModelID), logURL, c.o.MaxTries, red.clean(last.err.Error()))
		re.Err = errors.New(red.clean(last.err.Error()))
	} else {
		re.Message = fmt.Sprintf("Roboflow API returned retryable response code %d for model %s metadata after %d tries.",
			last.status, red.clean(req.ModelID), c.o.MaxTries)
	}
	return nil, re
}

// interpret maps a non-retryable answer to a page or an error (registry-protocol §5).
func (c *Client) interpret(res attemptResult, modelID string, red redactor) (*page, error) {
	mid := red.clean(modelID)
	mk := func(kind provider.Kind, msg string) error {
		return &provider.RetrievalError{Kind: kind, StatusCode: res.status, ModelID: modelID, Message: msg}
	}
	switch res.status {
	case 401:
		return nil, mk(provider.KindUnauthorized, "Could not get model weights. Request unauthorised. Are you sure you use valid Roboflow API key? See details here: https://docs.roboflow.com/api-reference/authentication#retrieve-an-api-key and pass the key using `api_key` parameter or ROBOFLOW_API_KEY environment variable.")
	case 402:
		return nil, mk(provider.KindPaymentRequired, "Not enough credits to perform this operation. Check your Roboflow workspace billing and usage, then retry.")
	case 403:
		return nil, mk(provider.KindForbidden, "Access forbidden. Check that the API key has the required scopes and access to model "+mid+".")
	case 404:
		return nil, mk(provider.KindNotFound, "Model not found. Make sure model "+mid+" exists and the API key has access to it.")
	case 423:
		return nil, mk(provider.KindUsagePaused, "Roboflow API usage is paused for this workspace. Check the workspace usage settings in Roboflow.")
	}
	if res.status >= 400 {
		return nil, mk(provider.KindRetrieval, fmt.Sprintf("Roboflow API returned invalid response code for get model weights operation %d.\n\nResponse:\n%s",
			res.status, red.clean(prettyBody(res.body))))
	}
	pg, err := parsePage(res.body)
	if err != nil {
		return nil, &provider.RetrievalError{Kind: provider.KindRetrieval, StatusCode: res.status, ModelID: modelID,
			Message: fmt.Sprintf("Could not decode Roboflow API response when trying to retrieve model %s. If that problem is not ephemeral - contact Roboflow support. Details: %s", mid, red.clean(err.Error())),
			Err:     errors.New(red.clean(err.Error()))}
	}
	return pg, nil
}

func prettyBody(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) == nil {
		var out bytes.Buffer
		if json.Indent(&out, b, "", "    ") == nil {
			return out.String()
		}
	}
	return string(b)
}

// attempt performs one HTTP GET with the connect/read-gap timeout.
func (c *Client) attempt(ctx context.Context, u string, req provider.Request, key string) attemptResult {
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	var timedOut atomic.Bool
	timer := time.AfterFunc(c.o.Timeout, func() { timedOut.Store(true); cancel() })
	defer timer.Stop()
	timeoutErr := func(err error) error {
		if timedOut.Load() {
			return fmt.Errorf("timeout: no data from the weights API for %s", c.o.Timeout)
		}
		return err
	}
	hreq, err := http.NewRequestWithContext(actx, http.MethodGet, u, nil)
	if err != nil {
		return attemptResult{err: errors.New(redactURLError(err))}
	}
	for k, v := range c.o.ExtraHeaders {
		hreq.Header.Set(k, v)
	}
	for k, v := range req.ExtraHeaders {
		hreq.Header.Set(k, v)
	}
	if key != "" && key != "local" {
		hreq.Header.Set("Authorization", "Bearer "+key)
	}
	hreq.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(hreq)
	if err != nil {
		return attemptResult{err: timeoutErr(errors.New(redactURLError(err)))}
	}
	defer resp.Body.Close()
	res := attemptResult{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode == 429 || resp.StatusCode == 503 {
		res.retryAfter, res.hasRA = retry.RetryAfter(resp.Header, c.o.Now(), MaxRetryAfter)
	}
	var buf bytes.Buffer
	chunk := make([]byte, 32<<10)
	for {
		timer.Reset(c.o.Timeout)
		n, rerr := resp.Body.Read(chunk)
		buf.Write(chunk[:n])
		if int64(buf.Len()) > c.o.MaxBodyBytes {
			res.tooLarge = true
			return res
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			res.err = timeoutErr(fmt.Errorf("reading response body: %s", redactURLError(rerr)))
			return res
		}
	}
	res.body = buf.Bytes()
	return res
}

// minRedactLen is the shortest extra-header value treated as a secret (shorter
// values would garble messages and are no credential).
const minRedactLen = 6

// redactor removes secrets (API keys, extra header values) from strings
// headed for logs and errors.
type redactor struct{ secrets []string }

func newRedactor(secrets ...string) redactor {
	var r redactor
	for _, s := range secrets {
		if s != "" && s != "local" && !slices.Contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	// Longest first so that a key containing another is fully replaced.
	slices.SortFunc(r.secrets, func(a, b string) int { return len(b) - len(a) })
	return r
}

func (r redactor) clean(s string) string {
	for _, k := range r.secrets {
		s = strings.ReplaceAll(s, k, "***")
	}
	return s
}
