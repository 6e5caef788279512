package layout

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/metadata"
)

// Tables from the on-disk contract (§4.1, §4.2, §4.4, §6.2), checked
// independently of the golden vectors.

func TestSpecSlugTable(t *testing.T) {
	cases := []struct{ id, slug string }{
		{"my-model", "v2-my-model-83fafb8ac0ed88eaaebd92414d983ae1"},
		{"/my-model", "v2--my-model-c3716d2ea11a9ad5e6941a321157674f"},
		{"my-model/../../home", "v2-my-model-home-162436562dcaf7bcb23c30148c5a4e64"},
		{"workspace/model/1", "v2-workspace-model-1-85a770a510b42c707e2e6429eae1786c"},
		{"coco/3", "v2-coco-3-df70e86e24a65bd703ee4386bda0d550"},
		{"yolov8n-640", "v2-yolov8n-640-ffad3227d1df3583031ee7f376943972"},
		{"rfdetr-base", "v2-rfdetr-base-9144380ec328d468cb3e3a1efed52116"},
		{"a__b", "v2-a-b-df16dc6602cd3aa308e3ce0f544107a1"},
		{"a_b", "v2-a_b-57e03f28699d2fbcdbd42daa46ba192c"},
		{"a-_b", "v2-a-b-f43ac8f8e93d6d1a0550408ab519e02d"},
		{"ÿ模型/1", "v2--1-2adacd52453b3125132b878d278fb1a6"},
		{"", "v2-special-char-only-model-id-64550d6ffe2c0a01a14aba1eade0200c"},
		{"!!!", "v2---8e1b525387196391fd2206a818f1add0"},
		{strings.Repeat("x", 60), "v2-" + strings.Repeat("x", 48) + "-3104fc1590146cdfb0e6786cb7f354a9"},
		{"a/" + strings.Repeat("b", 60), "v2-a-" + strings.Repeat("b", 46) + "-eaeb4490755651406afcb3f5b0341f85"},
		{"Ws/Proj_x/12", "v2-Ws-Proj_x-12-cd7a3b0b884e4237a2cc26c6d3d27bc0"},
		{"_lead", "v2-_lead-b01a6e890d4faa824aa4a2cdf3b5cc70"},
		{"trail/", "v2-trail--d58b477a2ae8c052575e75c920814390"},
	}
	for _, c := range cases {
		got, err := Slug(c.id)
		if err != nil || got != c.slug {
			t.Errorf("Slug(%q) = %q, %v; want %q", c.id, got, err, c.slug)
		}
		if !slugShape.MatchString(got) {
			t.Errorf("Slug(%q) = %q has the wrong shape", c.id, got)
		}
	}
	s, _ := Slug("../../../etc/passwd")
	if strings.Contains(s, "/") || strings.Contains(s, "..") {
		t.Errorf("Slug(../../../etc/passwd) = %q", s)
	}
	a, _ := Slug(strings.Repeat("a", 48) + "/36371")
	b, _ := Slug(strings.Repeat("a", 48) + "/64545")
	if a == b {
		t.Errorf("v1 collision pair collides: %q", a)
	}
}

func TestSlugRejectsInvalidUTF8(t *testing.T) {
	for _, id := range []string{"\xff", "model/\xc3", "a\xed\xa0\x80b"} {
		s, err := Slug(id)
		var le *Error
		if err == nil || s != "" || !errors.As(err, &le) || !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("Slug(%q) = %q, %v; want *Error wrapping ErrInvalidParameter", id, s, err)
		}
		if _, err := (Home{Root: "/c"}).ModelDir(id); err == nil {
			t.Errorf("ModelDir(%q) accepted invalid UTF-8", id)
		}
	}
}

func TestSpecPackageIDs(t *testing.T) {
	for _, id := range []string{"", "pkg-1", "pkg/1", "pkg.1", "..", "NUL", "COM1", strings.Repeat("a", 256),
		"pkg 1", "pkg/../1", "/my-package"} {
		if err := ValidatePackageID(id); !errors.Is(err, errdefs.ErrInsecureIdentifier) {
			t.Errorf("ValidatePackageID(%q) = %v, want ErrInsecureIdentifier", id, err)
		}
	}
	for _, id := range []string{"COM0", "LPT0", "pkg1", strings.Repeat("a", 255)} {
		if err := ValidatePackageID(id); err != nil {
			t.Errorf("ValidatePackageID(%q) = %v", id, err)
		}
	}
}

func TestSpecRemoteModelID(t *testing.T) {
	for _, id := range []string{"", " ", "\t\n", "\u3000", "\x1c\x1f", "\u00a0\u2028", "a\x00b", "\x00", "\xff"} {
		if err := ValidateRemoteModelID(id); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("ValidateRemoteModelID(%q) = %v, want ErrInvalidParameter", id, err)
		} else if !strings.Contains(err.Error(), "Remote model identity must be a non-empty string.") {
			t.Errorf("ValidateRemoteModelID(%q): message %q", id, err)
		}
	}
	// U+200B and U+FEFF are not whitespace to Python's str.strip.
	for _, id := range []string{"coco/3", " x ", "\u200b", "\ufeff", "../../etc"} {
		if err := ValidateRemoteModelID(id); err != nil {
			t.Errorf("ValidateRemoteModelID(%q) = %v", id, err)
		}
	}
}

func TestSpecHandles(t *testing.T) {
	rejected := []string{"", "../weights.onnx", "/weights.onnx", "nested//weights.onnx", "nested/../weights.onnx",
		"nested/CON", "nested/.weights.onnx.lock", `nested\weights.onnx`, "MODEL_CONFIG.JSON",
		"model_dependencies/weights.onnx", "dependencies", ".model_config.json.lock", ".weights.onnx.lock", "CON",
		"NUL.bin", "x:stream", "weights.", "weïghts.onnx", "weights\x01.onnx"}
	for _, h := range rejected {
		err := ValidateHandle(h)
		var le *Error
		if !errors.Is(err, errdefs.ErrCorruptPackage) || !errors.As(err, &le) || le.Value != h {
			t.Errorf("ValidateHandle(%q) = %v, want *Error naming the handle, wrapping ErrCorruptPackage", h, err)
		}
	}
	if err := ValidateHandle("vit/config.json"); err != nil {
		t.Errorf("ValidateHandle(vit/config.json) = %v", err)
	}
}

func TestDeclarationErrors(t *testing.T) {
	dl := func(h, md5, url string) metadata.Artifact {
		a := metadata.Artifact{FileHandle: h, DownloadURL: url}
		if md5 != "" {
			a.MD5Hash = &md5
		}
		return a
	}
	const md5 = "0123456789abcdef0123456789abcdef"
	cases := []struct {
		name  string
		arts  []metadata.Artifact
		kind  error
		words []string // each must appear in the message
	}{
		{"duplicate", []metadata.Artifact{dl("a.txt", md5, ""), dl("a.txt", md5, "")}, errdefs.ErrCorruptPackage, []string{`"a.txt"`, "twice"}},
		{"case", []metadata.Artifact{dl("w.onnx", md5, ""), dl("W.onnx", md5, "")}, errdefs.ErrCorruptPackage, []string{`"W.onnx"`, "letter case", `"w.onnx"`}},
		{"case-dir", []metadata.Artifact{dl("Base/x", md5, ""), dl("base/y", md5, "")}, errdefs.ErrCorruptPackage, []string{`"base/y"`, `"Base"`, "letter case"}},
		{"file-then-dir", []metadata.Artifact{dl("base", md5, ""), dl("base/c.json", md5, "")}, errdefs.ErrCorruptPackage, []string{`"base/c.json"`, "directory"}},
		{"dir-then-file", []metadata.Artifact{dl("base/c.json", md5, ""), dl("base", md5, "")}, errdefs.ErrCorruptPackage, []string{`"base"`, "directory"}},
		{"md5", []metadata.Artifact{dl("w.onnx", strings.ToUpper(md5), "")}, errdefs.ErrCorruptPackage, []string{`"w.onnx"`, "md5"}},
		{"local-no-md5", []metadata.Artifact{{Local: true, FileHandle: "e.plan"}}, errdefs.ErrCorruptPackage, []string{`"e.plan"`, "no md5"}},
		{"bad-url", []metadata.Artifact{dl("labels.txt", "", "https://[::1/x?sig=1")}, errdefs.ErrCorruptPackage, []string{`"labels.txt"`, "IPv6"}},
		{"bad-handle", []metadata.Artifact{dl("../x", md5, "")}, errdefs.ErrCorruptPackage, []string{`"../x"`, `".."`}},
	}
	for _, c := range cases {
		decls, err := Declarations(c.arts)
		if err == nil || decls != nil || !errors.Is(err, c.kind) {
			t.Errorf("%s: Declarations = %v, %v; want error wrapping %v", c.name, decls, err, c.kind)
			continue
		}
		for _, w := range c.words {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: message %q lacks %q", c.name, err, w)
			}
		}
	}
	// An empty package is valid and yields an empty, non-nil list.
	if decls, err := Declarations(nil); err != nil || decls == nil || len(decls) != 0 {
		t.Errorf("Declarations(nil) = %#v, %v", decls, err)
	}
}

func TestSpecSourceURL(t *testing.T) {
	cases := []struct{ url, canonical, hash string }{
		{"https://Storage.Example/model?versionId=7&X-Amz-Date=20260101T000000Z&X-Amz-Signature=abc",
			"https://Storage.Example/model?versionId=7", "e2ca0fe1a914439958784cc23ac50616738a6b413e5c75e32cc52129d8788213"},
		{"https://storage.googleapis.com/b/o?X-Goog-Signature=abc&alt=media&x=a%20b#frag",
			"https://storage.googleapis.com/b/o?alt=media&x=a+b", ""},
		{"https://host/model?v=1#frag", "https://host/model?v=1#frag", ""},
	}
	for _, c := range cases {
		if got := CanonicalDownloadSource(c.url); got != c.canonical {
			t.Errorf("CanonicalDownloadSource(%q) = %q, want %q", c.url, got, c.canonical)
		}
		if c.hash != "" && SourceHash(c.url) != c.hash {
			t.Errorf("SourceHash(%q) = %s, want %s", c.url, SourceHash(c.url), c.hash)
		}
	}
}

// TestURLEdgeCases pins urllib.parse corner cases the golden vectors do not
// reach. Expected values were computed with CPython 3.11.7's urllib.parse
// (the reference's interpreter line), running the reference's algorithm.
func TestURLEdgeCases(t *testing.T) {
	cases := [][2]string{
		{"https:/x?sig=1&a=1", "https:///x?a=1"},
		{"https:x?sig=1&a=1", "https:///x?a=1"},
		{"https:////x?sig=1&a=1", "https://x?a=1"},
		{"mailto:x?sig=1&a=1", "mailto:x?a=1"},
		{"HTTP://h/p?a=1&SIG=2#f", "http://h/p?a=1"},
		{" \x00\x1fhttps://h/p?sig=1&b=2", "https://h/p?b=2"},
		{"https://h/p?s\tig=1&a=1\r\n", "https://h/p?a=1"},
		{"https://[::1]:8080/p?sig=1&a=1", "https://[::1]:8080/p?a=1"},
		{"https://[fe80::1%25eth0]/p?sig=1&a=1", "https://[fe80::1%25eth0]/p?a=1"},
		{"https://[v1.x]/p?sig=1&a=1", "https://[v1.x]/p?a=1"},
		{"https://h/p?\u212aey-Pair-Id=1&sig=2&a=1", "https://h/p?a=1"},
		{"https://h/p?%E2%84%AAey-pair-id=1&sig=2&a=1", "https://h/p?a=1"},
		{"https://h/p?sig=1&a=%C3\u00fc%BC", "https://h/p?a=%EF%BF%BD%C3%BC%EF%BF%BD"},
		{"https://h/p?sig=1&a=%E2%82&b=%ED%A0%80&c=%C0%AF&d=%F0%9F%98&e=%F4%90%80%80",
			"https://h/p?a=%EF%BF%BD&b=%EF%BF%BD%EF%BF%BD%EF%BF%BD&c=%EF%BF%BD%EF%BF%BD&d=%EF%BF%BD&e=%EF%BF%BD%EF%BF%BD%EF%BF%BD%EF%BF%BD"},
		{"https://h/p?sig=1&a=%%41&b=%4&c=%", "https://h/p?a=%25A&b=%254&c=%25"},
		{"https://h/p?sig=1&&&a=1&", "https://h/p?a=1"},
		{"https://h/p?sig=1&a=1=2&b==", "https://h/p?a=1%3D2&b=%3D"},
		{"https://h/p?sig=1&\u00e9=\u00e8&a=\U0001F600", "https://h/p?a=%F0%9F%98%80&%C3%A9=%C3%A8"},
		{"1https://h/p?sig=1&a=1", "1https://h/p?a=1"},
		{"a+b.c-d://h/p?sig=1&a=1", "a+b.c-d://h/p?a=1"},
		{"h t://h/p?sig=1&a=1", "h t://h/p?a=1"},
		{"?sig=1&a=1", "?a=1"},
		{"https://h?sig=1&a=1", "https://h?a=1"},
		{"https://h#?sig=1", "https://h#?sig=1"},
		{"https://h/p?SIGNATURE=1&Versionid=2&versionId=1", "https://h/p?Versionid=2&versionId=1"},
		{"https://h/p?sig=1&A=1&a=0&_=1&~=1", "https://h/p?A=1&_=1&a=0&~=1"},
		{"https://u@h:1/p;x?sig=1&a=%2b", "https://u@h:1/p;x?a=%2B"},
		{"https://h/p?sig=1&sv=1&SKT=2&Policy=3&KEY-PAIR-ID=4&x-goog-SignedHeaders=5&keep=6", "https://h/p?keep=6"},
	}
	for _, c := range cases {
		if got := CanonicalDownloadSource(c[0]); got != c[1] {
			t.Errorf("CanonicalDownloadSource(%q) = %q, want %q", c[0], got, c[1])
		}
	}
	// urlsplit raises ValueError for these: the reference fails the package.
	for _, u := range []string{
		"https://[::1/p?sig=1&a=1", "https://::1]/p?sig=1&a=1", "https://[1.2.3.4]/p?sig=1&a=1",
		"https://[v1]/p?sig=1&a=1", "https://[zz]/p?sig=1&a=1", "https://\uff0fx/p?sig=1&a=1",
		"https://a\u2100b/p?sig=1&a=1", "https://[fe80::1%]/p?sig=1&a=1", "https://[fe80::1%a%b]/p?sig=1&a=1",
		"https://[::1/p", // no marker: the reference still splits first
	} {
		if got := CanonicalDownloadSource(u); got != u {
			t.Errorf("CanonicalDownloadSource(%q) = %q, want it unchanged", u, got)
		}
		_, err := Declarations([]metadata.Artifact{{FileHandle: "f", DownloadURL: u}})
		if !errors.Is(err, errdefs.ErrCorruptPackage) {
			t.Errorf("Declarations with URL %q: %v, want ErrCorruptPackage", u, err)
		}
	}
	// Raw invalid UTF-8 is read as Python would decode it with "replace".
	if got := CanonicalDownloadSource("https://h/\xff?sig=1&a=\xe2\x82"); got != "https://h/\ufffd?a=%EF%BF%BD" {
		t.Errorf("invalid UTF-8 input: %q", got)
	}
	if got := SourceHash("https://h/\xff"); got != SourceHash("https://h/\ufffd") {
		t.Errorf("SourceHash of invalid UTF-8 differs from its replacement form")
	}
}

func TestHomePaths(t *testing.T) {
	h := Home{Root: "/srv/cache"}
	must := func(p string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	md5 := "0123456789abcdef0123456789abcdef"
	key := strings.Repeat("ab", 32)
	pkg := must(h.PackageDir("coco/3", "pkg1"))
	checks := [][2]string{
		{h.ModelsCache(), "/srv/cache/models-cache"},
		{h.SharedBlobs(), "/srv/cache/shared-blobs"},
		{h.AutoResolutionCache(), "/srv/cache/auto-resolution-cache"},
		{h.OfflineRegistry(), "/srv/cache/offline-weights-registry"},
		{h.Meta(), "/srv/cache/.meta"},
		{h.CacheDirTag(), "/srv/cache/CACHEDIR.TAG"},
		{h.GCLockPath(), "/srv/cache/.meta/gc.lock"},
		{must(h.ModelDir("coco/3")), "/srv/cache/models-cache/v2-coco-3-df70e86e24a65bd703ee4386bda0d550"},
		{pkg, "/srv/cache/models-cache/v2-coco-3-df70e86e24a65bd703ee4386bda0d550/pkg1"},
		{must(h.MaterializationLockPath("coco/3", "pkg1")), "/srv/cache/models-cache/v2-coco-3-df70e86e24a65bd703ee4386bda0d550/.pkg1.materialization.lock"},
		{must(h.BlobPath(md5)), "/srv/cache/shared-blobs/" + md5},
		{must(h.BlobLockPath(md5)), "/srv/cache/shared-blobs/." + md5 + ".lock"},
		{must(h.AutoResolutionEntryPath(key)), "/srv/cache/auto-resolution-cache/" + key + ".json"},
		{must(h.AutoResolutionLockPath(key)), "/srv/cache/auto-resolution-cache/." + key + ".json.lock"},
		{must(h.OfflineRecordPath("coco/3")), "/srv/cache/offline-weights-registry/v2-coco-3-df70e86e24a65bd703ee4386bda0d550.json"},
		{must(h.OfflineRecordLockPath("coco/3")), "/srv/cache/offline-weights-registry/.v2-coco-3-df70e86e24a65bd703ee4386bda0d550.json.lock"},
		{must(HandlePath(pkg, "weights.onnx")), pkg + "/weights.onnx"},
		{must(HandlePath(pkg, "sub/dir/f.bin")), pkg + "/sub/dir/f.bin"},
		{must(HandleLockPath(pkg, "weights.onnx")), pkg + "/.weights.onnx.lock"},
		{must(HandleLockPath(pkg, "sub/dir/f.bin")), pkg + "/sub/dir/.f.bin.lock"},
		{must(ManifestPath(pkg)), pkg + "/model_config.json"},
		{must(ManifestLockPath(pkg)), pkg + "/.model_config.json.lock"},
		{must(DependencyLinkPath(pkg, "enc")), pkg + "/model_dependencies/enc"},
		{must(DependencyLockPath(pkg, "enc")), pkg + "/model_dependencies/.enc.lock"},
	}
	for _, c := range checks {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}

	// Roots are used as written: "/" and POSIX's "//" survive joining.
	if got := must((Home{Root: "/"}).BlobPath(md5)); got != "/shared-blobs/"+md5 {
		t.Errorf("root /: %q", got)
	}
	if got := must((Home{Root: "//c"}).ModelDir("coco/3")); !strings.HasPrefix(got, "//c/models-cache/") {
		t.Errorf("root //c: %q", got)
	}

	// A relative or empty root is refused before any path work.
	for _, root := range []string{"", "cache", "./cache"} {
		if _, err := (Home{Root: root}).ModelDir("coco/3"); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("Root %q: ModelDir error %v", root, err)
		}
		if _, err := (Home{Root: root}).BlobPath(md5); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("Root %q: BlobPath error %v", root, err)
		}
	}
	if _, err := HandlePath("relative/pkg", "w.onnx"); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Errorf("relative package dir: %v", err)
	}
	// Argument checks come first and carry their own kinds.
	if _, err := h.BlobPath("ABC"); !errors.Is(err, errdefs.ErrCorruptPackage) {
		t.Errorf("BlobPath(ABC): %v", err)
	}
	for _, k := range []string{"", "../x", "a.json", "a/b", "a b"} {
		if _, err := h.AutoResolutionEntryPath(k); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("AutoResolutionEntryPath(%q): %v", k, err)
		}
	}
}

func TestNewHome(t *testing.T) {
	cases := [][2]string{
		{"/srv/cache", "/srv/cache"},
		{"/srv/cache/", "/srv/cache"},
		{"/srv/./x/../cache", "/srv/cache"},
		{"//srv/cache", "//srv/cache"}, // posixpath.normpath keeps exactly two slashes
		{"///srv/cache", "/srv/cache"},
		{"/", "/"},
	}
	for _, c := range cases {
		h, err := NewHome(c[0])
		if err != nil || h.Root != c[1] {
			t.Errorf("NewHome(%q) = %q, %v; want %q", c[0], h.Root, err, c[1])
		}
	}
	for _, bad := range []string{"", "a\x00b"} {
		if _, err := NewHome(bad); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("NewHome(%q): %v", bad, err)
		}
	}

	// A relative root is joined to getcwd(2), not to $PWD, exactly as
	// os.path.abspath does: through a symlinked working directory the
	// kernel's answer is the real path.
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(real, link); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
	t.Chdir(link)
	t.Setenv("PWD", link)
	h, err := NewHome("cache/../c")
	if err != nil {
		t.Fatal(err)
	}
	realResolved, err := filepath.EvalSymlinks(real)
	if err != nil {
		t.Fatal(err)
	}
	if h.Root != realResolved+"/c" {
		t.Errorf("NewHome(relative) = %q, want %q", h.Root, realResolved+"/c")
	}
}
