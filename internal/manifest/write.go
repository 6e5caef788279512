package manifest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// DefaultPerm is the mode of manifests we write. Improvement (compatible):
// the reference leaves 0600; readers only need read access (§3).
const DefaultPerm os.FileMode = 0o644

// maxManifestSize bounds what we read into memory: a manifest is a few KiB;
// anything near this is not one.
const maxManifestSize = 64 << 20

// WriteOptions configure Write.
type WriteOptions struct {
	// Locker takes .model_config.json.lock. Share one Locker per process; nil
	// makes a private one with the default timeout (flock still excludes
	// other processes, but not other Lockers' goroutines on NFS).
	Locker *lock.Locker
	// Perm of a newly written manifest; 0 means DefaultPerm (0644).
	Perm os.FileMode
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// WriteResult describes what Write did.
type WriteResult struct {
	// ContentHash is the manifest_content_hash of the file now on disk.
	ContentHash string
	// Written is false when an identical v4 manifest was already present
	// and left untouched (same bytes, inode and mtime).
	Written bool
	// Upgraded is true when a legacy manifest was rewritten as v4.
	Upgraded bool
}

// Path returns <pkgDir>/model_config.json.
func Path(pkgDir string) string { return filepath.Join(pkgDir, FileName) }

// LockPath returns <pkgDir>/.model_config.json.lock.
func LockPath(pkgDir string) string { return filepath.Join(pkgDir, LockName) }

// Write publishes s as pkgDir's manifest (§6.5). Call it only after the model
// was constructed successfully: the manifest marks the package complete.
//
//  1. Both ids must be non-blank and the document must pass the strict reader;
//     a symlinked package dir, manifest or lock is refused.
//  2. Under .model_config.json.lock, an existing file must be a JSON object;
//     if it has a model_id / canonical_model_id key (even null), the value
//     must equal the new one.
//  3. An existing v4 manifest must equal s field by field (Python ==); if it
//     does, it is not rewritten.
//  4. Otherwise (absent or legacy) the existing object is kept, the 15 keys
//     set (existing keys keep their position, new ones are appended), and
//     the result written atomically.
func Write(ctx context.Context, pkgDir string, s *Spec, opts WriteOptions) (WriteResult, error) {
	if err := ctx.Err(); err != nil {
		return WriteResult{}, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	perm := opts.Perm
	if perm == 0 {
		perm = DefaultPerm
	}
	locker := opts.Locker
	if locker == nil {
		locker = lock.NewLocker(lock.Options{Logger: log})
	}
	if err := s.Validate(); err != nil {
		return WriteResult{}, err
	}
	newDoc := s.Document()

	if err := checkPackageDir(pkgDir); err != nil {
		return WriteResult{}, err
	}
	mpath, lpath := Path(pkgDir), LockPath(pkgDir)
	for _, p := range []struct{ path, what string }{{mpath, "manifest"}, {lpath, "manifest lock"}} {
		if err := refuseSymlink(p.path, p.what); err != nil {
			return WriteResult{}, err
		}
	}

	held, err := locker.Lock(ctx, lpath)
	if err != nil {
		return WriteResult{}, lockError(lpath, err)
	}
	defer func() {
		if uerr := held.Unlock(); uerr != nil {
			log.Warn("releasing manifest lock failed", "lock", lpath, "err", uerr)
		}
	}()

	existing, err := readObject(mpath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return WriteResult{}, err
	}

	var out *pyjson.Object
	upgraded := false
	if existing == nil {
		out = newDoc
	} else {
		if err := checkOwner(pkgDir, existing, s, idsWriter); err != nil {
			return WriteResult{}, err
		}
		if isV4(existing) {
			if diffs := differingFields(existing, newDoc, fieldOrder()); len(diffs) > 0 {
				return WriteResult{}, refusal(ProvenanceMismatch, pkgDir, existing, newDoc, diffs)
			}
			h, err := ContentHashOf(existing)
			if err != nil {
				return WriteResult{}, err
			}
			log.Debug("manifest already published and identical; left untouched", "path", mpath)
			return WriteResult{ContentHash: h, Written: false}, nil
		}
		out = existing.Clone()
		for _, k := range fieldOrder() {
			v, _ := newDoc.Get(k)
			out.Set(k, v)
		}
		upgraded = true
	}

	data, err := pyjson.Marshal(out)
	if err != nil {
		return WriteResult{}, &CorruptError{Path: mpath, Reason: "cannot serialize the manifest", Err: err}
	}
	h, err := ContentHashOf(out)
	if err != nil {
		return WriteResult{}, err
	}
	if err := fsx.WriteFileAtomic(mpath, data, perm); err != nil {
		if errors.Is(err, fsx.ErrSymlink) {
			return WriteResult{}, &SymlinkError{Path: mpath, What: "manifest"}
		}
		return WriteResult{}, fmt.Errorf("write manifest %s: %w", mpath, err)
	}
	log.Debug("published package manifest", "path", mpath, "manifest_content_hash", h, "upgraded_legacy", upgraded)
	return WriteResult{ContentHash: h, Written: true, Upgraded: upgraded}, nil
}

// Read reads and strictly parses <pkgDir>/model_config.json without following
// a symlink. A missing manifest gives an error matching fs.ErrNotExist.
func Read(ctx context.Context, pkgDir string) (*Manifest, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	mpath := Path(pkgDir)
	data, err := readNoFollow(mpath)
	if err != nil {
		return nil, err
	}
	m, err := Parse(data)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Path = mpath
		}
		return nil, err
	}
	return m, nil
}

// Stage selects what the §6.7 guard compares.
type Stage int

const (
	// BeforeMaterialization compares declarations (artefacts without their
	// SHA-256), dependency identities and fields 2–11.
	BeforeMaterialization Stage = iota + 1
	// AfterMaterialization also compares the full artefact identities.
	AfterMaterialization
)

// GuardResult describes the manifest the guard found.
type GuardResult struct {
	// Present: a manifest file exists.
	Present bool
	// Complete: it is a v4 manifest (the package was published).
	Complete bool
}

// Guard is the attribution and immutability guard (§6.7), run before and
// after materialization, under the caller's materialization lock. A missing
// manifest passes. A symlinked, non-regular, undecodable or non-object
// manifest is an error. A present model_id / canonical_model_id must equal
// want's (null passes). A v4 manifest must moreover carry both ids and equal
// want in fields 2–11, declarations (all artefact fields when stage is
// AfterMaterialization) and dependency identities: a published package id
// is immutable. Legacy manifests get the id checks only (Write upgrades them).
func Guard(ctx context.Context, pkgDir string, want *Spec, stage Stage) (GuardResult, error) {
	if err := ctx.Err(); err != nil {
		return GuardResult{}, err
	}
	mpath := Path(pkgDir)
	existing, err := readObject(mpath)
	if errors.Is(err, fs.ErrNotExist) {
		return GuardResult{}, nil
	}
	if err != nil {
		return GuardResult{}, err
	}
	res := GuardResult{Present: true, Complete: isV4(existing)}
	mode := idsGuardLegacy
	if res.Complete {
		mode = idsGuardV4
	}
	if err := checkOwner(pkgDir, existing, want, mode); err != nil {
		return res, err
	}
	if !res.Complete {
		return res, nil
	}
	newDoc := want.Document()
	fields := append(provenanceFields(), "dependency_package_paths")
	diffs := differingFields(existing, newDoc, fields)
	cmpArts := func(o *pyjson.Object) any { v, _ := o.Get("package_artifacts"); return v }
	if stage != AfterMaterialization {
		cmpArts = func(o *pyjson.Object) any { return withoutSHA256(mustGet(o, "package_artifacts")) }
	}
	if !pyjson.Equal(cmpArts(existing), cmpArts(newDoc)) || !existing.Has("package_artifacts") {
		diffs = append(diffs, "package_artifacts")
	}
	if len(diffs) > 0 {
		return res, refusal(Mutation, pkgDir, existing, newDoc, orderFields(diffs))
	}
	return res, nil
}

// idMode selects which id rule checkOwner applies.
type idMode int

const (
	// idsWriter (§6.5 step 2): a present key, even null, must equal.
	idsWriter idMode = iota
	// idsGuardLegacy (§6.7): a present non-null value must equal; null passes.
	idsGuardLegacy
	// idsGuardV4 (§6.7): both ids must be present and equal.
	idsGuardV4
)

func checkOwner(pkgDir string, existing *pyjson.Object, s *Spec, mode idMode) error {
	for _, c := range []struct {
		key  string
		want string
		kind RefusalKind
	}{{"model_id", s.ModelID, OwnerMismatch}, {"canonical_model_id", s.CanonicalModelID, CanonicalMismatch}} {
		v, ok := existing.Get(c.key)
		switch {
		case ok && pyjson.Equal(v, c.want):
			continue
		case !ok && mode != idsGuardV4:
			continue
		case ok && v == nil && mode == idsGuardLegacy:
			continue
		}
		return &RefusalError{Kind: c.kind, PackageDir: absOrSelf(pkgDir), Field: c.key, Cached: v, CachedMissing: !ok, New: c.want, Fields: []string{c.key}}
	}
	return nil
}

func isV4(o *pyjson.Object) bool {
	v, ok := o.Get("offline_manifest_version")
	return ok && pyjson.Equal(v, pyjson.NewInt(Version))
}

func differingFields(existing, newDoc *pyjson.Object, fields []string) []string {
	var diffs []string
	for _, k := range fields {
		ev, ok := existing.Get(k)
		nv, _ := newDoc.Get(k)
		if !ok || !pyjson.Equal(ev, nv) {
			diffs = append(diffs, k)
		}
	}
	return diffs
}

func orderFields(diffs []string) []string {
	set := map[string]bool{}
	for _, d := range diffs {
		set[d] = true
	}
	var out []string
	for _, k := range fieldOrder() {
		if set[k] {
			out = append(out, k)
		}
	}
	return out
}

func refusal(kind RefusalKind, pkgDir string, existing, newDoc *pyjson.Object, diffs []string) *RefusalError {
	f := diffs[0]
	cached, ok := existing.Get(f)
	nv, _ := newDoc.Get(f)
	return &RefusalError{Kind: kind, PackageDir: absOrSelf(pkgDir), Field: f, Cached: cached, CachedMissing: !ok, New: nv, Fields: diffs}
}

// withoutSHA256 returns the artefact list with every sha256_hash key removed
// (the declaration view); non-list values are returned unchanged.
func withoutSHA256(v any) any {
	list, ok := v.([]any)
	if !ok {
		return v
	}
	out := make([]any, len(list))
	for i, it := range list {
		if o, ok := it.(*pyjson.Object); ok {
			c := o.Clone()
			c.Delete("sha256_hash")
			out[i] = c
		} else {
			out[i] = it
		}
	}
	return out
}

func absOrSelf(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

func checkPackageDir(pkgDir string) error {
	fi, err := os.Lstat(pkgDir)
	if err != nil {
		return fmt.Errorf("package directory %s: %w", pkgDir, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &SymlinkError{Path: pkgDir, What: "package directory"}
	}
	if !fi.IsDir() {
		return &CorruptError{Path: pkgDir, Reason: "the package path is not a directory"}
	}
	return nil
}

func refuseSymlink(path, what string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return &SymlinkError{Path: path, What: what}
	}
	return nil
}

func lockError(lpath string, err error) error {
	switch {
	case errors.Is(err, fsx.ErrSymlink):
		return &SymlinkError{Path: lpath, What: "manifest lock"}
	case errors.Is(err, errdefs.ErrLockTimeout):
		return err
	}
	var te *lock.TimeoutError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %w", errdefs.ErrLockTimeout, err)
	}
	return fmt.Errorf("lock %s: %w", lpath, err)
}

// readNoFollow reads a regular file without following a symlink at its last
// component.
func readNoFollow(path string) ([]byte, error) {
	data, err := fsx.ReadFileNoFollow(path, maxManifestSize)
	var tl *fsx.TooLargeError
	switch {
	case err == nil:
		return data, nil
	case errors.Is(err, fsx.ErrSymlink):
		return nil, &SymlinkError{Path: path, What: "manifest"}
	case errors.Is(err, fsx.ErrNotRegular):
		return nil, &CorruptError{Path: path, Reason: "the manifest is not a regular file", Err: err}
	case errors.As(err, &tl):
		return nil, &CorruptError{Path: path, Reason: "the manifest is implausibly large"}
	}
	return nil, fmt.Errorf("read %s: %w", path, err)
}

// readObject reads path and decodes a JSON object (no schema check: the
// writer and the guard compare raw values, as the reference does).
func readObject(path string) (*pyjson.Object, error) {
	data, err := readNoFollow(path)
	if err != nil {
		return nil, err
	}
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, &CorruptError{Path: path, Reason: "the manifest is not valid JSON", Err: err}
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, &CorruptError{Path: path, Reason: "the manifest is not a JSON object"}
	}
	return o, nil
}
