package offlinereg

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// Presence is the state of one recorded package in the local cache (offline.md §5).
type Presence string

// Package presence values (the reference's OfflinePackagePresence).
const (
	// PresenceOK: the package dir exists and every artefact is a file.
	PresenceOK Presence = "ok"
	// PresenceIncomplete: some artefacts are not files (MissingFiles lists them).
	PresenceIncomplete Presence = "incomplete"
	// PresenceMissing: no package dir, or the package id is not a valid one.
	PresenceMissing Presence = "missing"
	// PresenceMalformed: the payload is not an object, or package_id or a
	// file_handle is not a string.
	PresenceMalformed Presence = "malformed"
)

// PackageStatus is one recorded package as found on disk.
type PackageStatus struct {
	// PackageID is nil when the stored package_id is not a string.
	PackageID *string
	// TrustedSource is nil when absent or not a bool.
	TrustedSource *bool
	Presence      Presence
	// MissingFiles are the artefact handles that are not files (incomplete only).
	MissingFiles []string
}

// ModelStatus is one record with the presence of its packages (the
// reference's list_offline_models entry).
type ModelStatus struct {
	// Path of the record file.
	Path             string
	CanonicalModelID string
	// RequestedAliases are the string entries of requested_aliases.
	RequestedAliases []string
	// Source is nil when absent or not a string.
	Source *string
	// RecordedAt is nil when absent or unparsable.
	RecordedAt *time.Time
	// Proven maps package ids to their last proven load; entries with an
	// unparsable time are left out (with a warning).
	Proven   map[string]time.Time
	Packages []PackageStatus
	// SharedAliases are aliases another record claims too: lookups resolve
	// them to the first record in file-name order.
	SharedAliases []string
}

// List returns one status per readable record with a string
// canonical_model_id, in file-name order, with each package's presence in
// the models cache (presence only: nothing is hashed). Records without a
// string canonical_model_id are skipped with a warning.
func (r *Registry) List(ctx context.Context) ([]ModelStatus, error) {
	recs, err := r.Records(ctx)
	if err != nil {
		return nil, err
	}
	claims := map[string]int{}
	for _, rec := range recs {
		seen := map[string]bool{}
		for _, a := range rec.RequestedAliases() {
			if !seen[a] {
				seen[a] = true
				claims[a]++
			}
		}
	}
	var out []ModelStatus
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		canonical, ok := rec.CanonicalModelID()
		if !ok {
			cv, _ := rec.Doc.Get("canonical_model_id")
			r.log.Warn("Skipping offline-weights registry record without a valid canonical_model_id",
				"path", rec.Path, "canonical_model_id", describe(cv))
			continue
		}
		st := ModelStatus{
			Path:             rec.Path,
			CanonicalModelID: canonical,
			RequestedAliases: rec.RequestedAliases(),
			Proven:           r.provenTimes(rec),
		}
		for _, a := range st.RequestedAliases {
			if claims[a] > 1 {
				st.SharedAliases = append(st.SharedAliases, a)
			}
		}
		if s, ok := rec.Source(); ok {
			st.Source = &s
		}
		if t, ok := rec.RecordedAt(); ok {
			st.RecordedAt = &t
		} else {
			v, _ := rec.Doc.Get("recorded_at")
			r.log.Warn("Offline-weights registry record contains unparsable timestamp",
				"path", rec.Path, "field", "recorded_at", "value", describe(v))
		}
		payloads, ok := rec.packagePayloads()
		if !ok {
			r.log.Warn("Offline-weights registry record has a non-list packages field", "path", rec.Path)
		}
		for _, p := range payloads {
			st.Packages = append(st.Packages, r.packageStatus(canonical, rec.Path, p))
		}
		out = append(out, st)
	}
	return out, nil
}

func (r *Registry) packageStatus(canonical, path string, payload any) PackageStatus {
	o, ok := payload.(*pyjson.Object)
	if !ok {
		return PackageStatus{Presence: PresenceMalformed}
	}
	var st PackageStatus
	if id, ok := getString(o, "package_id"); ok {
		st.PackageID = &id
	}
	if tv, _ := o.Get("trusted_source"); tv != nil {
		if b, ok := tv.(bool); ok {
			st.TrustedSource = &b
		} else {
			r.log.Warn("Offline-weights registry record has malformed trusted_source",
				"path", path, "package_id", describe(idOf(o)), "value", describe(tv))
		}
	}
	st.Presence, st.MissingFiles = r.presence(canonical, o)
	return st
}

func idOf(o *pyjson.Object) any {
	v, _ := o.Get("package_id")
	return v
}

// presence checks a package the way offline loads do: the package dir must
// be a directory and every artefact a file, both following symlinks (blob
// links count).
func (r *Registry) presence(canonical string, o *pyjson.Object) (Presence, []string) {
	id, ok := getString(o, "package_id")
	if !ok {
		return PresenceMalformed, nil
	}
	cacheID := canonical
	if cv, _ := o.Get("cache_model_id"); truthy(cv) {
		s, ok := cv.(string)
		if !ok {
			return PresenceMissing, nil
		}
		cacheID = s
	}
	dir, err := r.home.PackageDir(cacheID, id)
	if err != nil {
		return PresenceMissing, nil
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return PresenceMissing, nil
	}
	av, _ := o.Get("artifacts")
	var list []any
	if truthy(av) {
		if list, ok = av.([]any); !ok {
			return PresenceMalformed, nil
		}
	}
	var missing []string
	for _, a := range list {
		ao, ok := a.(*pyjson.Object)
		if !ok {
			return PresenceMalformed, nil
		}
		handle, ok := getString(ao, "file_handle")
		if !ok {
			return PresenceMalformed, nil
		}
		// An unsafe handle never becomes a path (on-disk contract §4.4); it
		// cannot be present.
		if layout.ValidateHandle(handle) != nil {
			missing = append(missing, handle)
			continue
		}
		if fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(handle))); err != nil || !fi.Mode().IsRegular() {
			missing = append(missing, handle)
		}
	}
	if len(missing) > 0 {
		return PresenceIncomplete, missing
	}
	return PresenceOK, nil
}

// provenTimes flattens proven to package id -> time; values may be
// {"last_proven_at": iso} or a bare ISO string (older writers).
func (r *Registry) provenTimes(rec *Record) map[string]time.Time {
	out := map[string]time.Time{}
	v, _ := rec.Doc.Get("proven")
	if v == nil {
		return out
	}
	m, ok := v.(*pyjson.Object)
	if !ok {
		r.log.Warn("Offline-weights registry record has malformed proven metadata", "path", rec.Path, "value", describe(v))
		return out
	}
	keys := m.Keys()
	sort.Strings(keys)
	for _, id := range keys {
		proof, _ := m.Get(id)
		if po, ok := proof.(*pyjson.Object); ok {
			proof, _ = po.Get("last_proven_at")
		}
		s, ok := proof.(string)
		var t time.Time
		if ok {
			t, ok = ParseTimestamp(s)
		}
		if !ok {
			r.log.Warn("Offline-weights registry record contains unparsable timestamp",
				"path", rec.Path, "field", "proven "+id, "value", describe(proof))
			continue
		}
		out[id] = t
	}
	return out
}
