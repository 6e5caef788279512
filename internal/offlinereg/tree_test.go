package offlinereg

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

const registryPrefix = "offline-weights-registry/"

// TestReferenceTreeRecords: the records the reference wrote parse with our
// reader, re-serialize to identical bytes, and every package decodes to
// metadata that our writer encodes back to the stored object.
func TestReferenceTreeRecords(t *testing.T) {
	tr := compat.LoadTree(t)
	n := 0
	for _, e := range tr.Entries {
		base := filepath.Base(e.Path)
		if e.Kind != "file" || !strings.HasPrefix(e.Path, registryPrefix) || strings.HasPrefix(base, ".") {
			continue
		}
		n++
		rec, err := ParseRecord([]byte(e.Content))
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		out, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != e.Content {
			t.Errorf("%s: re-serialized bytes differ\n--- got\n%s\n--- want\n%s", e.Path, out, e.Content)
		}
		canonical, ok := rec.CanonicalModelID()
		if !ok {
			t.Fatalf("%s: no canonical id", e.Path)
		}
		if name, err := recordBase(canonical); err != nil || name != base {
			t.Errorf("%s: slug file name %q (%v)", e.Path, name, err)
		}
		m, err := rec.ModelMetadata(nil)
		if err != nil {
			t.Fatalf("%s: %v", e.Path, err)
		}
		stored, _ := rec.packagePayloads()
		if len(stored) != len(m.Packages) {
			t.Fatalf("%s: %d packages decoded of %d", e.Path, len(m.Packages), len(stored))
		}
		for i := range m.Packages {
			p := &m.Packages[i]
			if p.PackageSource != metadata.SourceLocalCache {
				t.Errorf("%s/%s: package source %q", e.Path, p.PackageID, p.PackageSource)
			}
			want, _ := pyjson.MarshalIndent(stored[i])
			got, _ := pyjson.MarshalIndent(EncodePackage(p))
			if string(got) != string(want) {
				t.Errorf("%s/%s: decode+encode differs\n--- got\n%s\n--- want\n%s", e.Path, p.PackageID, got, want)
			}
		}
		// The model fields survive the same round trip.
		model, _ := rec.Doc.Get("model")
		want, _ := pyjson.MarshalIndent(model)
		got, _ := pyjson.MarshalIndent(encodeModelFields(m))
		if string(got) != string(want) {
			t.Errorf("%s: model fields differ\n--- got\n%s\n--- want\n%s", e.Path, got, want)
		}
	}
	if n == 0 {
		t.Fatal("tree.json holds no registry record")
	}
	t.Logf("tree.json: %d registry records round-tripped", n)
}

func recordBase(canonical string) (string, error) {
	reg := New(mustHome("/h"), Options{})
	p, err := reg.RecordPath(canonical)
	return filepath.Base(p), err
}

// TestReferenceTreeLookupAndList rebuilds the reference's whole cache and
// reads it: lookups by canonical id and alias, and presence statuses.
func TestReferenceTreeLookupAndList(t *testing.T) {
	tr := compat.LoadTree(t)
	home := t.TempDir()
	tr.Build(t, home)
	reg, logs := newTestRegistry(t, home)
	ctx := context.Background()

	m, err := reg.LoadModelMetadata(ctx, "golden-alias-7")
	if err != nil || m == nil {
		t.Fatalf("alias lookup: %v %v\n%s", m, err, logs)
	}
	if m.ModelID != "golden-ws/segmenter/7" || len(m.ModelDependencies) != 1 || m.ModelDependencies[0].Name != "detector" {
		t.Errorf("alias lookup got %+v", m)
	}
	m, err = reg.LoadModelMetadata(ctx, "golden-ws/detector/3")
	if err != nil || m == nil || len(m.Packages) != 2 {
		t.Fatalf("canonical lookup: %+v %v", m, err)
	}

	list, err := reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Presence{}
	for _, ms := range list {
		for _, ps := range ms.Packages {
			got[ms.CanonicalModelID+"/"+*ps.PackageID] = ps.Presence
		}
	}
	want := map[string]Presence{
		"golden-ws/detector/3/onnxdynamic16": PresenceOK,
		"golden-ws/detector/3/onnxstatic1":   PresenceOK,
		"golden-ws/segmenter/7/segonnx1":     PresenceOK,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("presence %v, want %v", got, want)
	}
	if list[1].RequestedAliases[0] != "golden-alias-7" || *list[1].Source != SourceWarmup || list[1].RecordedAt == nil {
		t.Errorf("segmenter status %+v", list[1])
	}
	if len(list[0].Proven) != 2 {
		t.Errorf("detector proven %v", list[0].Proven)
	}

	// Remove the blob behind a nested handle: its link dangles, the package
	// becomes incomplete and names the handle.
	if err := os.Remove(filepath.Join(home, "shared-blobs", "a29f0f0715d2f9d633cd10ca521959d4")); err != nil {
		t.Fatal(err)
	}
	list, err = reg.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ps := list[0].Packages[0]
	if ps.Presence != PresenceIncomplete || !reflect.DeepEqual(ps.MissingFiles, []string{"extras/keypoints_metadata.json"}) {
		t.Errorf("after removing a blob: %+v", ps)
	}
}
