package offlinereg

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// RecordSuccessfulLoad merges a proven load into the record of
// meta.ModelID (offline.md §3.3) and reports whether the record was written.
//
//   - Packages with an artefact lacking a provider MD5 are left out: the
//     registry only records provider-attested identities.
//   - If the proven package is such a package, or is not announced at all,
//     nothing is written and (false, nil) is returned (with a warning).
//   - Under the record lock: stored packages are kept by id and replaced by
//     incoming ones of the same id; requested aliases are united (the
//     requested id is added when it differs from the canonical id);
//     proven[provenPackageID] = {"last_proven_at": now}; each model field
//     takes the incoming value unless it is null; source and recorded_at are
//     overwritten; packages are sorted by id; the file is replaced
//     atomically. A stored record that readers would skip (malformed, newer
//     format) is replaced as if absent, as the reference does.
//
// source is SourceWarmup or SourceCLIInstall ("" means SourceWarmup); now is
// the clock value stored in UTC with microsecond precision.
//
// Errors (I/O, lock timeout matching errdefs.ErrLockTimeout, a symlinked
// registry directory or record as *SymlinkError matching
// errdefs.ErrSymlinkRefused) are returned for the caller to log: recording
// must never fail a model load.
func (r *Registry) RecordSuccessfulLoad(ctx context.Context, meta *metadata.ModelMetadata,
	requestedModelID, provenPackageID, source string, now time.Time) (bool, error) {
	if meta == nil {
		return false, fmt.Errorf("offline registry: %w: no model metadata", errdefs.ErrInvalidParameter)
	}
	if source == "" {
		source = SourceWarmup
	}
	if err := ctx.Err(); err != nil {
		return false, err
	}
	canonical := meta.ModelID
	incoming, ok := r.attestedPackages(meta, provenPackageID)
	if !ok {
		return false, nil
	}

	var aliases []string
	if requestedModelID != canonical {
		aliases = []string{requestedModelID}
	}
	model := encodeModelFields(meta)
	err := r.update(ctx, canonical, func(existing *Record) *pyjson.Object {
		return r.merge(existing, canonical, model, incoming, aliases, provenPackageID, source, now)
	})
	if err != nil {
		return false, err
	}
	return true, nil
}

// update rewrites the record of canonical under its lock: build receives
// the stored record (nil when absent, or unreadable and so replaced, as the
// reference does) and returns the new document, which replaces the file
// atomically.
func (r *Registry) update(ctx context.Context, canonical string, build func(existing *Record) *pyjson.Object) error {
	recordPath, err := r.RecordPath(canonical)
	if err != nil {
		return err
	}
	lockFile, err := r.home.OfflineRecordLockPath(canonical)
	if err != nil {
		return err
	}
	dir := r.Dir()
	// Refuse a symlinked directory before anything (even the lock file) is
	// created through it.
	if err := fsx.EnsureDir(dir, r.dirMode); err != nil {
		return asUnsafe(dir, err)
	}
	held, err := r.locker.Lock(ctx, lockFile, lock.WithTimeout(r.lockTimeout))
	if err != nil {
		return fmt.Errorf("offline registry: record %s: %w", canonical, asUnsafe(lockFile, err))
	}
	defer func() {
		if uerr := held.Unlock(); uerr != nil {
			r.log.Warn("offline registry: releasing record lock failed", "lock", held.Path(), "error", uerr)
		}
	}()
	// The directory could have been swapped for a link while we waited.
	if link, err := fsx.IsSymlink(dir); err != nil || link {
		if err == nil {
			err = &fsx.UnsafePathError{Op: "write record in", Path: dir, Kind: fsx.ErrSymlink}
		}
		return asUnsafe(dir, err)
	}

	existing, err := readRecordFile(ctx, recordPath)
	var se *SymlinkError
	switch {
	case errors.As(err, &se):
		return err
	case errors.Is(err, ErrMalformedRecord), errors.Is(err, ErrNewerFormat):
		r.log.Warn("offline registry: replacing unreadable record", "path", recordPath, "error", err)
		existing = nil
	case err != nil:
		return fmt.Errorf("offline registry: record %s: %w", canonical, err)
	}
	doc := build(existing)
	data, err := pyjson.MarshalIndent(doc)
	if err != nil {
		return fmt.Errorf("offline registry: encode record %s: %w", canonical, err)
	}
	if err := fsx.WriteFileAtomic(recordPath, data, r.fileMode); err != nil {
		return fmt.Errorf("offline registry: write record %s: %w", canonical, asUnsafe(recordPath, err))
	}
	return nil
}

// attestedPackages encodes the packages whose every artefact has a provider
// MD5, by id (a repeated id keeps the last one). ok is false when the proven
// package is unhashed or absent.
func (r *Registry) attestedPackages(meta *metadata.ModelMetadata, proven string) (map[string]*pyjson.Object, bool) {
	out := make(map[string]*pyjson.Object, len(meta.Packages))
	for i := range meta.Packages {
		p := &meta.Packages[i]
		var unhashed []string
		for _, a := range p.Artifacts {
			if a.MD5Hash == nil {
				unhashed = append(unhashed, a.FileHandle)
			}
		}
		if len(unhashed) > 0 {
			if p.PackageID == proven {
				r.log.Warn("Not registering offline record: the proven package has artefacts without a provider MD5 "+
					"identity; the registry only records provider-attested identities, so packages loaded with "+
					"download_files_without_hash cannot be registered for offline use",
					"model_id", meta.ModelID, "package_id", proven, "unhashed", strings.Join(unhashed, ", "))
				return nil, false
			}
			r.log.Warn("Skipping package in the offline record: artefacts without a provider MD5 identity",
				"model_id", meta.ModelID, "package_id", p.PackageID, "unhashed", strings.Join(unhashed, ", "))
			continue
		}
		out[p.PackageID] = EncodePackage(p)
	}
	if _, ok := out[proven]; !ok {
		r.log.Warn("Not registering offline record: proven package missing from provider metadata",
			"model_id", meta.ModelID, "package_id", proven)
		return nil, false
	}
	return out, true
}

// merge builds the new document from the stored record (nil when absent or
// unreadable) and the incoming packages: in, the incoming model fields in
// the record's key order (nil values keep the stored ones); aliases are
// added to the stored ones; proven ("" for none) is stamped with now.
func (r *Registry) merge(existing *Record, canonical string, in *pyjson.Object, incoming map[string]*pyjson.Object,
	newAliases []string, proven, source string, now time.Time) *pyjson.Object {
	var old *pyjson.Object
	if existing != nil {
		old = existing.Doc
	}

	// Packages: stored payloads (unknown keys and all) by string id, then
	// the incoming ones on top.
	packages := map[string]any{}
	if v, _ := old.Get("packages"); v != nil {
		list, ok := v.([]any)
		if !ok {
			r.log.Warn("offline registry: dropping non-list packages of stored record", "path", existing.Path)
		}
		for _, p := range list {
			if o, ok := p.(*pyjson.Object); ok {
				if id, ok := getString(o, "package_id"); ok {
					packages[id] = o
				}
			}
		}
	}
	for id, p := range incoming {
		packages[id] = p
	}
	ids := make([]string, 0, len(packages))
	for id := range packages {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	sortedPackages := make([]any, 0, len(ids))
	for _, id := range ids {
		sortedPackages = append(sortedPackages, packages[id])
	}

	// Aliases: union of the stored ones and the requested id.
	aliasSet := map[string]bool{}
	if v, _ := old.Get("requested_aliases"); v != nil {
		list, _ := v.([]any)
		for _, a := range list {
			if s, ok := a.(string); ok {
				aliasSet[s] = true
			} else {
				// The reference would fail to sort a mixed list; we drop the odd entry.
				r.log.Warn("offline registry: dropping non-string alias of stored record", "path", existing.Path, "alias", describe(a))
			}
		}
	}
	for _, a := range newAliases {
		if a != canonical {
			aliasSet[a] = true
		}
	}
	aliases := make([]any, 0, len(aliasSet))
	for _, a := range sortedKeys(aliasSet) {
		aliases = append(aliases, a)
	}

	stamp := FormatTimestamp(now)
	provenMap := pyjson.NewObject()
	if v, _ := old.Get("proven"); v != nil {
		if o, ok := v.(*pyjson.Object); ok {
			provenMap = o.Clone()
		} else {
			r.log.Warn("offline registry: dropping malformed proven map of stored record", "path", existing.Path)
		}
	}
	if proven != "" {
		provenMap.Set(proven, pyjson.ObjectOf("last_proven_at", stamp))
	}

	// Model fields: incoming non-null wins, else whatever was stored.
	var oldModel *pyjson.Object
	if v, _ := old.Get("model"); v != nil {
		oldModel, _ = v.(*pyjson.Object)
	}
	model := pyjson.NewObject()
	for _, k := range in.Keys() {
		v, _ := in.Get(k)
		if v == nil {
			v, _ = oldModel.Get(k)
		}
		model.Set(k, v)
	}

	return pyjson.ObjectOf(
		"format_version", FormatVersion,
		"canonical_model_id", canonical,
		"requested_aliases", aliases,
		"recorded_at", stamp,
		"source", source,
		"model", model,
		"packages", sortedPackages,
		"proven", provenMap,
	)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
