package tier

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
)

// ErrMiss matches every *MissError.
var ErrMiss = errors.New("not restored from the blob tier")

// MissError: Lookup has no source for the blob; fetch it from the origin.
// Reason is one of the Reason* constants (or "disabled", "invalid",
// "canceled"); Err is the underlying error, if any.
type MissError struct {
	MD5    string
	Reason string
	Err    error
}

func (e *MissError) Error() string {
	s := fmt.Sprintf("blob %s not restored from the blob tier: %s", e.MD5, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *MissError) Unwrap() error        { return e.Err }
func (e *MissError) Is(target error) bool { return target == ErrMiss }

// Source is a verified-to-exist object of the tier that the download
// engine fetches like an origin URL: ranged, in parallel, with its resume,
// stall detection and MD5 check. Exactly one of Done or Reject must follow.
type Source struct {
	// URL is a presigned GET URL of the object, valid until Expires. It is
	// good for GET only: do not HEAD it (Size and ETag replace the probe).
	// Log it only through download.SafeURL (the query holds a signature).
	URL     string
	Expires time.Time
	// Size of the object (already checked against the expected size and
	// MaxObjectBytes) and its ETag, for If-Range / If-Match on ranges.
	Size int64
	ETag string
	// Client is the one to fetch URL with: the tier's connect timeout,
	// stall budget and (in tests) dialer.
	Client *http.Client
	// StallTimeout is the tier's stall budget (READ_TIMEOUT_SECONDS); use
	// it instead of the engine's own for this source.
	StallTimeout time.Duration
	// MaxAttempts per range before giving up on the tier (the origin is the
	// fallback, so retries here only delay it).
	MaxAttempts int

	t       *Tier
	md5     string
	ticket  Ticket
	settled atomic.Bool
}

// Lookup asks the tier for blob md5 of the expected size (size <= 0:
// unknown). It returns a Source, or a *MissError (matching ErrMiss) saying
// why the origin must be used; it never returns another error, and a
// canceled ctx gives a miss whose Err is ctx's error. One HEAD at most.
func (t *Tier) Lookup(ctx context.Context, md5 string, size int64) (*Source, error) {
	if t == nil || t.off != nil {
		return nil, &MissError{MD5: md5, Reason: "disabled", Err: t.Disabled()}
	}
	if err := blobstore.ValidateMD5(md5); err != nil {
		return nil, &MissError{MD5: md5, Reason: "invalid", Err: err}
	}
	miss := func(reason string, err error) (*Source, error) {
		t.metrics.OriginFallbacks.WithLabelValues(reason).Inc()
		return nil, &MissError{MD5: md5, Reason: reason, Err: err}
	}
	if size > t.store.MaxObjectBytes() {
		return miss(ReasonTooLarge, nil)
	}
	if t.isDistrusted(md5) {
		return miss(ReasonDistrusted, nil)
	}
	tk, ok := t.read.Admit()
	if !ok {
		return miss(ReasonBreakerOpen, nil)
	}
	o, err := t.store.Head(ctx, md5)
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		t.read.Success(tk) // the tier answered
		return miss(ReasonNotFound, nil)
	case err != nil && ctx.Err() != nil:
		t.read.Release(tk)
		return nil, &MissError{MD5: md5, Reason: "canceled", Err: ctx.Err()}
	case err != nil:
		t.failed(t.read, tk, err)
		t.log.Debug("blob tier lookup failed", "blob", md5, "err", err.Error())
		return miss(ReasonError, err)
	case o.Size > t.store.MaxObjectBytes():
		err := fmt.Errorf("object %s has %d bytes, over the %d-byte limit", t.store.Key(md5), o.Size, t.store.MaxObjectBytes())
		t.badObject(tk, md5, err)
		return miss(ReasonTooLarge, err)
	case size > 0 && o.Size != size:
		err := fmt.Errorf("object %s has %d bytes, the blob %d", t.store.Key(md5), o.Size, size)
		t.badObject(tk, md5, err)
		return miss(ReasonSizeMismatch, err)
	}
	// Long enough for a slow restore of the whole object, at 1 MiB/s.
	expiry := 15*time.Minute + time.Duration(o.Size>>20)*time.Second
	u, err := t.store.PresignGet(ctx, md5, expiry)
	if err != nil {
		t.failed(t.read, tk, err)
		return miss(ReasonError, err)
	}
	return &Source{
		URL: u, Expires: time.Now().Add(expiry), Size: o.Size, ETag: o.ETag,
		Client: t.store.HTTPClient(), StallTimeout: t.store.StallTimeout(), MaxAttempts: 2,
		t: t, md5: md5, ticket: tk,
	}, nil
}

// badObject: the object cannot be the blob. It counts as a tier failure (as
// in the reference), is not used again by this process, and the next
// verified upload of the blob replaces it.
func (t *Tier) badObject(tk Ticket, md5 string, err error) {
	t.distrust(md5)
	t.failed(t.read, tk, err)
	t.log.Warn("blob tier object is not the blob it is named after; not trusted, replaced after the origin download",
		"blob", md5, "key", t.store.Key(md5), "err", err.Error())
}

// Refresh returns a freshly presigned URL (for an expired one). It has the
// shape of download.Item.Refresh.
func (s *Source) Refresh(ctx context.Context) (string, error) {
	expiry := 15*time.Minute + time.Duration(s.Size>>20)*time.Second
	u, err := s.t.store.PresignGet(ctx, s.md5, expiry)
	if err != nil {
		return "", err
	}
	return u, nil
}

// Done reports that the engine verified (size and MD5) and published the
// blob, having received n bytes from the tier.
func (s *Source) Done(n int64) {
	if s == nil || !s.settled.CompareAndSwap(false, true) {
		return
	}
	s.t.read.Success(s.ticket)
	s.t.metrics.Restores.Inc()
	s.t.metrics.RestoreBytes.Add(float64(n))
}

// Reject reports that the restore failed with err; the engine then
// discards what it received from this source (its partial included) and
// fetches the blob from the origin. A digest or size mismatch
// (errdefs.ErrDigestMismatch) marks the object corrupt: not used again
// here, replaced by the verified upload after the origin download. A
// cancellation by the caller counts for nothing.
func (s *Source) Reject(err error) {
	if s == nil || !s.settled.CompareAndSwap(false, true) {
		return
	}
	t := s.t
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		t.read.Release(s.ticket)
		return
	}
	t.metrics.OriginFallbacks.WithLabelValues(ReasonRejected).Inc()
	if errors.Is(err, errdefs.ErrDigestMismatch) {
		t.badObject(s.ticket, s.md5, err)
		return
	}
	t.failed(t.read, s.ticket, err)
	t.log.Debug("blob tier restore failed; using the origin", "blob", s.md5, "err", err.Error())
}
