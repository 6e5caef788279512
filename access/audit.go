package access

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric names (registered on the Registerer of Options.Metrics).
const (
	MetricDecisions     = "modelcache_access_decisions_total"
	MetricVerifications = "modelcache_access_verifications_total"
)

// auditMessage is the message of every audit record.
const auditMessage = "access decision"

// auditor writes the audit log and counts decisions and verifications.
type auditor struct {
	log           *slog.Logger
	level         slog.Level
	decisions     *prometheus.CounterVec
	verifications *prometheus.CounterVec
}

func newAuditor(o *Options) (*auditor, error) {
	a := &auditor{log: o.AuditLogger, level: o.AuditLevel}
	if o.Metrics == nil {
		return a, nil
	}
	var err error
	a.decisions, err = registerCounter(o.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricDecisions,
		Help: "Access decisions of the tenant guard, by decision (allowed, denied), reason and source (verified, cache, record, load).",
	}, []string{"decision", "reason", "source"}))
	if err != nil {
		return nil, err
	}
	a.verifications, err = registerCounter(o.Metrics, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricVerifications,
		Help: "Verification requests the tenant guard made to the weights provider, by outcome (accepted, refused, unavailable).",
	}, []string{"outcome"}))
	if err != nil {
		return nil, err
	}
	return a, nil
}

// registerCounter registers c, or returns the identical counter another
// guard already registered there (several guards may share one registry).
func registerCounter(r prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := r.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if ex, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return ex, nil
		}
	}
	return nil, err
}

func (a *auditor) decision(ctx context.Context, d *Decision) {
	if a.decisions != nil {
		a.decisions.WithLabelValues(d.verdict(), string(d.Reason), string(d.Source)).Inc()
	}
	if a.log == nil || !a.log.Enabled(ctx, a.level) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs,
		slog.String("key_hash", d.Tenant),
		slog.String("model_id", d.ModelID),
		slog.String("package_id", d.PackageID),
		slog.String("decision", d.verdict()),
		slog.String("reason", string(d.Reason)),
		slog.String("source", string(d.Source)),
	)
	if !d.VerifiedAt.IsZero() {
		attrs = append(attrs, slog.String("verified_at", d.VerifiedAt.UTC().Format(time.RFC3339Nano)))
	}
	if d.StatusCode != 0 {
		attrs = append(attrs, slog.Int("status", d.StatusCode))
	}
	a.log.LogAttrs(ctx, a.level, auditMessage, attrs...)
}

func (a *auditor) verification(k outcomeKind) {
	if a.verifications == nil {
		return
	}
	a.verifications.WithLabelValues(k.String()).Inc()
}

func (k outcomeKind) String() string {
	switch k {
	case accepted:
		return "accepted"
	case refused:
		return "refused"
	case unavailable:
		return "unavailable"
	}
	return "unknown"
}
