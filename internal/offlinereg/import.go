package offlinereg

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Sources of records written by modelcache's transfer commands. The
// reference reads source as an opaque string, so it accepts them.
const (
	// SourceImport marks records written by `modelcache import` of a bundle.
	SourceImport = "modelcache-import"
	// SourceOCIPull marks records written by `modelcache pull oci://…`.
	SourceOCIPull = "modelcache-oci-pull"
)

// ImportedModel is what a bundle import or an OCI pull brings for one
// canonical model: packages in the stored form (EncodePackage, or a payload
// read from another host's record), the model fields in the stored form
// ("model" of a record), and the ids the model was asked for by.
type ImportedModel struct {
	CanonicalModelID string
	// Model holds model_architecture, task_type, model_variant,
	// model_dependencies and recommended_parameters; a missing or null field
	// keeps the stored value.
	Model *pyjson.Object
	// Packages are stored-form package payloads; every artefact must carry
	// an MD5 (the registry records provider-attested identities only).
	Packages []*pyjson.Object
	// Aliases are requested ids other than the canonical one.
	Aliases []string
	// Source is SourceImport or SourceOCIPull.
	Source string
}

// RecordImported merges m into the record of m.CanonicalModelID under the
// record lock, with the rules of RecordSuccessfulLoad except that nothing is
// marked proven: imported packages have not loaded on this host yet (their
// proven entries appear with the first warm-up load). Stored packages of
// other ids, aliases and proven entries are kept.
func (r *Registry) RecordImported(ctx context.Context, m ImportedModel, now time.Time) error {
	if strings.TrimSpace(m.CanonicalModelID) == "" || len(m.Packages) == 0 || m.Model == nil {
		return fmt.Errorf("offline registry: %w: an imported model needs a canonical id, model fields and packages", errdefs.ErrInvalidParameter)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	incoming := make(map[string]*pyjson.Object, len(m.Packages))
	for _, p := range m.Packages {
		id, ok := getString(p, "package_id")
		if !ok {
			return fmt.Errorf("offline registry: %w: imported package without a string package_id", errdefs.ErrInvalidParameter)
		}
		if _, err := DecodePackage(p); err != nil {
			return fmt.Errorf("offline registry: imported package %s: %w", id, err)
		}
		incoming[id] = p
	}
	fields := pyjson.NewObject()
	for _, k := range encodeModelFields(&metadata.ModelMetadata{}).Keys() {
		v, _ := m.Model.Get(k)
		fields.Set(k, v)
	}
	return r.update(ctx, m.CanonicalModelID, func(existing *Record) *pyjson.Object {
		return r.merge(existing, m.CanonicalModelID, fields, incoming, m.Aliases, "", m.Source, now)
	})
}

// EncodeModel returns the model fields of m in the stored form (the
// "model" object of a record).
func EncodeModel(m *metadata.ModelMetadata) *pyjson.Object { return encodeModelFields(m) }
