package offlinereg

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// An import merges into a warm-up record: packages of other ids, the
// proven map and aliases stay; nothing new is marked proven; the record
// reads back with both packages.
func TestRecordImportedMergesWithoutProving(t *testing.T) {
	root := t.TempDir()
	reg, logs := newTestRegistry(t, root)
	ctx := context.Background()
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if ok, err := reg.RecordSuccessfulLoad(ctx, loadMeta("pkgwarm"), "old-alias", "pkgwarm", SourceWarmup, t0); err != nil || !ok {
		t.Fatalf("warm-up record: %v %v\n%s", ok, err, logs)
	}
	in := loadMeta("pkgimp")
	err := reg.RecordImported(ctx, ImportedModel{
		CanonicalModelID: in.ModelID, Model: EncodeModel(in),
		Packages: []*pyjson.Object{EncodePackage(&in.Packages[0])},
		Aliases:  []string{"new-alias", in.ModelID}, Source: SourceImport,
	}, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := reg.Lookup(ctx, "new-alias")
	if err != nil || rec == nil {
		t.Fatalf("lookup by the imported alias: %v %v", rec, err)
	}
	if got := strings.Join(rec.RequestedAliases(), ","); got != "new-alias,old-alias" {
		t.Errorf("aliases %q", got)
	}
	if s, _ := rec.Source(); s != SourceImport {
		t.Errorf("source %q", s)
	}
	pv, _ := rec.Doc.Get("proven")
	proven := pv.(*pyjson.Object)
	if proven.Len() != 1 || !proven.Has("pkgwarm") {
		t.Errorf("proven %v: the import must not mark packages proven", proven.Keys())
	}
	md, err := rec.ModelMetadata(nil)
	if err != nil || len(md.Packages) != 2 || md.Packages[0].PackageID != "pkgimp" || md.Packages[1].PackageID != "pkgwarm" {
		t.Fatalf("metadata %+v %v", md, err)
	}
}

func TestRecordImportedRefusesBadInput(t *testing.T) {
	reg, _ := newTestRegistry(t, t.TempDir())
	in := loadMeta("p1")
	bad := EncodePackage(&in.Packages[0])
	bad.Set("backend", "no-such-backend")
	cases := map[string]ImportedModel{
		"no packages":  {CanonicalModelID: "m/1", Model: EncodeModel(in)},
		"blank id":     {CanonicalModelID: " ", Model: EncodeModel(in), Packages: []*pyjson.Object{EncodePackage(&in.Packages[0])}},
		"undecodable":  {CanonicalModelID: "m/1", Model: EncodeModel(in), Packages: []*pyjson.Object{bad}},
		"model absent": {CanonicalModelID: "m/1", Packages: []*pyjson.Object{EncodePackage(&in.Packages[0])}},
	}
	for name, m := range cases {
		if err := reg.RecordImported(context.Background(), m, time.Now()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if recs, _ := reg.Records(context.Background()); len(recs) != 0 {
		t.Errorf("refused imports wrote %d records", len(recs))
	}
}
