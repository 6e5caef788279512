package roboflow

import (
	"net/url"
	"strings"

	"github.com/modelcache/modelcache/provider"
)

// WeightsPath is the metadata endpoint path.
const WeightsPath = "/models/v1/external/weights"

// formEscape encodes s the way Python's urlencode (quote_plus) does: space
// becomes '+', everything outside ASCII letters, digits and "_.-~" is
// percent-encoded ('/' -> %2F).
func formEscape(s string) string { return url.QueryEscape(s) }

// buildURL appends params (in order, repeated names kept) to base, which may
// already carry a query. A name present both in the base query and in params
// is an AssumptionError, as in the reference.
func buildURL(base string, params [][2]string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", &provider.AssumptionError{Message: "Could not parse base URL of the weights provider: " + redactURLError(err)}
	}
	existing, _ := url.ParseQuery(u.RawQuery)
	var b strings.Builder
	for _, p := range params {
		if _, ok := existing[p[0]]; ok {
			return "", &provider.AssumptionError{Message: "Query parameter '" + p[0] + "' is present both in the base URL and in the parameters to be added."}
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(formEscape(p[0]))
		b.WriteByte('=')
		b.WriteString(formEscape(p[1]))
	}
	if b.Len() == 0 {
		return base, nil
	}
	// Keep base verbatim (fragment aside) and append the new query.
	head, frag, hasFrag := strings.Cut(base, "#")
	sep := "?"
	if strings.Contains(head, "?") {
		sep = "&"
		if strings.HasSuffix(head, "?") || strings.HasSuffix(head, "&") {
			sep = ""
		}
	}
	out := head + sep + b.String()
	if hasFrag {
		out += "#" + frag
	}
	return out, nil
}

// requestParams merges the built-in parameters with the caller's extras:
// built-ins first, extras after in their order; an extra whose name equals a
// built-in name is dropped (built-in keys win).
func requestParams(builtin [][2]string, extras ...[][2]string) [][2]string {
	out := append([][2]string(nil), builtin...)
	for _, list := range extras {
	next:
		for _, e := range list {
			for _, b := range builtin {
				if b[0] == e[0] {
					continue next
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// gatewayEscape percent-encodes everything except ASCII letters, digits and
// _ . - ~ ( ) * ! ' (JavaScript encodeURIComponent's safe set).
func gatewayEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			strings.IndexByte("_.-~()*!'", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// GatewayBase normalizes a SECURE_GATEWAY value: trailing '/' removed,
// "http://" prepended unless the value contains "://". Empty stays empty.
func GatewayBase(gateway string) string {
	g := strings.TrimRight(gateway, "/")
	if g == "" {
		return ""
	}
	if !strings.Contains(g, "://") {
		g = "http://" + g
	}
	return g
}

// GatewayRewrite rewrites rawURL to <base>/proxy?url=<encoded rawURL> when a
// secure gateway is configured (registry-protocol §6). It is idempotent.
func GatewayRewrite(gateway, rawURL string) string {
	base := GatewayBase(gateway)
	if base == "" {
		return rawURL
	}
	prefix := base + "/proxy?url="
	if strings.HasPrefix(rawURL, prefix) {
		return rawURL
	}
	return prefix + gatewayEscape(rawURL)
}

// LogURL returns scheme://host/path of a URL: no user info, query or fragment,
// so keys and signatures never reach logs or error strings.
func LogURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Cut at the first '?' or '#' and drop user info by hand.
		s := raw
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "://"); i >= 0 {
			rest := s[i+3:]
			if at := strings.LastIndex(strings.SplitN(rest, "/", 2)[0], "@"); at >= 0 {
				s = s[:i+3] + rest[at+1:]
			}
		}
		return s
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// redactURLError renders a url.Parse or transport error without the URL it carries.
func redactURLError(err error) string {
	if ue, ok := err.(*url.Error); ok {
		return ue.Op + " " + LogURL(ue.URL) + ": " + redactURLError(ue.Err)
	}
	return err.Error()
}
