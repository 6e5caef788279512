package tier

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the tier's Prometheus collectors. They count whether or not
// they are registered anywhere (WithRegisterer), so Stats and tests read
// them either way.
type Metrics struct {
	Restores        prometheus.Counter
	RestoreBytes    prometheus.Counter
	OriginFallbacks *prometheus.CounterVec // by reason
	Uploads         *prometheus.CounterVec // by result
	UploadBytes     prometheus.Counter
	UploadDrops     prometheus.Counter
	BreakerTrips    *prometheus.CounterVec // by op: read, write
	BreakerState    *prometheus.GaugeVec   // by op: 0 closed, 1 open, 2 half-open
}

// Fallback reasons: why a blob came from the origin instead of the tier.
const (
	ReasonNotFound     = "not_found"
	ReasonBreakerOpen  = "breaker_open"
	ReasonError        = "error"
	ReasonTooLarge     = "too_large"
	ReasonSizeMismatch = "size_mismatch"
	ReasonDistrusted   = "distrusted"
	ReasonRejected     = "rejected" // the engine refused the restored bytes or the transfer failed
)

// Upload results.
const (
	UploadStored        = "stored"
	UploadExisted       = "existed"
	UploadFailed        = "failed"
	UploadLocalMismatch = "local_mismatch" // the local file no longer matches its name: not uploaded
	UploadLocalGone     = "local_gone"
	UploadAbandoned     = "abandoned" // still queued or running when Close's bound ran out
)

func newMetrics() *Metrics {
	const ns, sub = "modelcache", "tier"
	return &Metrics{
		Restores: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "restores_total", Help: "Blobs restored from the shared tier (verified by the download engine)."}),
		RestoreBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "restore_bytes_total", Help: "Bytes received from the shared tier for restored blobs."}),
		OriginFallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "origin_fallbacks_total", Help: "Blob fetches that went to the origin instead of the tier, by reason."}, []string{"reason"}),
		Uploads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "uploads_total", Help: "Background and push uploads to the tier, by result."}, []string{"result"}),
		UploadBytes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "upload_bytes_total", Help: "Bytes uploaded to the tier."}),
		UploadDrops: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "upload_drops_total", Help: "Upload offers dropped because the upload queue was full."}),
		BreakerTrips: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub,
			Name: "breaker_trips_total", Help: "Times a tier circuit breaker opened, by operation."}, []string{"op"}),
		BreakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "breaker_state", Help: "Tier circuit breaker state by operation: 0 closed, 1 open, 2 half-open."}, []string{"op"}),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Restores, m.RestoreBytes, m.OriginFallbacks, m.Uploads, m.UploadBytes,
		m.UploadDrops, m.BreakerTrips, m.BreakerState}
}
