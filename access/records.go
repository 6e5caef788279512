package access

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// Names under H/.meta (this package's own).
const (
	guardDirName    = "guard"
	saltName        = "salt"
	verifiedDirName = "verified"
	recordSuffix    = ".json"
	// metaPerm: readable by every user of a shared cache, like the rest of
	// H/.meta; it holds no secret (key hashes are salted, never keys).
	metaPerm os.FileMode = 0o644
	// maxRecord bounds what is read from a record (real ones are ~200 bytes).
	maxRecord = 4 << 10
	// futureSkew is how far in the future a record's time may be (clocks of
	// hosts sharing a cache differ a little); beyond it the record is void.
	futureSkew = time.Minute
)

// guardDirs computes H/.meta/guard/... and reads and writes there without
// following a symlink at any level below H.
type guardDirs struct{ home layout.Home }

func (d guardDirs) guard() string    { return filepath.Join(d.home.Meta(), guardDirName) }
func (d guardDirs) salt() string     { return filepath.Join(d.guard(), saltName) }
func (d guardDirs) verified() string { return filepath.Join(d.guard(), verifiedDirName) }

// levels are the directories below H, outermost first.
func (d guardDirs) levels() []string { return []string{d.home.Meta(), d.guard(), d.verified()} }

// ensure creates every level, refusing a symlink or non-directory at each.
func (d guardDirs) ensure() error {
	for _, dir := range d.levels() {
		if err := fsx.EnsureDir(dir, 0o777); err != nil {
			return err
		}
	}
	return nil
}

// checkDirs verifies that every level down to dir is a real directory. A
// missing level gives an error matching fs.ErrNotExist.
func (d guardDirs) checkDirs(dir string) error {
	for _, l := range d.levels() {
		fi, err := os.Lstat(l)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return &fsx.UnsafePathError{Op: "use directory", Path: l, Kind: fsx.ErrSymlink}
		}
		if !fi.IsDir() {
			return &fsx.UnsafePathError{Op: "use directory", Path: l, Kind: fsx.ErrNotDir}
		}
		if l == dir {
			return nil
		}
	}
	return nil
}

// read returns at most max bytes of the regular file at path (in the guard
// directory or below), never through a symlink.
func (d guardDirs) read(path string, max int64) ([]byte, error) {
	if err := d.checkDirs(filepath.Dir(path)); err != nil {
		return nil, err
	}
	return fsx.ReadFileNoFollow(path, max)
}

// record is one online verification: key hash, model and time, nothing else.
type record struct {
	KeyHash    string    `json:"key_hash"`
	ModelID    string    `json:"model_id"`
	VerifiedAt time.Time `json:"verified_at"`
}

// records are the on-disk verifications that the offline grace period
// relies on, shared by every process of the cache.
type records struct {
	dirs guardDirs
}

// path names the record of (tenant, model) by a hash of both, so a hostile
// model id never becomes a file name.
func (r *records) path(t tenant, modelID string) string {
	sum := sha256.Sum256([]byte(t.hash + "\x00" + modelID))
	return filepath.Join(r.dirs.verified(), hex.EncodeToString(sum[:])+recordSuffix)
}

// write records that the provider accepted t for modelID at at (atomically:
// readers see the previous record or this one).
func (r *records) write(t tenant, modelID string, at time.Time) error {
	if err := r.dirs.ensure(); err != nil {
		return err
	}
	b, err := json.Marshal(record{KeyHash: t.hash, ModelID: modelID, VerifiedAt: at.UTC()})
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomic(r.path(t, modelID), append(b, '\n'), metaPerm)
}

// RecordError: a verification record exists but cannot be used. It is
// treated as no record (the load is denied while the provider cannot be
// asked) and replaced at the next online verification.
type RecordError struct {
	Path   string
	Reason string
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("guard verification record %s ignored: %s; it is replaced at the next online verification, or remove it", e.Path, e.Reason)
}

// read returns when t was last verified online for modelID (ok false: never,
// or the record is unusable; err says why when it exists).
func (r *records) read(t tenant, modelID string, now time.Time) (at time.Time, ok bool, err error) {
	p := r.path(t, modelID)
	b, err := r.dirs.read(p, maxRecord)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		return time.Time{}, false, &RecordError{Path: p, Reason: "not a record: " + strings.TrimSpace(err.Error())}
	}
	switch {
	case rec.KeyHash != t.hash || rec.ModelID != modelID:
		return time.Time{}, false, &RecordError{Path: p, Reason: "it belongs to another tenant or model"}
	case rec.VerifiedAt.IsZero():
		return time.Time{}, false, &RecordError{Path: p, Reason: "no verification time"}
	case rec.VerifiedAt.After(now.Add(futureSkew)):
		return time.Time{}, false, &RecordError{Path: p, Reason: "its verification time " + rec.VerifiedAt.Format(time.RFC3339) + " is in the future"}
	}
	return rec.VerifiedAt, true, nil
}

// remove deletes the record of (t, modelID): the provider refused the key,
// so no grace period may rely on an older acceptance.
func (r *records) remove(t tenant, modelID string) error {
	p := r.path(t, modelID)
	if err := r.dirs.checkDirs(r.dirs.verified()); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
