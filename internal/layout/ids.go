package layout

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/modelcache/modelcache/errdefs"
)

const (
	maxPackageIDLen = 255
	maxSegmentLen   = 255
	md5HexLen       = 32
)

// isWindowsReserved reports whether an upper-cased name is a device name
// that Windows resolves regardless of directory or extension. The reference
// refuses them everywhere so that a cache stays portable; COM0 and LPT0 are
// not reserved.
func isWindowsReserved(upper string) bool {
	switch upper {
	case "CON", "PRN", "AUX", "NUL",
		"COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
		"LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9":
		return true
	}
	return false
}

// isReservedFirstSegment reports whether a lower-cased first handle segment
// names a package-dir entry owned by the cache itself, which the artefact
// would overwrite or shadow.
func isReservedFirstSegment(lower string) bool {
	switch lower {
	case "model_config.json", "model_dependencies", "dependencies":
		return true
	}
	return false
}

// ValidatePackageID checks a model package id (§4.2): ASCII letters and
// digits only, 1..255 characters, not a Windows device name (any case).
// The error wraps errdefs.ErrInsecureIdentifier.
func ValidatePackageID(id string) error {
	fail := func(reason string) error {
		return newError(errdefs.ErrInsecureIdentifier, "package id", id, "%s", reason)
	}
	switch {
	case id == "":
		return fail("is empty")
	case len(id) > maxPackageIDLen:
		return fail("is longer than 255 characters")
	}
	for i := 0; i < len(id); i++ {
		if !isASCIIAlnum(id[i]) {
			return fail("may contain only ASCII letters and digits")
		}
	}
	if isWindowsReserved(strings.ToUpper(id)) {
		return fail("is a reserved Windows device name")
	}
	return nil
}

// ValidateRemoteModelID checks a model id before it is sent to a weights
// provider (§4.3): not blank after trimming Unicode whitespace (as Python's
// str.strip sees it) and free of NUL. The error wraps
// errdefs.ErrInvalidParameter.
func ValidateRemoteModelID(id string) error {
	const msg = "Remote model identity must be a non-empty string."
	if !utf8.ValidString(id) {
		return newError(errdefs.ErrInvalidParameter, "remote model id", id, "%s (not valid UTF-8)", msg)
	}
	if strings.IndexByte(id, 0) >= 0 {
		return newError(errdefs.ErrInvalidParameter, "remote model id", id, "%s (contains NUL)", msg)
	}
	if strings.TrimFunc(id, isPythonSpace) == "" {
		return newError(errdefs.ErrInvalidParameter, "remote model id", id, "%s", msg)
	}
	return nil
}

// isPythonSpace reports what str.isspace() reports: Go's White_Space set plus
// the information separators U+001C..U+001F (bidi classes B and S).
func isPythonSpace(r rune) bool {
	return r >= 0x1c && r <= 0x1f || unicode.IsSpace(r)
}

// ValidateHandle checks one artefact file handle (§4.4): the relative,
// '/'-separated path of an artefact inside its package directory. Checks
// that need the whole package (duplicates, case ambiguity, file/directory
// collisions) are in Declarations. The error wraps errdefs.ErrCorruptPackage.
func ValidateHandle(h string) error {
	fail := func(format string, args ...any) error {
		return newError(errdefs.ErrCorruptPackage, "file handle", h, format, args...)
	}
	switch {
	case h == "":
		return fail("is empty")
	case strings.IndexByte(h, 0) >= 0:
		return fail("contains NUL")
	case strings.IndexByte(h, '\\') >= 0:
		return fail(`contains "\"`)
	case h[0] == '/':
		return fail(`starts with "/" (must be relative)`)
	case h[len(h)-1] == '/':
		return fail(`ends with "/"`)
	}
	segs := strings.Split(h, "/")
	for _, seg := range segs {
		if reason := segmentProblem(seg); reason != "" {
			return fail("segment %q %s", seg, reason)
		}
	}
	if isReservedFirstSegment(strings.ToLower(segs[0])) {
		return fail("%q is reserved for the cache's own files", segs[0])
	}
	return nil
}

// ValidateDependencyNames checks the names of one package's model
// dependencies: each a single path segment under the handle segment rules
// (it names model_dependencies/<name>), and unique ignoring case, since two
// names differing only in case would share one link on case-insensitive file
// systems. The error wraps errdefs.ErrCorruptPackage.
func ValidateDependencyNames(names []string) error {
	seen := make(map[string]string, len(names))
	for _, name := range names {
		if err := validateDependencyName(name); err != nil {
			return err
		}
		folded := strings.ToLower(name)
		if prev, dup := seen[folded]; dup {
			if prev == name {
				return newError(errdefs.ErrCorruptPackage, "dependency name", name, "is declared twice")
			}
			return newError(errdefs.ErrCorruptPackage, "dependency name", name, "differs from %q only in letter case", prev)
		}
		seen[folded] = name
	}
	return nil
}

func validateDependencyName(name string) error {
	if name == "" {
		return newError(errdefs.ErrCorruptPackage, "dependency name", name, "is empty")
	}
	if strings.IndexByte(name, '/') >= 0 {
		return newError(errdefs.ErrCorruptPackage, "dependency name", name, `must be a single path segment (contains "/")`)
	}
	if reason := segmentProblem(name); reason != "" {
		return newError(errdefs.ErrCorruptPackage, "dependency name", name, "%s", reason)
	}
	return nil
}

// segmentProblem returns why one path segment is unsafe, or "".
func segmentProblem(seg string) string {
	switch {
	case seg == "":
		return "is empty"
	case seg == "." || seg == "..":
		return "is a relative path component"
	case len(seg) > maxSegmentLen:
		return "is longer than 255 characters"
	}
	for i := 0; i < len(seg); i++ {
		if c := seg[i]; !isASCIIAlnum(c) && c != '.' && c != '_' && c != '-' {
			return "may contain only ASCII letters, digits, '.', '_' and '-'"
		}
	}
	if seg[len(seg)-1] == '.' {
		return `ends with "." (Windows drops it)`
	}
	stem, _, _ := strings.Cut(seg, ".")
	if isWindowsReserved(strings.ToUpper(stem)) {
		return "is a reserved Windows device name"
	}
	// Lock files (.<name>.lock) live beside artefacts; an artefact must not
	// be able to take a lock's name.
	if seg[0] == '.' && strings.HasSuffix(strings.ToLower(seg), ".lock") {
		return "has the form of a lock file (.<name>.lock)"
	}
	return ""
}

// ValidateMD5 checks a provider MD5 (§4.5): exactly 32 lowercase hex digits.
// The error wraps errdefs.ErrCorruptPackage.
func ValidateMD5(md5 string) error {
	if len(md5) != md5HexLen {
		return newError(errdefs.ErrCorruptPackage, "md5 hash", md5, "must be 32 lowercase hex digits")
	}
	for i := 0; i < len(md5); i++ {
		if c := md5[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return newError(errdefs.ErrCorruptPackage, "md5 hash", md5, "must be 32 lowercase hex digits")
		}
	}
	return nil
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
