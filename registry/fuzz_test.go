package registry

import (
	"strings"
	"testing"
)

// access.json is operator input: parsing never panics, never echoes a key
// back in an error, and what parses answers every check.
func FuzzParseAccess(f *testing.F) {
	for _, s := range []string{
		`{"allow_anonymous": true, "anonymous_models": ["ws/public/*"], "keys": [{"key": "k-1", "models": ["*"]}]}`,
		`{"keys": [{"key": "secret-key-123", "models": ["ws/det/*"], "status": 403}]}`,
		`{"keys": [{"key": "a", "models": ["*"]}, {"key": "a", "models": ["x"]}]}`,
		`{"keys": [{"key": "local", "models": ["*"]}]}`,
		`{"anonymous_models": ["[", "**", "a/*/b"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := parseAccess(data)
		if err != nil {
			if strings.Contains(string(data), `"key": "secret-key-123"`) && strings.Contains(err.Error(), "secret-key-123") {
				t.Fatalf("a key appears in the error: %v", err)
			}
			return
		}
		for _, auth := range []string{"", "Bearer k-1", "Bearer secret-key-123", "Bearer ", "Basic x"} {
			_ = a.Check(auth, "ws/det/1", "ws/det/1")
			_ = a.Check(auth, "ws/public/2", "other/3")
		}
	})
}
