// Package offlinereg reads and writes the offline-weights registry
// (offline.md §3, §5): one pretty-printed JSON record per canonical model id
// under <INFERENCE_HOME>/offline-weights-registry/, written during online
// warm-up runs (and by the local TRT installer) and read in OFFLINE_MODE to
// replay the provider metadata of every model that was proven to load here.
//
// Records are byte-compatible with the reference (inference-models 0.36.0):
// the same keys, normal-form PEP 440 versions and json.dumps(indent=2,
// sort_keys=True) bytes, so Python and Go hosts can share one cache. The one
// visible difference is the file mode (0644 instead of the reference's
// temp-file default 0600), so other users can read the records.
//
// Writers take the record's flock (on-disk contract §9) and publish with an
// atomic rename; readers take no lock. Nothing is ever read or written
// through a symlinked registry directory or record (§11.3).
package offlinereg

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/lock"
)

// Record format and sources (offline.md §3.2).
const (
	// FormatVersion is the record format this package writes; readers skip
	// records with a newer one.
	FormatVersion = 1
	// SourceWarmup marks records written by a warm-up load.
	SourceWarmup = "warmup"
	// SourceCLIInstall marks records written by the local TRT package installer.
	SourceCLIInstall = "cli-install"

	// DefaultFileMode is the mode of written records. The reference leaves
	// 0600 (its temp-file default); 0644 lets other users of a shared cache
	// read them and is invisible to reference readers.
	DefaultFileMode os.FileMode = 0o644
	// DefaultDirMode is the mode (before umask) of a created registry directory.
	DefaultDirMode os.FileMode = 0o777
	// DefaultLockTimeout bounds the wait for a record lock (offline.md §3.3).
	DefaultLockTimeout = 20 * time.Second
	// maxRecordSize caps how much of a record file is read; real records are
	// a few KiB per package.
	maxRecordSize = 64 << 20
)

// Options configure a Registry. Zero values take the defaults.
type Options struct {
	// Locker is the process-wide lock table. Every part of a process that
	// locks cache files must share one; nil creates a private Locker.
	Locker *lock.Locker
	// Logger receives the warnings about skipped packages and records; nil
	// means slog.Default().
	Logger *slog.Logger
	// LockTimeout bounds the wait for the record lock (default 20 s).
	LockTimeout time.Duration
	// FileMode of written records (default 0644; 0664 for a group-shared cache).
	FileMode os.FileMode
	// DirMode of a created registry directory, before the umask (default 0777;
	// 02775 for a group-shared cache).
	DirMode os.FileMode
}

// Registry is the offline-weights registry of one cache root. It is safe for
// concurrent use; it holds no state besides its configuration.
type Registry struct {
	home        layout.Home
	locker      *lock.Locker
	log         *slog.Logger
	lockTimeout time.Duration
	fileMode    os.FileMode
	dirMode     os.FileMode
}

// New returns the registry under home.
func New(home layout.Home, opts Options) *Registry {
	r := &Registry{
		home:        home,
		locker:      opts.Locker,
		log:         opts.Logger,
		lockTimeout: opts.LockTimeout,
		fileMode:    opts.FileMode,
		dirMode:     opts.DirMode,
	}
	if r.locker == nil {
		r.locker = lock.NewLocker(lock.Options{Logger: opts.Logger})
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.lockTimeout <= 0 {
		r.lockTimeout = DefaultLockTimeout
	}
	if r.fileMode == 0 {
		r.fileMode = DefaultFileMode
	}
	if r.dirMode == 0 {
		r.dirMode = DefaultDirMode
	}
	return r
}

// Dir returns the registry directory.
func (r *Registry) Dir() string { return r.home.OfflineRegistry() }

// RecordPath returns the file that holds the record of canonicalModelID:
// <Dir>/<slug(canonicalModelID)>.json.
func (r *Registry) RecordPath(canonicalModelID string) (string, error) {
	p, err := r.home.OfflineRecordPath(canonicalModelID)
	if err != nil {
		return "", fmt.Errorf("offline registry: record path for %q: %w", canonicalModelID, err)
	}
	return p, nil
}
