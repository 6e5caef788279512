package layout

import (
	"net/netip"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// CanonicalDownloadSource returns the form of a download URL that identifies
// an unhashed artefact's source across re-signed URLs (§6.2), exactly as the
// reference computes it with Python's urllib.parse:
//
//   - urlsplit the URL (scheme lower-cased; leading C0 controls/space and every
//     TAB/CR/LF dropped) and parse_qsl the query (keep_blank_values, "&" only,
//     "+" is a space, %XX decoded as UTF-8 with U+FFFD for invalid bytes);
//   - if no parameter name is a signature marker (case-insensitive), return
//     the URL unchanged, fragment included;
//   - else drop the marker and signing parameters, sort the rest by
//     (name, value), urlencode them (quote_plus) and reassemble without the
//     fragment; netloc and path stay as written.
//
// A URL that urlsplit rejects (unbalanced or invalid bracketed host, netloc
// characters that NFKC-normalize to URL delimiters) makes the reference
// raise; it is returned unchanged here, and Declarations reports it.
// Invalid UTF-8 in rawURL is first replaced by U+FFFD, as Python's decoder
// would on the way in, so the result is always valid UTF-8.
func CanonicalDownloadSource(rawURL string) string {
	s, err := canonicalDownloadSource(rawURL)
	if err != nil {
		return toValidUTF8(rawURL)
	}
	return s
}

// SourceHash returns hash_dict({"download_source": CanonicalDownloadSource(rawURL)}),
// the source_hash of an unhashed artefact.
func SourceHash(rawURL string) string {
	return sourceHashOf(CanonicalDownloadSource(rawURL))
}

func sourceHashOf(canonical string) string {
	h, err := pyjson.HashDict(pyjson.ObjectOf("download_source", canonical))
	if err != nil {
		// Unreachable: canonical is valid UTF-8, the only thing HashDict rejects.
		panic("layout: hashing a download source: " + err.Error())
	}
	return h
}

// splitError is what urlsplit's ValueError becomes.
type splitError string

func (e splitError) Error() string { return string(e) }

func canonicalDownloadSource(rawURL string) (string, error) {
	u := toValidUTF8(rawURL)
	p, err := urlSplit(u)
	if err != nil {
		return "", err
	}
	params := parseQSL(p.query)
	if !slices.ContainsFunc(params, func(kv [2]string) bool { return isSignatureMarker(pyLower(kv[0])) }) {
		return u, nil
	}
	kept := params[:0]
	for _, kv := range params {
		if name := pyLower(kv[0]); !isSignatureMarker(name) && !isSigningParam(name) {
			kept = append(kept, kv)
		}
	}
	slices.SortFunc(kept, func(a, b [2]string) int {
		if c := strings.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return strings.Compare(a[1], b[1])
	})
	return urlUnsplit(p.scheme, p.netloc, p.path, urlEncode(kept)), nil
}

// isSignatureMarker: a parameter (lower-cased name) whose presence makes a
// URL "signed" and triggers canonicalization.
func isSignatureMarker(name string) bool {
	switch name {
	case "x-goog-signature", "x-amz-signature", "awsaccesskeyid", "googleaccessid", "sig", "signature":
		return true
	}
	return false
}

// isSigningParam: the other per-signature parameters of S3, GCS, Azure SAS
// and CloudFront URLs, dropped together with the markers.
func isSigningParam(name string) bool {
	switch name {
	case "x-goog-algorithm", "x-goog-credential", "x-goog-date", "x-goog-expires", "x-goog-signedheaders",
		"x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires", "x-amz-signedheaders",
		"x-amz-security-token", "expires", "policy", "key-pair-id",
		"sv", "ss", "srt", "sp", "se", "st", "spr", "sr", "sip", "ses", "sdd",
		"skoid", "sktid", "skt", "ske", "sks", "skv", "saoid", "suoid", "scid":
		return true
	}
	return false
}

// pyLower lower-cases a name as far as comparing str.lower() with an ASCII
// word needs: ASCII letters fold, and U+212A KELVIN SIGN lowers to "k" (the
// only non-ASCII character whose lower() is pure ASCII). Every other
// character stays non-ASCII either way, so it can never match.
func pyLower(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
		case r == '\u212a':
			r = 'k'
		}
		b.WriteRune(r)
	}
	return b.String()
}

type splitURL struct{ scheme, netloc, path, query, fragment string }

// urlSplit follows urllib.parse.urlsplit of CPython 3.11.7 (the reference's
// interpreter line): a scheme is an ASCII letter followed by letters, digits,
// "+-." up to the first ":", the netloc runs from "//" to the first "/", "?"
// or "#", then the fragment is split off before the query.
func urlSplit(u string) (splitURL, error) {
	var p splitURL
	u = strings.TrimLeft(u, c0OrSpace)
	if strings.ContainsAny(u, "\t\r\n") {
		u = strings.NewReplacer("\t", "", "\r", "", "\n", "").Replace(u)
	}
	if i := strings.IndexByte(u, ':'); i > 0 && isASCIILetter(u[0]) && isSchemeText(u[:i]) {
		p.scheme, u = strings.ToLower(u[:i]), u[i+1:]
	}
	if strings.HasPrefix(u, "//") {
		end := len(u)
		if i := strings.IndexAny(u[2:], "/?#"); i >= 0 {
			end = 2 + i
		}
		p.netloc, u = u[2:end], u[end:]
		if err := checkBrackets(p.netloc); err != nil {
			return splitURL{}, err
		}
	}
	if before, after, ok := strings.Cut(u, "#"); ok {
		u, p.fragment = before, after
	}
	if before, after, ok := strings.Cut(u, "?"); ok {
		u, p.query = before, after
	}
	p.path = u
	if err := checkNetlocNFKC(p.netloc); err != nil {
		return splitURL{}, err
	}
	return p, nil
}

// c0OrSpace is U+0000..U+0020, which urlsplit strips from the left.
const c0OrSpace = "\x00\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c\r\x0e\x0f" +
	"\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "

func isASCIILetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isSchemeText(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isASCIIAlnum(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// checkBrackets mirrors urlsplit's "Invalid IPv6 URL" checks: brackets come
// in pairs, and the text between the first "[" and the next "]" is an IPv6
// address (optionally with a zone) or an IPvFuture literal.
func checkBrackets(netloc string) error {
	open, closed := strings.Contains(netloc, "["), strings.Contains(netloc, "]")
	if open != closed {
		return splitError("Invalid IPv6 URL")
	}
	if !open {
		return nil
	}
	_, host, _ := strings.Cut(netloc, "[")
	host, _, _ = strings.Cut(host, "]")
	if strings.HasPrefix(host, "v") {
		if !isIPvFuture(host) {
			return splitError("IPvFuture address is invalid")
		}
		return nil
	}
	// ipaddress.ip_address: IPv4 is refused in brackets; an IPv6 zone must be
	// non-empty and free of "%" (netip checks the former).
	addr, err := netip.ParseAddr(host)
	if err != nil || !addr.Is6() || strings.Count(host, "%") > 1 {
		return splitError("Invalid IPv6 URL")
	}
	return nil
}

// isIPvFuture matches RFC 3986's IPvFuture as urlsplit checks it,
// `\Av[a-fA-F0-9]+\..+\Z` (no newline can be left at this point).
func isIPvFuture(host string) bool {
	i := 1
	for i < len(host) && isHex(host[i]) {
		i++
	}
	return host[0] == 'v' && i > 1 && i+1 < len(host) && host[i] == '.'
}

// checkNetlocNFKC mirrors urlsplit's refusal of a netloc whose NFKC form
// gains a URL delimiter (U+2100 "℀" is "a/c"). The delimiters themselves are
// ASCII and never compose, so this holds exactly when the netloc contains a
// character whose compatibility decomposition includes "/", "?", "#", "@" or
// ":"; in Unicode 14 (CPython 3.11) these are the 19 below.
func checkNetlocNFKC(netloc string) error {
	for _, r := range netloc {
		switch r {
		case '\u2047', '\u2048', '\u2049', '\u2100', '\u2101', '\u2105', '\u2106', '\u2a74',
			'\ufe13', '\ufe16', '\ufe55', '\ufe56', '\ufe5f', '\ufe6b',
			'\uff03', '\uff0f', '\uff1a', '\uff1f', '\uff20':
			return splitError("netloc contains invalid characters under NFKC normalization")
		}
	}
	return nil
}

// parseQSL is parse_qsl(qs, keep_blank_values=True): split on "&", skip empty
// fields, a field without "=" has an empty value, "+" means space, then
// percent-decode.
func parseQSL(qs string) [][2]string {
	var out [][2]string
	for field := range strings.SplitSeq(qs, "&") {
		if field == "" {
			continue
		}
		name, value, _ := strings.Cut(field, "=")
		out = append(out, [2]string{unquotePlus(name), unquotePlus(value)})
	}
	return out
}

// unquotePlus is unquote(s.replace("+", " ")). Like CPython's unquote it
// decodes each maximal run of ASCII characters on its own (so an escape
// sequence interrupted by a literal non-ASCII character does not join up)
// and replaces undecodable bytes with U+FFFD; a "%" not followed by two hex
// digits stays literal.
func unquotePlus(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for len(s) > 0 {
		n := 0
		for n < len(s) && s[n] < utf8.RuneSelf {
			n++
		}
		if n == 0 { // a non-ASCII run stays as is
			for n < len(s) && s[n] >= utf8.RuneSelf {
				n++
			}
			b.WriteString(s[:n])
		} else {
			b.WriteString(decodeUTF8Replace(percentDecode(s[:n])))
		}
		s = s[n:]
	}
	return b.String()
}

func percentDecode(s string) []byte {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			out = append(out, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		out = append(out, s[i])
	}
	return out
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// urlEncode is urlencode(pairs) with its default quote_plus: "name=value"
// joined by "&", bytes outside [A-Za-z0-9_.~-] as %XX (upper-case hex),
// space as "+".
func urlEncode(pairs [][2]string) string {
	var b strings.Builder
	for i, kv := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		quotePlus(&b, kv[0])
		b.WriteByte('=')
		quotePlus(&b, kv[1])
	}
	return b.String()
}

func quotePlus(b *strings.Builder, s string) {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case isASCIIAlnum(c) || c == '_' || c == '.' || c == '-' || c == '~':
			b.WriteByte(c)
		case c == ' ':
			b.WriteByte('+')
		default:
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xf])
		}
	}
}

// urlUnsplit is urlunsplit((scheme, netloc, path, query, "")): "//" is added
// when there is a netloc, or when the scheme is one that uses a netloc and
// the path does not already start with "//".
func urlUnsplit(scheme, netloc, path, query string) string {
	u := path
	if netloc != "" || scheme != "" && usesNetloc(scheme) && !strings.HasPrefix(u, "//") {
		if u != "" && u[0] != '/' {
			u = "/" + u
		}
		u = "//" + netloc + u
	}
	if scheme != "" {
		u = scheme + ":" + u
	}
	if query != "" {
		u += "?" + query
	}
	return u
}

// usesNetloc is urllib.parse.uses_netloc of CPython 3.11.
func usesNetloc(scheme string) bool {
	switch scheme {
	case "", "ftp", "http", "gopher", "nntp", "telnet", "imap", "wais", "file", "mms", "https",
		"shttp", "snews", "prospero", "rtsp", "rtsps", "rtspu", "rsync", "svn", "svn+ssh", "sftp",
		"nfs", "git", "git+ssh", "ws", "wss":
		return true
	}
	return false
}

// decodeUTF8Replace is bytes.decode("utf-8", "replace"): each maximal
// subpart of an ill-formed sequence becomes one U+FFFD (Unicode's
// recommended practice, which CPython follows). utf8.DecodeRune differs: it
// reports every byte of a truncated sequence separately.
func decodeUTF8Replace(p []byte) string {
	if utf8.Valid(p) {
		return string(p)
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		c := p[i]
		if c < utf8.RuneSelf {
			b.WriteByte(c)
			i++
			continue
		}
		size, lo, hi := utf8SeqBounds(c)
		if size == 0 {
			b.WriteRune(utf8.RuneError)
			i++
			continue
		}
		j := i + 1
		for k := 1; k < size; k++ {
			if j >= len(p) || p[j] < lo || p[j] > hi {
				break
			}
			lo, hi = 0x80, 0xbf // only the second byte has a narrowed range
			j++
		}
		if j-i == size {
			b.Write(p[i:j])
		} else {
			b.WriteRune(utf8.RuneError)
		}
		i = j
	}
	return b.String()
}

// utf8SeqBounds returns the sequence length a lead byte announces and the
// allowed range of the second byte (which rules out overlongs, surrogates
// and values above U+10FFFF); size 0 means c cannot start a sequence.
func utf8SeqBounds(c byte) (size int, lo, hi byte) {
	switch {
	case c >= 0xc2 && c <= 0xdf:
		return 2, 0x80, 0xbf
	case c == 0xe0:
		return 3, 0xa0, 0xbf
	case c == 0xed:
		return 3, 0x80, 0x9f
	case c >= 0xe1 && c <= 0xef:
		return 3, 0x80, 0xbf
	case c == 0xf0:
		return 4, 0x90, 0xbf
	case c >= 0xf1 && c <= 0xf3:
		return 4, 0x80, 0xbf
	case c == 0xf4:
		return 4, 0x80, 0x8f
	}
	return 0, 0, 0
}

// toValidUTF8 treats s as UTF-8 bytes decoded with errors="replace".
func toValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return decodeUTF8Replace([]byte(s))
}
