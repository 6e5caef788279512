package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

const testKey = "rf_sekrit_123"

func TestSecretNeverPrinted(t *testing.T) {
	c := Default()
	c.APIKey = testKey
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s"} {
		out = append(out, fmt.Sprintf(verb, c), fmt.Sprintf(verb, c.APIKey), fmt.Sprintf(verb, &c))
	}
	out = append(out, fmt.Sprint(c.APIKey), c.APIKey.String(), c.APIKey.GoString())
	for _, v := range []any{c, &c, c.APIKey, map[string]any{"k": c.APIKey}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	for _, h := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
	} {
		var buf bytes.Buffer
		slog.New(h(&buf)).Info("start", "cfg", c, "key", c.APIKey, slog.Group("g", "key", c.APIKey))
		out = append(out, buf.String())
	}
	for _, s := range out {
		if strings.Contains(s, testKey) || strings.Contains(s, fmt.Sprintf("%x", testKey)) {
			t.Errorf("secret leaked: %s", s)
		}
	}
	if !strings.Contains(fmt.Sprint(c.APIKey), "<redacted>") {
		t.Errorf("Sprint(key) = %q, want <redacted>", fmt.Sprint(c.APIKey))
	}
	if c.APIKey.Reveal() != testKey {
		t.Errorf("Reveal() = %q", c.APIKey.Reveal())
	}
}

func TestAPIKeyErrorNeverPrintsTheKey(t *testing.T) {
	_, err := FromEnv(envOf(map[string]string{EnvAPIKey: testKey + "\n"}))
	var ie *InvalidEnvError
	if !errors.As(err, &ie) || ie.Name != EnvAPIKey {
		t.Fatalf("error %v, want *InvalidEnvError for %s", err, EnvAPIKey)
	}
	for _, s := range []string{err.Error(), fmt.Sprintf("%+v", ie), fmt.Sprintf("%#v", ie)} {
		if strings.Contains(s, "sekrit") {
			t.Errorf("key leaked: %s", s)
		}
	}
	if !strings.Contains(err.Error(), EnvAPIKey) || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("message %q should name the variable and show <redacted>", err)
	}
}
