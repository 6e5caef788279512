package roboflow

import (
	"errors"
	"testing"

	"github.com/modelcache/modelcache/provider"
)

func TestGatewayRewriteSpecExamples(t *testing.T) {
	cases := []struct{ gw, in, want string }{
		{"https://gw.local/edge",
			"https://api.roboflow.com/models/v1/external/weights?modelId=acme-ws%2Fparcel-detector%2F7",
			"https://gw.local/edge/proxy?url=https%3A%2F%2Fapi.roboflow.com%2Fmodels%2Fv1%2Fexternal%2Fweights%3FmodelId%3Dacme-ws%252Fparcel-detector%252F7"},
		{"gw.local:8080/edge/",
			"https://storage.googleapis.com/rf-models/acme/7/weights.onnx?X-Goog-Signature=ab12",
			"http://gw.local:8080/edge/proxy?url=https%3A%2F%2Fstorage.googleapis.com%2Frf-models%2Facme%2F7%2Fweights.onnx%3FX-Goog-Signature%3Dab12"},
		// Safe set of the encoder: letters, digits and _ . - ~ ( ) * ! '
		{"http://g", "a_b.c-d~e(f)g*h!i'j k+l", "http://g/proxy?url=a_b.c-d~e(f)g*h!i'j%20k%2Bl"},
		{"", "https://x/y?z=1", "https://x/y?z=1"},
	}
	for _, c := range cases {
		got := GatewayRewrite(c.gw, c.in)
		if got != c.want {
			t.Errorf("GatewayRewrite(%q, %q) = %q, want %q", c.gw, c.in, got, c.want)
		}
		if again := GatewayRewrite(c.gw, got); again != got {
			t.Errorf("not idempotent: %q -> %q", got, again)
		}
	}
}

func TestBuildURLEncodingAndCollisions(t *testing.T) {
	u, err := buildURL("https://api.example.com/models/v1/external/weights", requestParams(
		[][2]string{{"modelId", "a b/c"}}, [][2]string{{"x", "1"}, {"modelId", "other"}, {"x", "2"}}))
	if err != nil || u != "https://api.example.com/models/v1/external/weights?modelId=a+b%2Fc&x=1&x=2" {
		t.Fatalf("got %q %v", u, err)
	}
	u, err = buildURL("https://h/p?tenant=t1", [][2]string{{"modelId", "m"}})
	if err != nil || u != "https://h/p?tenant=t1&modelId=m" {
		t.Fatalf("base with query: %q %v", u, err)
	}
	_, err = buildURL("https://h/p?modelId=x", [][2]string{{"modelId", "m"}})
	var ae *provider.AssumptionError
	if !errors.As(err, &ae) {
		t.Fatalf("collision with base query: %v", err)
	}
}

func TestLogURLDropsCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@h.example:8443/a/b?key=secret#frag": "https://h.example:8443/a/b",
		"http://h/p?X-Goog-Signature=abc":                    "http://h/p",
		"http://h/%zz?key=secret":                            "http://h/%zz",
	} {
		if got := LogURL(in); got != want {
			t.Errorf("LogURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactorLongestFirst(t *testing.T) {
	r := newRedactor("abc", "abcdef", "", "local")
	if got := r.clean("x abcdef y abc z local"); got != "x *** y *** z local" {
		t.Fatalf("got %q", got)
	}
}
