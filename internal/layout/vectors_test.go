package layout

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Tests in this file are driven by the golden vectors recorded from the
// reference (../shared/compat/vectors.json, or $MODELCACHE_COMPAT_DIR): they
// iterate over whatever records are present.

var slugShape = regexp.MustCompile(`^v2-[A-Za-z0-9_-]+-[0-9a-f]{32}$`)

func section[T any](t *testing.T, name string) []T {
	t.Helper()
	var recs []T
	if err := json.Unmarshal(compat.Section(t, name), &recs); err != nil {
		t.Fatalf("section %s: %v", name, err)
	}
	if len(recs) == 0 {
		t.Fatalf("section %s has no records", name)
	}
	return recs
}

type slugRecord struct {
	ModelID    string `json:"model_id"`
	ModelIDHex string `json:"model_id_utf8_hex"`
	Prefix     string `json:"prefix"`
	Slug       string `json:"slug"`
}

func slugVectorIDs(t *testing.T) []slugRecord {
	recs := section[slugRecord](t, "slug")
	for i := range recs {
		b, err := hex.DecodeString(recs[i].ModelIDHex)
		if err != nil {
			t.Fatalf("slug record %d: %v", i, err)
		}
		if string(b) != recs[i].ModelID {
			t.Fatalf("slug record %d: model_id and model_id_utf8_hex disagree", i)
		}
		recs[i].ModelID = string(b) // the bytes are authoritative
	}
	return recs
}

func TestVectorsSlug(t *testing.T) {
	recs := slugVectorIDs(t)
	for _, r := range recs {
		got, err := Slug(r.ModelID)
		if err != nil {
			t.Errorf("Slug(%q): %v", r.ModelID, err)
			continue
		}
		if got != r.Slug {
			t.Errorf("Slug(%q) = %q, want %q", r.ModelID, got, r.Slug)
		}
		if p, _ := Prefix(r.ModelID); p != r.Prefix {
			t.Errorf("Prefix(%q) = %q, want %q", r.ModelID, p, r.Prefix)
		}
		if !slugShape.MatchString(got) {
			t.Errorf("Slug(%q) = %q does not match %s", r.ModelID, got, slugShape)
		}
	}
	t.Logf("slug: checked %d records", len(recs))
}

func TestVectorsPackageID(t *testing.T) {
	recs := section[struct {
		PackageID string  `json:"package_id"`
		Valid     bool    `json:"valid"`
		Error     *string `json:"error"`
	}](t, "package_id")
	for _, r := range recs {
		err := ValidatePackageID(r.PackageID)
		if (err == nil) != r.Valid {
			t.Errorf("ValidatePackageID(%q) = %v, want valid=%v", r.PackageID, err, r.Valid)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInsecureIdentifier) {
			t.Errorf("ValidatePackageID(%q): %v does not wrap ErrInsecureIdentifier", r.PackageID, err)
		}
	}
	t.Logf("package_id: checked %d records", len(recs))
}

type artefactRecord struct {
	Kind        string  `json:"kind"`
	FileHandle  string  `json:"file_handle"`
	MD5         *string `json:"md5_hash"`
	DownloadURL string  `json:"download_url"`
}

type declarationRecord struct {
	FileHandle string  `json:"file_handle"`
	MD5Hash    *string `json:"md5_hash"`
	Unhashed   bool    `json:"unhashed"`
	SourceHash *string `json:"source_hash"`
	Storage    string  `json:"storage"`
}

type fileHandleRecord struct {
	Kind         string               `json:"kind"`
	Handle       string               `json:"handle"`
	Name         string               `json:"name"`
	Artifacts    []artefactRecord     `json:"artefacts"`
	Valid        bool                 `json:"valid"`
	Error        *string              `json:"error"`
	Declarations *[]declarationRecord `json:"declarations"`
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (r fileHandleRecord) artifacts(t *testing.T) []metadata.Artifact {
	arts := make([]metadata.Artifact, 0, len(r.Artifacts))
	for _, a := range r.Artifacts {
		if a.Kind != "local" && a.Kind != "download" {
			t.Fatalf("package %s: artefact kind %q", r.Name, a.Kind)
		}
		arts = append(arts, metadata.Artifact{
			Local:       a.Kind == "local",
			FileHandle:  a.FileHandle,
			MD5Hash:     a.MD5,
			DownloadURL: a.DownloadURL,
		})
	}
	return arts
}

func TestVectorsFileHandle(t *testing.T) {
	recs := section[fileHandleRecord](t, "file_handle")
	var singles, packages int
	for _, r := range recs {
		switch r.Kind {
		case "single":
			singles++
			err := ValidateHandle(r.Handle)
			if (err == nil) != r.Valid {
				t.Errorf("ValidateHandle(%q) = %v, want valid=%v", r.Handle, err, r.Valid)
			}
			if err != nil && !errors.Is(err, errdefs.ErrCorruptPackage) {
				t.Errorf("ValidateHandle(%q): %v does not wrap ErrCorruptPackage", r.Handle, err)
			}
		case "package":
			packages++
			decls, err := Declarations(r.artifacts(t))
			if (err == nil) != r.Valid {
				t.Errorf("package %s: Declarations error = %v, want valid=%v", r.Name, err, r.Valid)
				continue
			}
			if err != nil {
				if !errors.Is(err, errdefs.ErrCorruptPackage) {
					t.Errorf("package %s: %v does not wrap ErrCorruptPackage", r.Name, err)
				}
				continue
			}
			if r.Declarations == nil {
				t.Errorf("package %s: valid but no declarations recorded", r.Name)
				continue
			}
			compareDeclarations(t, r.Name, decls, *r.Declarations)
		default:
			t.Errorf("file_handle record with unknown kind %q", r.Kind)
		}
	}
	t.Logf("file_handle: checked %d records (%d single, %d package)", len(recs), singles, packages)
}

// compareDeclarations compares order-insensitively, as VECTORS.md asks, and
// separately checks that our list has the documented order
// (sorted by (lower(handle), handle)).
func compareDeclarations(t *testing.T, name string, got []Declaration, want []declarationRecord) {
	t.Helper()
	key := func(d Declaration) string {
		return fmt.Sprintf("%q md5=%q unhashed=%v source_hash=%q storage=%q",
			d.FileHandle, d.MD5Hash, d.Unhashed, d.SourceHash, d.Storage)
	}
	var g, w []string
	for _, d := range got {
		g = append(g, key(d))
	}
	for _, d := range want {
		w = append(w, key(Declaration{FileHandle: d.FileHandle, MD5Hash: deref(d.MD5Hash), Unhashed: d.Unhashed,
			SourceHash: deref(d.SourceHash), Storage: Storage(d.Storage)}))
	}
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("package %s: declarations\n got  %q\n want %q", name, g, w)
	}
	sorted := slices.IsSortedFunc(got, func(a, b Declaration) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.FileHandle), strings.ToLower(b.FileHandle)),
			strings.Compare(a.FileHandle, b.FileHandle))
	})
	if !sorted {
		t.Errorf("package %s: declarations not sorted by (lower(handle), handle): %+v", name, got)
	}
}

func TestVectorsDependencyName(t *testing.T) {
	recs := section[struct {
		Names []string `json:"names"`
		Valid bool     `json:"valid"`
	}](t, "dependency_name")
	for _, r := range recs {
		err := ValidateDependencyNames(r.Names)
		if (err == nil) != r.Valid {
			t.Errorf("ValidateDependencyNames(%q) = %v, want valid=%v", r.Names, err, r.Valid)
		}
		if err != nil && !errors.Is(err, errdefs.ErrCorruptPackage) {
			t.Errorf("ValidateDependencyNames(%q): %v does not wrap ErrCorruptPackage", r.Names, err)
		}
	}
	t.Logf("dependency_name: checked %d records", len(recs))
}

func TestVectorsSourceURL(t *testing.T) {
	recs := section[struct {
		URL        string `json:"url"`
		Canonical  string `json:"canonical"`
		Document   string `json:"source_hash_document"`
		SourceHash string `json:"source_hash"`
	}](t, "source_url")
	for _, r := range recs {
		got := CanonicalDownloadSource(r.URL)
		if got != r.Canonical {
			t.Errorf("CanonicalDownloadSource(%q) = %q, want %q", r.URL, got, r.Canonical)
		}
		doc, err := pyjson.MarshalSorted(pyjson.ObjectOf("download_source", got))
		if err != nil {
			t.Fatal(err)
		}
		if string(doc) != r.Document {
			t.Errorf("%q: document %s, want %s", r.URL, doc, r.Document)
		}
		if h := SourceHash(r.URL); h != r.SourceHash {
			t.Errorf("SourceHash(%q) = %s, want %s", r.URL, h, r.SourceHash)
		}
	}
	t.Logf("source_url: checked %d records", len(recs))
}

// TestHostileVectorInputs feeds every invalid identifier and handle in the
// vectors to the path helpers: each must fail before producing a path, and
// every path that is produced must stay inside Home.Root.
func TestHostileVectorInputs(t *testing.T) {
	home := Home{Root: "/srv/cache"}
	pkgDir, err := home.PackageDir("ws/m/1", "pkg1")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	inside := func(what, p string) {
		t.Helper()
		checked++
		if !within(home.Root, p) {
			t.Errorf("%s: %q is outside %q", what, p, home.Root)
		}
	}
	refused := func(what string, p string, err error, kind error) {
		t.Helper()
		checked++
		if err == nil || p != "" {
			t.Errorf("%s: got path %q, err %v; want refusal", what, p, err)
		} else if !errors.Is(err, kind) {
			t.Errorf("%s: %v does not wrap %v", what, err, kind)
		}
	}

	for _, r := range slugVectorIDs(t) {
		p, err := home.ModelDir(r.ModelID)
		if err != nil {
			t.Errorf("ModelDir(%q): %v", r.ModelID, err)
			continue
		}
		if p != home.Root+"/models-cache/"+r.Slug {
			t.Errorf("ModelDir(%q) = %q", r.ModelID, p)
		}
		inside("ModelDir", p)
		for _, f := range []func(string) (string, error){home.OfflineRecordPath, home.OfflineRecordLockPath} {
			p, err := f(r.ModelID)
			if err != nil {
				t.Errorf("offline record path for %q: %v", r.ModelID, err)
				continue
			}
			inside("OfflineRecordPath", p)
		}
		// Hostile model ids combined with a hostile-looking but valid package id.
		p, err = home.PackageDir(r.ModelID, "pkg1")
		if err == nil {
			inside("PackageDir", p)
		}
	}

	for _, r := range section[struct {
		PackageID string `json:"package_id"`
		Valid     bool   `json:"valid"`
	}](t, "package_id") {
		p, err := home.PackageDir("../../etc", r.PackageID)
		p2, err2 := home.MaterializationLockPath("../../etc", r.PackageID)
		if r.Valid {
			if err != nil || err2 != nil {
				t.Errorf("valid package id %q: %v / %v", r.PackageID, err, err2)
				continue
			}
			inside("PackageDir", p)
			inside("MaterializationLockPath", p2)
			continue
		}
		refused("PackageDir "+r.PackageID, p, err, errdefs.ErrInsecureIdentifier)
		refused("MaterializationLockPath "+r.PackageID, p2, err2, errdefs.ErrInsecureIdentifier)
	}

	handles := map[string]bool{}
	for _, r := range section[fileHandleRecord](t, "file_handle") {
		if r.Kind == "single" {
			handles[r.Handle] = r.Valid
		}
		for _, a := range r.Artifacts {
			if _, ok := handles[a.FileHandle]; !ok {
				handles[a.FileHandle] = ValidateHandle(a.FileHandle) == nil
			}
			if a.MD5 != nil && ValidateMD5(*a.MD5) != nil {
				p, err := home.BlobPath(*a.MD5)
				refused("BlobPath "+*a.MD5, p, err, errdefs.ErrCorruptPackage)
			}
		}
	}
	for h, valid := range handles {
		p, err := HandlePath(pkgDir, h)
		l, lerr := HandleLockPath(pkgDir, h)
		if !valid {
			refused("HandlePath "+h, p, err, errdefs.ErrCorruptPackage)
			refused("HandleLockPath "+h, l, lerr, errdefs.ErrCorruptPackage)
			continue
		}
		if err != nil || lerr != nil {
			t.Errorf("valid handle %q: %v / %v", h, err, lerr)
			continue
		}
		if !within(pkgDir, p) || !within(pkgDir, l) {
			t.Errorf("handle %q: %q or %q is outside the package dir", h, p, l)
		}
		inside("HandlePath", p)
		inside("HandleLockPath", l)
	}

	for _, r := range section[struct {
		Names []string `json:"names"`
		Valid bool     `json:"valid"`
	}](t, "dependency_name") {
		if len(r.Names) != 1 {
			continue // multi-name records test uniqueness, not single names
		}
		p, err := DependencyLinkPath(pkgDir, r.Names[0])
		l, lerr := DependencyLockPath(pkgDir, r.Names[0])
		if !r.Valid {
			refused("DependencyLinkPath "+r.Names[0], p, err, errdefs.ErrCorruptPackage)
			refused("DependencyLockPath "+r.Names[0], l, lerr, errdefs.ErrCorruptPackage)
			continue
		}
		if err != nil || lerr != nil {
			t.Errorf("valid dependency name %q: %v / %v", r.Names[0], err, lerr)
			continue
		}
		inside("DependencyLinkPath", p)
		inside("DependencyLockPath", l)
	}
	t.Logf("hostile inputs: checked %d paths and refusals", checked)
}

// within reports whether p lies strictly inside dir, lexically.
func within(dir, p string) bool {
	if strings.IndexByte(p, 0) >= 0 {
		return false
	}
	dir = strings.TrimSuffix(dir, "/")
	if !strings.HasPrefix(p, dir+"/") {
		return false
	}
	for seg := range strings.SplitSeq(p[len(dir)+1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
