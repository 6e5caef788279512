package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
)

// Variables of the download engine's bounds: modelcache's own (the
// reference has no such bounds), documented in docs/download.md.
const (
	EnvDownloadRetryDeadline  = "MODELCACHE_DOWNLOAD_RETRY_DEADLINE"
	EnvDownloadMaxUnknownSize = "MODELCACHE_DOWNLOAD_MAX_UNKNOWN_SIZE"
	EnvDiskReservePercent     = "MODELCACHE_DISK_RESERVE_PERCENT"
)

// DownloadLimits bound what one download may cost when the server or the
// disk misbehaves.
type DownloadLimits struct {
	// RetryDeadline is how long one file may keep retrying transient
	// failures (connection errors, retryable statuses, stalls) without
	// receiving a byte before it fails; any byte received restarts it.
	// <= 0: only the attempt counts bound the retries.
	RetryDeadline time.Duration
	// MaxUnknownSize caps a download whose size nobody announced (no HEAD
	// size, no Content-Length, no size from the provider): past it the
	// download fails and nothing is kept.
	MaxUnknownSize int64
	// DiskReservePercent is the free space a pull leaves on the cache's
	// filesystem beyond the bytes it needs, as a percentage of those bytes
	// (plus 1 MiB for the records written beside them).
	DiskReservePercent float64
}

// DefaultDownloadLimits returns the limits of an empty environment.
func DefaultDownloadLimits() DownloadLimits {
	return DownloadLimits{RetryDeadline: 10 * time.Minute, MaxUnknownSize: 32 << 30, DiskReservePercent: 1}
}

func (r *reader) downloadLimits() DownloadLimits {
	l := DefaultDownloadLimits()
	l.RetryDeadline = r.floatSeconds(EnvDownloadRetryDeadline, l.RetryDeadline)
	l.MaxUnknownSize = r.size(EnvDownloadMaxUnknownSize, l.MaxUnknownSize)
	l.DiskReservePercent = r.percent(EnvDiskReservePercent, l.DiskReservePercent)
	return l
}

const acceptSize = `a size in bytes with an optional unit, e.g. 34359738368, 32GiB, 500 MB (KiB/MiB/GiB/TiB are powers of 1024, kB/MB/GB/TB of 1000), at least 1 byte`

// size reads a byte count such as "32GiB" (go-humanize's units).
func (r *reader) size(name string, def int64) int64 {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	n, err := humanize.ParseBytes(strings.TrimSpace(v))
	if err != nil || n == 0 || n > math.MaxInt64 {
		r.fail(invalid(name, v, acceptSize))
		return def
	}
	return int64(n)
}

// percent reads a finite number in [0, 100].
func (r *reader) percent(name string, def float64) float64 {
	v, ok := r.env(name)
	if !ok {
		return def
	}
	f, ok := parseFloat(v)
	if !ok || math.IsNaN(f) || f < 0 || f > 100 {
		r.fail(invalid(name, v, fmt.Sprintf("a percentage from 0 to 100 (%s)", acceptFloat)))
		return def
	}
	return f
}
