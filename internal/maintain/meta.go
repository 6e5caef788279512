package maintain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// Names under H/.meta (on-disk contract §12).
const (
	lastUsedDir = "last-used"
	verifiedDir = "verified"
	leasesDir   = "leases"
	// metaPerm: bookkeeping is readable by every user of a shared cache, as
	// manifests and entries are (§3).
	metaPerm os.FileMode = 0o644
	// maxMetaFile bounds what is read from a stamp or lease; real ones are a
	// few hundred bytes.
	maxMetaFile = 1 << 20
)

// ensureMetaDir creates H/.meta/<sub...> one level at a time, refusing a
// symlink at every level so that bookkeeping never lands outside H.
func ensureMetaDir(home layout.Home, sub ...string) (string, error) {
	dir := home.Meta()
	if err := fsx.EnsureDir(dir, 0o777); err != nil {
		return "", err
	}
	for _, s := range sub {
		dir = filepath.Join(dir, s)
		if err := fsx.EnsureDir(dir, 0o777); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// metaDirNoFollow returns H/.meta/<sub...> if every level is a real
// directory; (“”, nil) when a level is missing.
func metaDirNoFollow(home layout.Home, sub ...string) (string, error) {
	dir := home.Meta()
	levels := append([]string{""}, sub...)
	for i, s := range levels {
		if i > 0 {
			dir = filepath.Join(dir, s)
		}
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		if !fi.IsDir() {
			return "", &fsx.UnsafePathError{Op: "read", Path: dir, Kind: kindOf(fi)}
		}
	}
	return dir, nil
}

func kindOf(fi fs.FileInfo) error {
	if fi.Mode()&fs.ModeSymlink != 0 {
		return fsx.ErrSymlink
	}
	if fi.IsDir() {
		return fsx.ErrNotRegular
	}
	return fsx.ErrNotDir
}

// LastUsedPath returns H/.meta/last-used/<slug(modelID)>/<packageID>.
func LastUsedPath(home layout.Home, modelID, packageID string) (string, error) {
	if err := layout.ValidatePackageID(packageID); err != nil {
		return "", err
	}
	slug, err := layout.Slug(modelID)
	if err != nil {
		return "", err
	}
	return filepath.Join(home.Meta(), lastUsedDir, slug, packageID), nil
}

// TouchLastUsed records a successful load of packageID of modelID (the
// package's cache owner, as its directory is named): the stamp's mtime becomes
// now. atime is unreliable (noatime, relatime), hence a file of our own.
// Callers skip it in OFFLINE_MODE (offline.md §7) and only log its errors: a
// stamp must never fail a load.
func TouchLastUsed(home layout.Home, modelID, packageID string) error {
	p, err := LastUsedPath(home, modelID, packageID)
	if err != nil {
		return err
	}
	slug := filepath.Base(filepath.Dir(p))
	if _, err := ensureMetaDir(home, lastUsedDir, slug); err != nil {
		return fmt.Errorf("last-used stamp for %s/%s: %w", modelID, packageID, err)
	}
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscallNoFollow, metaPerm)
		if errors.Is(err, fs.ErrExist) {
			break // a concurrent load created it; touch below
		}
		if err != nil {
			return fmt.Errorf("last-used stamp %s: %w", p, err)
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("last-used stamp %s: %w", p, err)
	case !fi.Mode().IsRegular():
		return &fsx.UnsafePathError{Op: "touch", Path: p, Kind: kindOf(fi)}
	}
	now := time.Now()
	// Chtimes follows a symlink; lstat right before narrows that to a race
	// that can only change the times of the link's target, never its bytes.
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			err = &fsx.UnsafePathError{Op: "touch", Path: p, Kind: kindOf(fi)}
		}
		return err
	}
	if err := os.Chtimes(p, now, now); err != nil {
		return fmt.Errorf("last-used stamp %s: %w", p, err)
	}
	return nil
}

// LastUsed returns the time of the last recorded load of a package.
func LastUsed(home layout.Home, modelID, packageID string) (time.Time, bool, error) {
	p, err := LastUsedPath(home, modelID, packageID)
	if err != nil {
		return time.Time{}, false, err
	}
	return lastUsedAt(p)
}

func lastUsedAt(p string) (time.Time, bool, error) {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, err
	}
	if !fi.Mode().IsRegular() {
		return time.Time{}, false, &fsx.UnsafePathError{Op: "read", Path: p, Kind: kindOf(fi)}
	}
	return fi.ModTime(), true, nil
}

// VerifiedStamp is H/.meta/verified/<md5> (§12): the identity of a blob file
// whose MD5 (and SHA-256) were last checked, so that an incremental verify
// does not re-read it while (size, mtime_ns, ino) are unchanged.
type VerifiedStamp struct {
	Size       int64  `json:"size"`
	MtimeNS    int64  `json:"mtime_ns"`
	Ino        uint64 `json:"ino"`
	MD5        string `json:"md5"`
	SHA256     string `json:"sha256"`
	VerifiedAt string `json:"verified_at"`
}

// NewVerifiedStamp builds the stamp of a blob whose bytes (identity id) were
// hashed at now, e.g. from blobfs.PutResult (File, SHA256).
func NewVerifiedStamp(md5, sha256 string, id fsx.FileID, now time.Time) VerifiedStamp {
	return VerifiedStamp{
		Size: id.Size, MtimeNS: id.MtimeNS, Ino: id.Ino, MD5: md5, SHA256: sha256,
		VerifiedAt: offlinereg.FormatTimestamp(now),
	}
}

// Matches reports whether the stamp still describes the file id: same inode,
// size and mtime. A rewrite in place changes mtime; a replacement the inode.
func (s VerifiedStamp) Matches(id fsx.FileID) bool {
	return s.Size == id.Size && s.MtimeNS == id.MtimeNS && s.Ino == id.Ino
}

// VerifiedStampPath returns H/.meta/verified/<md5>.
func VerifiedStampPath(home layout.Home, md5 string) (string, error) {
	if err := blobstore.ValidateMD5(md5); err != nil {
		return "", err
	}
	return filepath.Join(home.Meta(), verifiedDir, md5), nil
}

// WriteVerifiedStamp stores s atomically. Skip it in OFFLINE_MODE.
func WriteVerifiedStamp(home layout.Home, s VerifiedStamp) error {
	p, err := VerifiedStampPath(home, s.MD5)
	if err != nil {
		return err
	}
	if _, err := ensureMetaDir(home, verifiedDir); err != nil {
		return fmt.Errorf("verified stamp for %s: %w", s.MD5, err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	if err := fsx.WriteFileAtomic(p, data, metaPerm); err != nil {
		return fmt.Errorf("verified stamp for %s: %w", s.MD5, err)
	}
	return nil
}

// ReadVerifiedStamp returns the stamp of md5; ok is false when there is none
// or it is unreadable (a bad stamp only costs a re-hash).
func ReadVerifiedStamp(home layout.Home, md5 string) (s VerifiedStamp, ok bool, err error) {
	p, err := VerifiedStampPath(home, md5)
	if err != nil {
		return s, false, err
	}
	data, err := readSmallNoFollow(p)
	if err != nil {
		return s, false, nil
	}
	if json.Unmarshal(data, &s) != nil || s.MD5 != md5 {
		return VerifiedStamp{}, false, nil
	}
	return s, true, nil
}

// RemoveVerifiedStamp deletes the stamp of md5 (after the blob went away or
// failed verification).
func RemoveVerifiedStamp(home layout.Home, md5 string) error {
	p, err := VerifiedStampPath(home, md5)
	if err != nil {
		return err
	}
	if dir, err := metaDirNoFollow(home, verifiedDir); err != nil || dir == "" {
		return err
	}
	return removeRegular(p)
}

// removeRegular unlinks p if it is a regular file (a symlink or directory at
// the name is left alone and reported); a missing file is not an error.
func removeRegular(p string) error {
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return &fsx.UnsafePathError{Op: "remove", Path: p, Kind: kindOf(fi)}
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func readSmallNoFollow(p string) ([]byte, error) {
	f, err := fsx.OpenNoFollow(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, maxMetaFile))
}

// Lease is H/.meta/leases/<token>.json (§12): work in flight (a download, a
// materialization, an export) that GC must not collect from under it, and
// that Purge does not remove.
type Lease struct {
	PID       int      `json:"pid"`
	Host      string   `json:"host"`
	StartedAt string   `json:"started_at"`
	ExpiresAt string   `json:"expires_at"`
	Blobs     []string `json:"blobs"`
	// Packages are "<model id>/<package id>" (the cache owner's id) or
	// absolute package dirs.
	Packages []string `json:"packages"`
	// Path of the lease file (not stored).
	Path string `json:"-"`
}

// Expired reports whether the lease no longer protects anything at now; a
// lease without a parsable expires_at protects nothing.
func (l *Lease) Expired(now time.Time) bool {
	t, ok := offlinereg.ParseTimestamp(l.ExpiresAt)
	return !ok || !now.Before(t)
}

// CreateLease writes a lease protecting blobs and packages until now+ttl and
// returns a function that removes it. Refresh a long operation by creating a
// new lease before the old one expires.
func CreateLease(home layout.Home, blobs, packages []string, ttl time.Duration) (release func() error, err error) {
	for _, b := range blobs {
		if err := blobstore.ValidateMD5(b); err != nil {
			return nil, err
		}
	}
	dir, err := ensureMetaDir(home, leasesDir)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	tok, err := fsx.HexToken()
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	l := Lease{
		PID: os.Getpid(), Host: host,
		StartedAt: offlinereg.FormatTimestamp(now), ExpiresAt: offlinereg.FormatTimestamp(now.Add(ttl)),
		Blobs: append([]string{}, blobs...), Packages: append([]string{}, packages...),
	}
	data, err := json.Marshal(l)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, tok+".json")
	if err := fsx.WriteFileAtomic(p, data, metaPerm); err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	return func() error { return removeRegular(p) }, nil
}

// ReadLeases returns every readable lease (expired ones too; callers filter
// with Expired) and the paths of unreadable ones.
func ReadLeases(ctx context.Context, home layout.Home) (leases []Lease, bad []string, err error) {
	dir, err := metaDirNoFollow(home, leasesDir)
	if err != nil || dir == "" {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		name := e.Name()
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			continue
		}
		p := filepath.Join(dir, name)
		data, err := readSmallNoFollow(p)
		var l Lease
		if err != nil || json.Unmarshal(data, &l) != nil {
			bad = append(bad, p)
			continue
		}
		l.Path = p
		leases = append(leases, l)
	}
	sort.Slice(leases, func(i, j int) bool { return leases[i].Path < leases[j].Path })
	return leases, bad, nil
}

// errOffline is returned by every operation that would write under H while
// OFFLINE_MODE is on.
func errOffline(op string) error {
	return fmt.Errorf("%s: %w: OFFLINE_MODE is on, and nothing under INFERENCE_HOME is changed then; run it online", op, errdefs.ErrOffline)
}
