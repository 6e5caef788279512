package download_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/download"
	"github.com/modelcache/modelcache/internal/download/observertest"
)

func TestObserversConform(t *testing.T) {
	t.Run("JSONLines", func(t *testing.T) {
		var buf bytes.Buffer
		observertest.Run(t, func(t *testing.T) download.Observer { buf.Reset(); return download.JSONLines(&buf) },
			func(t *testing.T, name string) {
				for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
					if line == "" {
						continue
					}
					var v map[string]any
					if err := json.Unmarshal([]byte(line), &v); err != nil {
						t.Fatalf("%s: not one JSON object per line: %q: %v", name, line, err)
					}
				}
			})
	})
	t.Run("LogLines", func(t *testing.T) {
		observertest.Run(t, func(t *testing.T) download.Observer {
			return download.LogLines(slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug})), time.Millisecond)
		}, nil)
	})
	t.Run("Bars", func(t *testing.T) {
		var buf bytes.Buffer
		observertest.Run(t, func(t *testing.T) download.Observer { buf.Reset(); return download.Bars(&buf) }, nil)
	})
}
