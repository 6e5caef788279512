// Package pep440 parses, normalizes and orders version strings the way PEP 440
// defines them, without depending on Python.
//
// The reference stores str(Version(x)) for every version it records (CUDA,
// TensorRT, driver, L4T, torch …) and compares Version objects, so both the
// normal form and the ordering must match PEP 440 exactly:
//
//   - String() is the normal form: lower case, leading zeros dropped per
//     numeric segment, spellings and separators unified, epoch 0 omitted,
//     trailing zero release segments kept ("12.6.0" stays "12.6.0").
//   - Compare / Equal ignore trailing zero release segments ("12.6" ==
//     "12.6.0") and order epoch, release, then dev < a < b < rc < final <
//     post, with a local version sorting right after its public version.
//
// Numbers have arbitrary size (Python ints do), so they are held as decimal
// strings without leading zeros and compared by length, then digits.
package pep440

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// ErrInvalidVersion is matched (errors.Is) by every parse failure.
var ErrInvalidVersion = errors.New("invalid PEP 440 version")

// InvalidVersionError reports a string that is not a PEP 440 version
// (Python's packaging.version.InvalidVersion).
type InvalidVersionError struct {
	Input string
}

func (e *InvalidVersionError) Error() string {
	return fmt.Sprintf("invalid version: %q", e.Input)
}

// Unwrap lets errors.Is(err, ErrInvalidVersion) match.
func (e *InvalidVersionError) Unwrap() error { return ErrInvalidVersion }

// Version is a parsed PEP 440 version. The zero value is not a valid version;
// obtain one from Parse or MustParse. Versions are immutable values.
type Version struct {
	epoch   string   // "0" when absent
	release []string // at least one segment, as written (trailing zeros kept)
	preL    string   // "", "a", "b" or "rc"
	preN    string
	hasPost bool
	postN   string
	hasDev  bool
	devN    string
	local   []string // lower-case segments; numeric ones without leading zeros
}

// pattern is the permissive grammar of PEP 440 Appendix B ("Parsing version
// strings with regular expressions"). Go's regexp picks the same submatches
// a backtracking engine would (leftmost-first), so optional separators are
// attributed exactly as Python's re attributes them; whitespace is trimmed
// separately because Go's \s is ASCII-only and Python's is not.
var pattern = regexp.MustCompile(`(?i)^v?` +
	`(?:(?P<epoch>[0-9]+)!)?` +
	`(?P<release>[0-9]+(?:\.[0-9]+)*)` +
	`(?P<pre>[-_.]?(?P<pre_l>alpha|a|beta|b|preview|pre|c|rc)[-_.]?(?P<pre_n>[0-9]+)?)?` +
	`(?P<post>(?:-(?P<post_n1>[0-9]+))|(?:[-_.]?(?P<post_l>post|rev|r)[-_.]?(?P<post_n2>[0-9]+)?))?` +
	`(?P<dev>[-_.]?(?P<dev_l>dev)[-_.]?(?P<dev_n>[0-9]+)?)?` +
	`(?:\+(?P<local>[a-z0-9]+(?:[-_.][a-z0-9]+)*))?$`)

// isPySpace reports whether Python's str.isspace() (and so re's \s) is true
// for r: Unicode White_Space plus the ASCII separators U+001C..U+001F.
func isPySpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// Parse parses s (surrounding whitespace, a leading "v", any letter case and
// the alternative spellings and separators of PEP 440 are accepted).
func Parse(s string) (Version, error) {
	trimmed := strings.TrimFunc(s, isPySpace)
	m := pattern.FindStringSubmatch(trimmed)
	if m == nil {
		return Version{}, &InvalidVersionError{Input: s}
	}
	g := func(name string) string { return m[pattern.SubexpIndex(name)] }
	v := Version{epoch: "0"}
	if e := g("epoch"); e != "" {
		v.epoch = trimZeros(e)
	}
	for _, seg := range strings.Split(g("release"), ".") {
		v.release = append(v.release, trimZeros(seg))
	}
	if l := g("pre_l"); l != "" {
		v.preL = canonicalPre(strings.ToLower(l))
		v.preN = numOrZero(g("pre_n"))
	}
	switch {
	case g("post_n1") != "":
		v.hasPost, v.postN = true, trimZeros(g("post_n1"))
	case g("post_l") != "":
		v.hasPost, v.postN = true, numOrZero(g("post_n2"))
	}
	if g("dev_l") != "" {
		v.hasDev, v.devN = true, numOrZero(g("dev_n"))
	}
	if g("local") != "" {
		for _, part := range strings.FieldsFunc(g("local"), func(r rune) bool { return r == '.' || r == '-' || r == '_' }) {
			if isDigits(part) {
				part = trimZeros(part)
			} else {
				part = strings.ToLower(part)
			}
			v.local = append(v.local, part)
		}
	}
	return v, nil
}

// MustParse is Parse for literals known to be valid; it panics otherwise.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// Normalize returns the normal form of s.
func Normalize(s string) (string, error) {
	v, err := Parse(s)
	if err != nil {
		return "", err
	}
	return v.String(), nil
}

func canonicalPre(l string) string {
	switch l {
	case "alpha", "a":
		return "a"
	case "beta", "b":
		return "b"
	}
	return "rc" // c, pre, preview, rc
}

func numOrZero(s string) string {
	if s == "" {
		return "0"
	}
	return trimZeros(s)
}

// trimZeros drops leading zeros of a digit string ("007" -> "7", "000" -> "0").
func trimZeros(s string) string {
	t := strings.TrimLeft(s, "0")
	if t == "" {
		return "0"
	}
	return t
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// IsZero reports whether v is the zero Version (not obtained from Parse).
func (v Version) IsZero() bool { return len(v.release) == 0 }

// String returns the PEP 440 normal form.
func (v Version) String() string {
	if v.IsZero() {
		return ""
	}
	var b strings.Builder
	if v.epoch != "0" {
		b.WriteString(v.epoch)
		b.WriteByte('!')
	}
	b.WriteString(strings.Join(v.release, "."))
	if v.preL != "" {
		b.WriteString(v.preL)
		b.WriteString(v.preN)
	}
	if v.hasPost {
		b.WriteString(".post")
		b.WriteString(v.postN)
	}
	if v.hasDev {
		b.WriteString(".dev")
		b.WriteString(v.devN)
	}
	if len(v.local) > 0 {
		b.WriteByte('+')
		b.WriteString(strings.Join(v.local, "."))
	}
	return b.String()
}

// Public returns v without its local segment.
func (v Version) Public() Version {
	v.local = nil
	return v
}

// Local returns the local segment in normal form ("" when there is none).
func (v Version) Local() string { return strings.Join(v.local, ".") }

// IsPrerelease reports whether v is a pre-release or a development release.
func (v Version) IsPrerelease() bool { return v.preL != "" || v.hasDev }

// Release returns the release segments in normal form (trailing zeros kept).
func (v Version) Release() []string { return append([]string(nil), v.release...) }

// MajorMinor returns the version "<major>.<minor>" built from the first two
// release segments, the minor padded with 0 when absent (the epoch is kept,
// everything after the release dropped). Used for "major.minor" matching
// (L4T, ONNX Runtime tables).
func (v Version) MajorMinor() Version {
	out := Version{epoch: v.epoch}
	if v.IsZero() {
		return out
	}
	minor := "0"
	if len(v.release) > 1 {
		minor = v.release[1]
	}
	out.release = []string{v.release[0], minor}
	return out
}

// Key returns a string that is equal for two versions exactly when Equal
// reports them equal (usable as a map key): the normal form with trailing
// zero release segments removed.
func (v Version) Key() string {
	if v.IsZero() {
		return ""
	}
	k := v
	k.release = significantRelease(v.release)
	if len(k.release) == 0 {
		k.release = []string{"0"}
	}
	return k.String()
}

// significantRelease drops trailing zero segments; equality and ordering
// ignore them ("1.0" == "1").
func significantRelease(r []string) []string {
	n := len(r)
	for n > 0 && r[n-1] == "0" {
		n--
	}
	return r[:n]
}

// Equal reports whether v and o compare equal (trailing zero release segments
// ignored, so "12.6" equals "12.6.0").
func (v Version) Equal(o Version) bool { return v.Compare(o) == 0 }

// Less reports whether v sorts before o.
func (v Version) Less(o Version) bool { return v.Compare(o) < 0 }

// Compare returns -1, 0 or +1 as v sorts before, equal to or after o.
func (v Version) Compare(o Version) int {
	if c := cmpNum(v.epoch, o.epoch); c != 0 {
		return c
	}
	if c := cmpRelease(significantRelease(v.release), significantRelease(o.release)); c != 0 {
		return c
	}
	if c := cmpPre(v, o); c != 0 {
		return c
	}
	// A missing post-release sorts before any post-release.
	if c := cmpOptional(v.hasPost, v.postN, o.hasPost, o.postN, -1); c != 0 {
		return c
	}
	// A missing dev-release sorts after any dev-release.
	if c := cmpOptional(v.hasDev, v.devN, o.hasDev, o.devN, +1); c != 0 {
		return c
	}
	return cmpLocal(v.local, o.local)
}

// cmpNum compares two digit strings without leading zeros.
func cmpNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

// cmpRelease compares segment by segment; a proper prefix sorts first.
func cmpRelease(a, b []string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := cmpNum(a[i], b[i]); c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}

// preRank places the pre-release phase: a dev-only release ("1.0.dev0")
// sorts before every pre-release, a final or post release after all of them.
func preRank(v Version) int {
	switch {
	case v.preL == "" && !v.hasPost && v.hasDev:
		return 0
	case v.preL == "a":
		return 1
	case v.preL == "b":
		return 2
	case v.preL == "rc":
		return 3
	}
	return 4
}

func cmpPre(v, o Version) int {
	rv, ro := preRank(v), preRank(o)
	if rv != ro {
		return sign(rv - ro)
	}
	if v.preL != "" {
		return cmpNum(v.preN, o.preN)
	}
	return 0
}

// cmpOptional compares optional numbers; absentSign is how an absent value
// sorts against a present one.
func cmpOptional(hasA bool, a string, hasB bool, b string, absentSign int) int {
	switch {
	case hasA && hasB:
		return cmpNum(a, b)
	case hasA == hasB:
		return 0
	case !hasA:
		return absentSign
	}
	return -absentSign
}

// cmpLocal: no local sorts first; segments compare pairwise, alphanumeric
// segments before numeric ones, numeric by value, others as strings; a proper
// prefix sorts first.
func cmpLocal(a, b []string) int {
	if len(a) == 0 || len(b) == 0 {
		return sign(len(a) - len(b))
	}
	for i := 0; i < len(a) && i < len(b); i++ {
		da, db := isDigits(a[i]), isDigits(b[i])
		var c int
		switch {
		case da && db:
			c = cmpNum(a[i], b[i])
		case da:
			c = 1
		case db:
			c = -1
		default:
			c = strings.Compare(a[i], b[i])
		}
		if c != 0 {
			return c
		}
	}
	return sign(len(a) - len(b))
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
