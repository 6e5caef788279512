package registry

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// Server defaults.
const (
	DefaultMaxPages           = 10
	DefaultURLTTL             = 24 * time.Hour
	DefaultMaxConcurrentFiles = 256
	DefaultShutdownTimeout    = 30 * time.Second
	// FilesPrefix is the path prefix of file URLs: /files/<md5>/<handle>.
	FilesPrefix = "/files/"
)

// Options configure a Server.
type Options struct {
	// PublicURL is the base of the absolute download URLs in metadata (e.g.
	// https://models.example.com behind a proxy). Empty: derived from each
	// request (scheme + Host header).
	PublicURL string
	// PageSize is the default number of packages per page (0: all on one
	// page). A client's pageSize parameter overrides it.
	PageSize int
	// MaxPages bounds the pages per model: the page size is raised so that no
	// model needs more (default 10, the reference's client cap).
	MaxPages int
	// URLTTL is the validity of signed file URLs (used only when the registry
	// has access.json). Default 24 h.
	URLTTL time.Duration
	// URLSecret signs file URLs; nil generates a random secret (URLs become
	// invalid on restart; clients refetch metadata).
	URLSecret []byte
	// MaxConcurrentFiles bounds concurrent file transfers; excess requests
	// get 503 with Retry-After. Default 256.
	MaxConcurrentFiles int
	// ShutdownTimeout bounds graceful shutdown in Serve. Default 30 s.
	ShutdownTimeout time.Duration
	// Logger receives structured access and error logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock (signed URL expiry); nil uses time.Now.
	Now func() time.Time
}

// Server publishes a Registry over HTTP.
type Server struct {
	reg     *Registry
	o       Options
	log     *slog.Logger
	metrics *metrics
	mux     *http.ServeMux
	sem     chan struct{}
	models  map[*Model]*renderedModel
	handles map[string]map[string]bool // md5 -> handles served under it
}

type renderedModel struct {
	prefix   []byte // up to and including `"modelPackages": [`
	packages []renderedPackage
	size     int // bytes of prefix and every package head/tail and file path
	perFile  int // average files per package (rounded up)
}

type renderedPackage struct {
	id    string
	head  []byte // up to and including `"packageFiles": [`
	tail  []byte // from `]` after the files to the closing brace
	files []renderedFile
}

type renderedFile struct {
	handleJSON []byte // `"weights.onnx"`
	md5        string
	path       string // URL path after the base: /files/<md5>/<handle>
}

type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	fileBytes prometheus.Counter
	inflight  prometheus.Gauge
	rejected  prometheus.Counter
}

func newMetrics(reg *Registry) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "modelcache_registry_requests_total", Help: "HTTP requests by route and status code.",
	}, []string{"route", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "modelcache_registry_request_duration_seconds", Help: "HTTP request duration by route.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"route"})
	m.fileBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modelcache_registry_file_bytes_sent_total", Help: "Bytes of package files sent (bodies only).",
	})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "modelcache_registry_file_transfers_in_flight", Help: "File transfers in progress.",
	})
	m.rejected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "modelcache_registry_file_requests_rejected_total", Help: "File requests answered 503 because of the concurrency limit.",
	})
	var nPkg, nFiles int
	var nBytes int64
	for _, mo := range reg.Models {
		nPkg += len(mo.Packages)
		for _, p := range mo.Packages {
			nFiles += len(p.Files)
		}
	}
	for _, f := range reg.blobs {
		nBytes += f.Size
	}
	content := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "modelcache_registry_content", Help: "Registry content loaded at start-up.",
	}, []string{"kind"})
	content.WithLabelValues("models").Set(float64(len(reg.Models)))
	content.WithLabelValues("packages").Set(float64(nPkg))
	content.WithLabelValues("files").Set(float64(nFiles))
	content.WithLabelValues("blobs").Set(float64(len(reg.blobs)))
	content.WithLabelValues("blob_bytes").Set(float64(nBytes))
	m.reg.MustRegister(m.requests, m.duration, m.fileBytes, m.inflight, m.rejected, content,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// New prepares a server for reg.
func New(reg *Registry, opts Options) (*Server, error) {
	if opts.MaxPages <= 0 {
		opts.MaxPages = DefaultMaxPages
	}
	if opts.PageSize < 0 {
		return nil, fmt.Errorf("page size must not be negative")
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = DefaultURLTTL
	}
	if opts.MaxConcurrentFiles <= 0 {
		opts.MaxConcurrentFiles = DefaultMaxConcurrentFiles
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	opts.PublicURL = strings.TrimRight(opts.PublicURL, "/")
	if opts.PublicURL != "" {
		if !strings.HasPrefix(opts.PublicURL, "http://") && !strings.HasPrefix(opts.PublicURL, "https://") {
			return nil, fmt.Errorf("public URL %q must start with http:// or https://", opts.PublicURL)
		}
		if strings.ContainsAny(opts.PublicURL, "?#") {
			return nil, fmt.Errorf("public URL %q must not have a query or fragment", opts.PublicURL)
		}
	}
	if reg.Access != nil && opts.URLSecret == nil {
		opts.URLSecret = make([]byte, 32)
		if _, err := rand.Read(opts.URLSecret); err != nil {
			return nil, err
		}
	}
	s := &Server{
		reg: reg, o: opts, metrics: newMetrics(reg),
		sem:     make(chan struct{}, opts.MaxConcurrentFiles),
		models:  map[*Model]*renderedModel{},
		handles: map[string]map[string]bool{},
	}
	s.log = opts.Logger
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	for _, m := range reg.Models {
		rm, err := render(m)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.ID, err)
		}
		s.models[m] = rm
		for _, p := range m.Packages {
			for _, f := range p.Files {
				if s.handles[f.MD5] == nil {
					s.handles[f.MD5] = map[string]bool{}
				}
				s.handles[f.MD5][f.Handle] = true
			}
		}
	}
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET "+roboflow.WeightsPath, s.instrument("weights", s.serveWeights))
	s.mux.HandleFunc("GET "+FilesPrefix+"{md5}/{handle...}", s.instrument("files", s.serveFile))
	s.mux.HandleFunc("GET /healthz", s.instrument("healthz", s.serveHealth))
	s.mux.Handle("GET /metrics", s.instrument("metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP))
	s.mux.HandleFunc("/", s.instrument("other", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, "not found")
	}))
	return s, nil
}

// Metrics returns the server's Prometheus registry.
func (s *Server) Metrics() *prometheus.Registry { return s.metrics.reg }

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

func jsonValue(v any) ([]byte, error) { return pyjson.Marshal(v) }

func render(m *Model) (*renderedModel, error) {
	var b bytes.Buffer
	b.WriteString(`{"modelMetadata": {"type": `)
	parts := []struct {
		key string
		val any
	}{
		{"", roboflow.TypeModelMetadataV1},
		{"modelId", m.ID},
		{"modelArchitecture", m.Architecture},
		{"modelVariant", strOrNil(m.Variant)},
		{"taskType", strOrNil(m.TaskType)},
		{"modelDependencies", wireDependencies(m.Dependencies)},
		{"recommendedParameters", wireRecommended(m.Recommended)},
	}
	for i, p := range parts {
		if i > 0 {
			b.WriteString(`, "` + p.key + `": `)
		}
		v, err := jsonValue(p.val)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteString(`, "modelPackages": [`)
	rm := &renderedModel{prefix: b.Bytes()}
	for _, p := range m.Packages {
		rp, err := renderPackage(p)
		if err != nil {
			return nil, fmt.Errorf("package %s: %w", p.ID, err)
		}
		rm.packages = append(rm.packages, rp)
	}
	files := 0
	rm.size = len(rm.prefix) + 64
	for _, p := range rm.packages {
		rm.size += len(p.head) + len(p.tail)
		for _, f := range p.files {
			rm.size += len(f.handleJSON) + len(f.path) + len(f.md5)
		}
		files += len(p.files)
	}
	if len(rm.packages) > 0 {
		rm.perFile = (files + len(rm.packages) - 1) / len(rm.packages)
	}
	return rm, nil
}

func renderPackage(p *Package) (renderedPackage, error) {
	rp := renderedPackage{id: p.ID}
	var b bytes.Buffer
	id, _ := jsonValue(p.ID)
	man, err := jsonValue(p.Manifest)
	if err != nil {
		return rp, err
	}
	fmt.Fprintf(&b, `{"type": "%s", "packageId": %s, "packageManifest": %s, "packageFiles": [`, roboflow.TypeModelPackageV1, id, man)
	rp.head = append([]byte(nil), b.Bytes()...)
	b.Reset()
	feat, err := jsonValue(p.Features)
	if err != nil {
		return rp, err
	}
	trusted, _ := jsonValue(p.Trusted)
	fmt.Fprintf(&b, `], "modelFeatures": %s, "trustedSource": %s`, feat, trusted)
	if p.Recommended != nil {
		rec, err := jsonValue(wireRecommended(p.Recommended))
		if err != nil {
			return rp, err
		}
		fmt.Fprintf(&b, `, "recommendedParameters": %s`, rec)
	}
	b.WriteString("}")
	rp.tail = b.Bytes()
	for _, f := range p.Files {
		h, _ := jsonValue(f.Handle)
		rp.files = append(rp.files, renderedFile{handleJSON: h, md5: f.MD5, path: FilesPrefix + f.MD5 + "/" + f.Handle})
	}
	return rp, nil
}

func strOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// baseURL returns the absolute base for download URLs.
func (s *Server) baseURL(r *http.Request) string {
	if s.o.PublicURL != "" {
		return s.o.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) sign(md5hex string, expires int64) string {
	mac := hmac.New(sha256.New, s.o.URLSecret)
	fmt.Fprintf(mac, "%s\n%d", md5hex, expires)
	return hex.EncodeToString(mac.Sum(nil))
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	body, _ := pyjson.Marshal(pyjson.ObjectOf("error", pyjson.ObjectOf("message", msg, "status", status)))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

var statusMessages = map[int]string{
	401: "Unauthorized: missing or invalid API key.",
	402: "Payment required: not enough credits.",
	403: "Forbidden: the API key has no access to this model.",
	404: "Model not found.",
	423: "Usage paused for this workspace.",
}

func (s *Server) serveWeights(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	modelID := q.Get("modelId")
	if modelID == "" {
		writeJSONError(w, http.StatusBadRequest, "modelId is required")
		return
	}
	m, known := s.reg.Lookup(modelID)
	canonical := ""
	if known {
		canonical = m.ID
	}
	d := s.reg.Access.Check(r.Header.Get("Authorization"), modelID, canonical)
	if d.Status != 0 {
		writeJSONError(w, d.Status, statusMessages[d.Status])
		return
	}
	rm := s.models[m]
	n := len(rm.packages)
	size := s.o.PageSize
	if ps := q.Get("pageSize"); ps != "" {
		v, err := strconv.Atoi(ps)
		if err != nil || v < 1 {
			writeJSONError(w, http.StatusBadRequest, "pageSize must be a positive integer")
			return
		}
		size = v
	}
	if size <= 0 || size > n {
		size = n
	}
	if minSize := (n + s.o.MaxPages - 1) / s.o.MaxPages; size < minSize {
		size = minSize
	}
	start := 0
	if q.Has("startAfter") {
		after := q.Get("startAfter")
		start = -1
		for i, p := range rm.packages {
			if p.id == after {
				start = i + 1
				break
			}
		}
		if start < 0 {
			writeJSONError(w, http.StatusBadRequest, "startAfter does not name a package of this model")
			return
		}
	}
	end := min(start+size, n)
	base := s.baseURL(r)
	baseJSON, _ := jsonValue(base)
	baseJSON = baseJSON[1 : len(baseJSON)-1]
	var sig func(md5 string) string
	if s.reg.Access != nil {
		expires := s.o.Now().Add(s.o.URLTTL).Unix()
		sig = func(md5 string) string {
			return "?Expires=" + strconv.FormatInt(expires, 10) + "&Signature=" + s.sign(md5, expires)
		}
	}
	var b bytes.Buffer
	b.Grow(rm.size + (end-start)*rm.perFile*(len(baseJSON)+120))
	b.Write(rm.prefix)
	for i := start; i < end; i++ {
		p := rm.packages[i]
		if i > start {
			b.WriteString(", ")
		}
		b.Write(p.head)
		for j, f := range p.files {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(`{"fileHandle": `)
			b.Write(f.handleJSON)
			b.WriteString(`, "downloadUrl": "`)
			b.Write(baseJSON)
			b.WriteString(f.path)
			if sig != nil {
				b.WriteString(sig(f.md5))
			}
			b.WriteString(`", "md5Hash": "`)
			b.WriteString(f.md5)
			b.WriteString(`"}`)
		}
		b.Write(p.tail)
	}
	b.WriteString(`], "nextPage": `)
	if end < n && end > start {
		next, _ := jsonValue(rm.packages[end-1].id)
		b.Write(next)
	} else {
		b.WriteString("null")
	}
	b.WriteString("}}")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(b.Bytes())
	}
}

func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	md5hex, handle := r.PathValue("md5"), r.PathValue("handle")
	f, ok := s.reg.Blob(md5hex)
	if !ok || !s.handles[md5hex][handle] {
		writeJSONError(w, http.StatusNotFound, "file not found")
		return
	}
	if s.reg.Access != nil {
		q := r.URL.Query()
		exp, err := strconv.ParseInt(q.Get("Expires"), 10, 64)
		good := err == nil && hmac.Equal([]byte(q.Get("Signature")), []byte(s.sign(md5hex, exp)))
		if !good {
			writeJSONError(w, http.StatusForbidden, "invalid URL signature; request the model metadata again")
			return
		}
		if s.o.Now().Unix() > exp {
			writeJSONError(w, http.StatusForbidden, "signed URL expired; request the model metadata again")
			return
		}
	}
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.metrics.rejected.Inc()
		w.Header().Set("Retry-After", "1")
		writeJSONError(w, http.StatusServiceUnavailable, "too many concurrent transfers; retry later")
		return
	}
	s.metrics.inflight.Inc()
	defer s.metrics.inflight.Dec()
	fh, err := os.Open(f.Path)
	if err != nil {
		s.log.ErrorContext(r.Context(), "cannot open registry file", "path", f.Path, "error", err)
		writeJSONError(w, http.StatusInternalServerError, "file unavailable")
		return
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil || st.Size() != f.Size || !st.ModTime().Equal(f.ModTime) {
		s.log.ErrorContext(r.Context(), "registry file changed since start-up; refusing to serve it (restart the server to re-hash)",
			"path", f.Path, "md5", f.MD5)
		writeJSONError(w, http.StatusInternalServerError, "file changed since the server started")
		return
	}
	h := w.Header()
	h.Set("ETag", `"`+f.MD5+`"`)
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	http.ServeContent(w, r, "", time.Time{}, fh)
}

func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	nPkg := 0
	for _, m := range s.reg.Models {
		nPkg += len(m.Packages)
	}
	body, _ := pyjson.Marshal(pyjson.ObjectOf("status", "ok", "models", len(s.reg.Models), "packages", nPkg))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// recorder captures the status and body size while keeping io.ReaderFrom
// (sendfile) available to http.ServeContent.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *recorder) WriteHeader(code int) {
	if rec.status == 0 {
		rec.status = code
	}
	rec.ResponseWriter.WriteHeader(code)
}

func (rec *recorder) Write(p []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(p)
	rec.bytes += int64(n)
	return n, err
}

func (rec *recorder) ReadFrom(src io.Reader) (int64, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := rec.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(src)
	} else {
		n, err = io.Copy(rec.ResponseWriter, src)
	}
	rec.bytes += n
	return n, err
}

func (rec *recorder) Flush() {
	if f, ok := rec.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

func (s *Server) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		h(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(rec.status)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(d.Seconds())
		if route == "files" {
			s.metrics.fileBytes.Add(float64(rec.bytes))
		}
		level := slog.LevelInfo
		if route == "metrics" || route == "healthz" {
			level = slog.LevelDebug
		}
		if !s.log.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("route", route), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes), slog.Duration("duration", d),
			slog.String("remote", r.RemoteAddr),
		}
		if rg := r.Header.Get("Range"); rg != "" {
			attrs = append(attrs, slog.String("range", rg))
		}
		if route == "weights" {
			attrs = append(attrs, slog.String("model_id", r.URL.Query().Get("modelId")))
		}
		s.log.LogAttrs(r.Context(), level, "request", attrs...)
	}
}

// Serve serves on ln until ctx is cancelled, then shuts down gracefully
// (in-flight requests get up to Options.ShutdownTimeout). It returns nil
// after a clean shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("registry server listening", "addr", ln.Addr().String(), "public_url", s.o.PublicURL,
		"models", len(s.reg.Models), "access_control", s.reg.Access != nil)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.log.Info("registry server shutting down", "timeout", s.o.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.o.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
