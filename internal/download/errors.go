package download

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/errdefs"
)

// Every error names the file (Name: the file handle, else the MD5) and the
// URL as scheme://host/path only: signed-URL query strings and API keys never
// reach an error or a log line (lessons K6).
//
// The typed errors have value receivers for Error and a pointer-receiver As,
// so both errors.As(err, &ptr) with ptr of type *XError and
// errors.As(err, &XError{}) work.

// asValue implements As for the typed errors below.
func asValue[T any](e *T, target any) bool {
	if t, ok := target.(*T); ok && t != nil {
		*t = *e
		return true
	}
	return false
}

// OfflineError: the file is missing and OFFLINE_MODE forbids the network.
type OfflineError struct {
	Name    string
	Missing int // files missing in the batch
}

func (e OfflineError) Error() string {
	return fmt.Sprintf("Cannot download files - OFFLINE_MODE is enabled. All model weights must be pre-cached locally. "+
		"(%d file(s) missing, first: %s)", e.Missing, e.Name)
}
func (e *OfflineError) As(t any) bool { return asValue(e, t) }
func (e OfflineError) Unwrap() error  { return errdefs.ErrOffline }

// HTTPError: a status that is not retried (or a retryable one after 401/403
// refresh failed). Permanent for this call.
type HTTPError struct {
	Name, URL string
	Status    int
	Range     string // "bytes=a-b" when the request was ranged
}

func (e HTTPError) Error() string {
	s := fmt.Sprintf("download %s from %s: HTTP %d %s", e.Name, e.URL, e.Status, statusText(e.Status))
	if e.Range != "" {
		s += " for " + e.Range
	}
	return s
}
func (e *HTTPError) As(t any) bool { return asValue(e, t) }

// RetryError: a transient condition (connection errors, resets, truncated
// bodies, retryable statuses, stalls) outlasted its retry budget: the
// attempt count, or the retry deadline (Deadline, when Elapsed reached it).
type RetryError struct {
	Name, URL string
	Range     string
	Attempts  int
	Status    int // last retryable status, 0 if the last failure was not a status
	Err       error
	// Deadline is the file's retry deadline (MODELCACHE_DOWNLOAD_RETRY_DEADLINE;
	// 0: none); Elapsed is how long the file had gone without a byte when
	// it gave up.
	Deadline, Elapsed time.Duration
}

func (e RetryError) Error() string {
	what := "connectivity error"
	if e.Status != 0 {
		what = fmt.Sprintf("HTTP %d %d consecutive time(s) without progress", e.Status, e.Attempts)
	}
	s := fmt.Sprintf("download %s from %s: %s; gave up after %d attempt(s)", e.Name, e.URL, what, e.Attempts)
	if e.Deadline > 0 && e.Elapsed >= e.Deadline {
		s += fmt.Sprintf(" and %s without receiving a byte (the retry deadline %s, %s)",
			e.Elapsed.Round(time.Millisecond), e.Deadline, config.EnvDownloadRetryDeadline)
	}
	if e.Range != "" {
		s += " for " + e.Range
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// PermanentError: a request that no retry can fix, failed at once: a
// malformed URL, a scheme other than http(s) (also as a redirect target), a
// redirect loop or more than 10 redirects, a TLS certificate the system does
// not trust.
type PermanentError struct {
	Name, URL string
	Reason    string
}

func (e PermanentError) Error() string {
	return fmt.Sprintf("download %s from %s: %s; not retried (no retry can fix this: check the URL the provider returned, or the server)",
		e.Name, e.URL, e.Reason)
}
func (e *PermanentError) As(t any) bool { return asValue(e, t) }
func (e *RetryError) As(t any) bool     { return asValue(e, t) }
func (e RetryError) Unwrap() error      { return e.Err }

// RangeNotSupportedError: the server answered a ranged request with a full
// body (200). The file was then fetched as one stream; this error is
// returned only when that fallback failed too (Fallback).
type RangeNotSupportedError struct {
	Name, URL string
	Status    int
	Fallback  error
}

func (e RangeNotSupportedError) Error() string {
	return fmt.Sprintf("download %s from %s: the server ignores byte ranges (answered %d instead of 206), and the single-stream fallback failed: %v",
		e.Name, e.URL, e.Status, e.Fallback)
}
func (e *RangeNotSupportedError) As(t any) bool { return asValue(e, t) }
func (e RangeNotSupportedError) Unwrap() error  { return e.Fallback }

// StallError: streams of one file stalled more often than the per-file cap.
type StallError struct {
	Name, URL string
	Stalls    int
	Timeout   time.Duration
}

func (e StallError) Error() string {
	return fmt.Sprintf("download %s from %s: no data for %s on %d occasions; the server or network is stalling (CHUNK_DOWNLOAD_READ_TIMEOUT sets the stall timeout)",
		e.Name, e.URL, e.Timeout, e.Stalls)
}
func (e *StallError) As(t any) bool { return asValue(e, t) }

// DigestMismatchError: the downloaded bytes do not hash to the expected MD5.
// Nothing was published and the temp file was removed; a later call starts
// clean.
type DigestMismatchError struct {
	Name, URL        string
	Expected, Actual string
	Size             int64
}

func (e DigestMismatchError) Error() string {
	return fmt.Sprintf("Could not confirm the validity of file content for %s from %s: expected MD5 %s, calculated %s over %d bytes; nothing was stored",
		e.Name, e.URL, e.Expected, e.Actual, e.Size)
}
func (e *DigestMismatchError) As(t any) bool { return asValue(e, t) }
func (e DigestMismatchError) Unwrap() error  { return errdefs.ErrDigestMismatch }

// SizeMismatchError: the body length differs from the announced size.
type SizeMismatchError struct {
	Name, URL        string
	Expected, Actual int64
}

func (e SizeMismatchError) Error() string {
	return fmt.Sprintf("download %s from %s: expected %d bytes, got %d; nothing was stored", e.Name, e.URL, e.Expected, e.Actual)
}
func (e *SizeMismatchError) As(t any) bool { return asValue(e, t) }

// DiskError: writing failed for lack of space or permission (ENOSPC, EDQUOT,
// EROFS, EACCES), the free-space check failed before starting (Need), or a
// download of unknown size ate into the free-space reserve (Reserve). The
// batch was aborted and the temp files removed.
type DiskError struct {
	Path    string
	What    string // what needed the space: a file, or the files of a batch
	Op      string
	Written int64 // bytes written to Path before the failure
	Need    int64 // for the pre-flight check: Missing bytes plus the reserve
	Missing int64
	Reserve int64 // for a download of unknown size: the reserve it reached
	Free    int64
	Err     error
}

func (e DiskError) Error() string {
	switch {
	case e.Need > 0:
		return fmt.Sprintf("not enough disk space for %s: need %s (%s to download + %s reserve, %s), free %s on the filesystem of %s",
			e.What, mib(e.Need), mib(e.Missing), mib(e.Need-e.Missing), config.EnvDiskReservePercent, mib(e.Free), e.Path)
	case e.Reserve > 0:
		return fmt.Sprintf("download %s stopped after %s of unknown total size: the filesystem of %s has %s free, below the reserve of %s (%s); "+
			"nothing was kept", e.What, mib(e.Written), e.Path, mib(e.Free), mib(e.Reserve), config.EnvDiskReservePercent)
	}
	return fmt.Sprintf("%s %s failed after %s: %v; the download was aborted and its temp files removed", e.Op, e.Path, mib(e.Written), e.Err)
}
func (e *DiskError) As(t any) bool { return asValue(e, t) }
func (e DiskError) Unwrap() error  { return e.Err }

// SizeLimitError: nobody announced the file's size (no size from the
// provider or the HEAD, no Content-Length) and the body went on past
// MODELCACHE_DOWNLOAD_MAX_UNKNOWN_SIZE. Nothing was kept.
type SizeLimitError struct {
	Name, URL string
	Limit     int64
	Written   int64
}

func (e SizeLimitError) Error() string {
	return fmt.Sprintf("download %s from %s: the server announced no size and sent more than %s (%s caps downloads of unknown size); nothing was kept",
		e.Name, e.URL, mib(e.Limit), config.EnvDownloadMaxUnknownSize)
}
func (e *SizeLimitError) As(t any) bool { return asValue(e, t) }

// WaitTimeoutError: another process held the blob lock without visible
// progress for the whole lock timeout (U16).
type WaitTimeoutError struct {
	Name, Lock   string
	Waited       time.Duration
	Timeout      time.Duration
	HolderBytes  int64 // bytes the holder had on disk when we gave up
	HolderSize   int64 // -1 unknown
	LastProgress time.Duration
}

func (e WaitTimeoutError) Error() string {
	return fmt.Sprintf("gave up waiting for %s after %s: lock %s is held by another process that made no progress for %s (%s of %s on disk); "+
		"stop it if it is stuck, or raise INFERENCE_MODELS_FILE_LOCK_ACQUIRE_TIMEOUT (seconds) if it is slow but alive",
		e.Name, e.Waited.Round(time.Millisecond), e.Lock, e.LastProgress.Round(time.Millisecond), mib(e.HolderBytes), sizeText(e.HolderSize))
}
func (e *WaitTimeoutError) As(t any) bool { return asValue(e, t) }
func (e WaitTimeoutError) Unwrap() error  { return errdefs.ErrLockTimeout }

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return "(" + t + ")"
	}
	return ""
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func sizeText(n int64) string {
	if n < 0 {
		return "unknown size"
	}
	return mib(n)
}

// safeURL returns scheme://host/path of raw: no user info, query or
// fragment, which may carry signatures or keys.
func safeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "<unparseable URL>"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// scrubURLError replaces the full URL that net/http puts into *url.Error.
func scrubURLError(err error, safe string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: safe, Err: ue.Err}
	}
	return err
}

// isDiskFatal reports write errors that no retry can fix and that stop the
// whole batch (download.md §2.5).
func isDiskFatal(err error) bool {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return errors.Is(err, fs.ErrPermission)
	}
	switch errno {
	case syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM:
		return true
	}
	return false
}

// blobMismatch converts the blob store's verdicts into ours (with URL and name).
func convertCommitError(err error, name, safe string) error {
	var dm *blobstore.DigestMismatchError
	if errors.As(err, &dm) {
		return &DigestMismatchError{Name: name, URL: safe, Expected: dm.Expected, Actual: dm.Actual, Size: dm.Size}
	}
	var sm *blobstore.SizeMismatchError
	if errors.As(err, &sm) {
		return &SizeMismatchError{Name: name, URL: safe, Expected: sm.Expected, Actual: sm.Actual}
	}
	return err
}
