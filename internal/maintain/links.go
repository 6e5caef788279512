package maintain

import (
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/blobfs"
)

// linkInfo describes where a symlink leads, worked out from its text alone:
// nothing is opened or stat'ed through the link, and no path is resolved
// with EvalSymlinks. The link's own directory is known to be a real
// directory inside H (it was reached with O_NOFOLLOW opens), so a text of
// leading ".." steps followed by plain names resolves lexically exactly as
// the kernel would resolve it up to the first symlink it names.
type linkInfo struct {
	// Rel is the target relative to H when Inside ("" otherwise).
	Rel string
	// Inside: the target lies under H (as written, or as resolved).
	Inside bool
	// Exact: the text is of a form whose lexical resolution is the real one
	// (no "." or ".." after a plain name).
	Exact bool
	// BlobMD5 is set when the text names .../shared-blobs/<md5> anywhere
	// (lexically: the conservative test GC marks with).
	BlobMD5 string
	// OurBlob: it resolves to this cache's shared-blobs/<BlobMD5>.
	OurBlob bool
	// Resolved is the absolute target (for messages; not resolved further).
	Resolved string
}

// classifyLink works out where the link at H/<pos>/<name> with text leads.
func (t *tree) classifyLink(pos, text string) linkInfo {
	var li linkInfo
	if text == "" {
		return li
	}
	if base := filepath.Base(text); md5NameRE.MatchString(base) && filepath.Base(filepath.Dir(text)) == blobfs.DirName {
		li.BlobMD5 = base
	}
	li.Exact = exactText(text)
	var abs string
	if filepath.IsAbs(text) {
		abs = filepath.Clean(text)
	} else {
		// From the real position of the link's directory.
		abs = filepath.Join(t.realRoot, pos, text)
	}
	li.Resolved = abs
	for _, root := range []string{filepath.Clean(t.home.Root), t.realRoot} {
		if rel, ok := relWithin(abs, root); ok {
			li.Inside, li.Rel = true, rel
			break
		}
	}
	if li.Inside && li.Exact && t.unsafe[topBlobs] == nil {
		if dir, base := filepath.Split(li.Rel); dir == topBlobs+"/" && md5NameRE.MatchString(base) {
			li.OurBlob, li.BlobMD5 = true, base
		}
	}
	return li
}

// exactText: an absolute text without "." or ".." components, or a relative
// one of leading ".." steps followed by plain names.
func exactText(text string) bool {
	parts := strings.Split(text, "/")
	names := false
	for i, p := range parts {
		switch {
		case p == "" && (i == 0 || i == len(parts)-1):
		case p == "" || p == ".":
			return false
		case p == "..":
			if names || filepath.IsAbs(text) {
				return false
			}
		default:
			names = true
		}
	}
	return names
}

// relWithin returns p relative to dir when p is dir or lies under it
// (lexically; both cleaned).
func relWithin(p, dir string) (string, bool) {
	if dir == "" {
		return "", false
	}
	if p == dir {
		return ".", true
	}
	prefix := dir
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if strings.HasPrefix(p, prefix) {
		return p[len(prefix):], true
	}
	return "", false
}

// within reports whether p is dir or lies under it (lexically).
func within(p, dir string) bool {
	_, ok := relWithin(p, dir)
	return ok
}
