package faultsrv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

func get(t *testing.T, u, rng string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	c := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// TestScriptedModes: a script applies in order, then the Then fault; the
// counters see every body byte.
func TestScriptedModes(t *testing.T) {
	s := New(t)
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	u := s.Add("/f", data)
	s.Script("/f", Fault{},
		Fault{Mode: Status, Status: 503, RetryAfter: "2"},
		Fault{Mode: ShortBody, At: 100},
		Fault{Mode: WrongBytes},
		Fault{IgnoreRange: true},
		Fault{Mode: RedirectLoop},
		Fault{Mode: RedirectScheme})
	resp, _, err := get(t, u, "")
	if err != nil || resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "2" {
		t.Fatalf("status: %v %v", resp, err)
	}
	if _, b, err := get(t, u, ""); err == nil || len(b) != 100 {
		t.Fatalf("short body: %d bytes, %v", len(b), err)
	}
	if _, b, err := get(t, u, ""); err != nil || len(b) != len(data) || bytes.Equal(b, data) {
		t.Fatalf("wrong bytes: %d bytes, equal %v, %v", len(b), bytes.Equal(b, data), err)
	}
	if resp, b, _ := get(t, u, "bytes=10-19"); resp.StatusCode != 200 || len(b) != len(data) {
		t.Fatalf("ignored range: %d, %d bytes", resp.StatusCode, len(b))
	}
	if resp, _, _ := get(t, u, ""); resp.StatusCode != 302 || resp.Header.Get("Location") == "" {
		t.Fatalf("redirect loop: %d", resp.StatusCode)
	}
	if resp, _, _ := get(t, u, ""); resp.Header.Get("Location") != "file:///etc/passwd" {
		t.Fatalf("redirect scheme: %q", resp.Header.Get("Location"))
	}
	resp, b, err := get(t, u, "bytes=10-19")
	if err != nil || resp.StatusCode != 206 || string(b) != "0123456789" || resp.Header.Get("Content-Range") != "bytes 10-19/100000" {
		t.Fatalf("then: %v %q %v", resp, b, err)
	}
	st := s.Stats("/f")
	if st.GETs != 7 || st.BodyBytes != 100+2*int64(len(data))+10 || s.Served() != st.BodyBytes {
		t.Errorf("stats %+v, served %d", st, s.Served())
	}
}

// TestExpireAndRefresh: URLs handed out before Expire answer its code;
// a fresh SignedURL works.
func TestExpireAndRefresh(t *testing.T) {
	s := New(t)
	old := s.Add("/f", []byte("abc"))
	s.Expire("/f", 401)
	if resp, _, _ := get(t, old, ""); resp.StatusCode != 401 {
		t.Fatalf("expired URL: %d", resp.StatusCode)
	}
	if resp, b, _ := get(t, s.SignedURL("/f"), ""); resp.StatusCode != 200 || string(b) != "abc" {
		t.Fatalf("fresh URL: %d %q", resp.StatusCode, b)
	}
	if st := s.Stats("/f"); st.Refused != 1 || st.GETs != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestUnboundedModesStop: endless and stalled responses end when the
// client goes away, and Close releases what is left.
func TestUnboundedModesStop(t *testing.T) {
	s := New(t)
	u := s.Add("/f", []byte("abc"))
	s.Script("/f", Fault{Mode: Endless})
	req, _ := http.NewRequest(http.MethodHead, u, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD of an endless body: %v %v", resp, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.ContentLength != -1 {
		t.Fatalf("endless GET: %v %v", resp, err)
	}
	if n, _ := io.CopyN(io.Discard, resp.Body, 5<<20); n != 5<<20 {
		t.Fatalf("endless body ended after %d bytes", n)
	}
	cancel()
	resp.Body.Close()
	qctx, qcancel := context.WithTimeout(context.Background(), time.Minute)
	defer qcancel()
	if err := s.Quiesce(qctx); err != nil {
		t.Fatal(err)
	}
	s.Script("/f", Fault{Mode: Stall, At: 1})
	go func() { _, _, _ = get(t, u, "") }()
	deadline := time.Now().Add(time.Minute)
	for s.Stats("/f").BodyBytes < 5<<20+1 { // until the stall began
		if time.Now().After(deadline) {
			t.Fatal("the stalled response never started")
		}
		time.Sleep(time.Millisecond)
	}
	s.Close()
	if err := s.Quiesce(qctx); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
