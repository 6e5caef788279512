package download

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestCheckURL(t *testing.T) {
	for raw, want := range map[string]string{
		"https://storage.example.com/b/w.onnx?sig=1": "",
		"HTTP://h/x":              "",
		"file:///etc/passwd":      `unsupported URL scheme "file"`,
		"ftp://h/x":               `unsupported URL scheme "ftp"`,
		"gs://bucket/x":           `unsupported URL scheme "gs"`,
		"/relative/path":          `unsupported URL scheme ""`,
		"http:///no-host":         "malformed URL: no host",
		"http://h/%zz?sig=SECRET": "malformed URL",
		"http://[::1/x":           "malformed URL",
	} {
		err := checkURL(raw)
		switch {
		case want == "" && err != nil:
			t.Errorf("%q: %v", raw, err)
		case want != "" && (err == nil || !strings.HasPrefix(err.Error(), want)):
			t.Errorf("%q: %v, want %q", raw, err, want)
		case err != nil && strings.Contains(err.Error(), "SECRET"):
			t.Errorf("%q: the error carries the URL: %v", raw, err)
		}
	}
}

// TestPermanentTransportErrors: redirect loops, redirect caps, redirects to
// other schemes and untrusted certificates are permanent, through the
// engine's client; a refused connection is not.
func TestPermanentTransportErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/chain/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Path+"x", http.StatusFound) // a new URL every time
	})
	mux.HandleFunc("/tofile", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tlsSrv := httptest.NewTLSServer(mux) // its certificate is trusted by nobody
	defer tlsSrv.Close()
	closed := httptest.NewServer(mux)
	closedURL := closed.URL
	closed.Close()

	c := NewClient(TransportOptions{ConnectTimeout: 5 * time.Second})
	for _, tc := range []struct{ url, want string }{
		{srv.URL + "/loop", "redirect loop"},
		{srv.URL + "/chain/", "more than 10 redirects"},
		{srv.URL + "/tofile", `unsupported URL scheme "file"`},
		{tlsSrv.URL + "/loop", "TLS certificate verification failed"},
		{closedURL + "/x", ""},
	} {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, tc.url, nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Errorf("%s: no error", tc.url)
			continue
		}
		if got := permanentReason(err); !strings.HasPrefix(got, tc.want) || (tc.want == "") != (got == "") {
			t.Errorf("%s: reason %q, want %q (err %v)", tc.url, got, tc.want, err)
		}
	}
	// A caller's client without redirect rules still fails a loop at once
	// (net/http's own cap) and classifies it.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/chain/", nil)
	_, err := (&http.Client{}).Do(req)
	if permanentReason(err) == "" {
		t.Errorf("net/http's redirect cap not classified: %v", err)
	}
	if permanentReason(errors.New("connection reset by peer")) != "" {
		t.Error("a reset counted as permanent")
	}
}
