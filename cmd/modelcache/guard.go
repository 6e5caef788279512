package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache"
	"github.com/modelcache/modelcache/access"
	"github.com/modelcache/modelcache/provider/local"
)

// maxKeyFile bounds what --api-key-file reads (keys are a few dozen bytes).
const maxKeyFile = 64 << 10

// guardFlags are pull's tenant-guard and key flags (docs/multi-tenant.md).
type guardFlags struct {
	guard        bool
	apiKeyFile   string
	offlineGrace time.Duration
}

func (g *guardFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&g.guard, "guard", false, "serve the model, cached or not, only if the weights provider accepts the API key for it (see docs/multi-tenant.md)")
	fl.StringVar(&g.apiKeyFile, "api-key-file", "", "read the API key from FILE (- for stdin) instead of ROBOFLOW_API_KEY; keys never go on the command line")
	fl.DurationVar(&g.offlineGrace, "offline-grace", 0, "with --guard: while the provider cannot be asked, allow a key verified online for the model within this duration, e.g. 30m (default MODELCACHE_GUARD_OFFLINE_GRACE, else 0: deny)")
}

// options returns the client and load options the flags ask for. Flag and
// key-file problems exit 2.
func (g *guardFlags) options(cmd *cobra.Command, log *slog.Logger) ([]modelcache.Option, []modelcache.LoadOption, error) {
	var copts []modelcache.Option
	var lopts []modelcache.LoadOption
	graceSet := cmd.Flags().Changed("offline-grace")
	if graceSet && !g.guard {
		return nil, nil, withCode(exitUsage, errors.New("--offline-grace applies to --guard only; add --guard"))
	}
	if g.offlineGrace < 0 {
		return nil, nil, withCode(exitUsage, fmt.Errorf("--offline-grace %v: must not be negative", g.offlineGrace))
	}
	if g.apiKeyFile != "" {
		key, err := readAPIKeyFile(g.apiKeyFile, cmd.InOrStdin(), log)
		if err != nil {
			return nil, nil, withCode(exitUsage, err)
		}
		lopts = append(lopts, modelcache.WithAPIKey(key))
	}
	if g.guard {
		o := access.Options{AuditLogger: log, AuditLevel: slog.LevelDebug}
		if graceSet {
			o.OfflineGrace = g.offlineGrace
			if o.OfflineGrace == 0 {
				o.OfflineGrace = access.NoOfflineGrace
			}
		}
		copts = append(copts, modelcache.WithAccessGuard(o))
	}
	return copts, lopts, nil
}

// check takes the guard's decision before the load, so that a refusal
// names its reason (the load then reuses the decision).
func (g *guardFlags) check(ctx context.Context, c *modelcache.Client, modelID string, lopts []modelcache.LoadOption) error {
	if !g.guard {
		return nil
	}
	if local.IsModelDir(modelID) {
		return withCode(exitUsage, fmt.Errorf("--guard: %q is a local directory; the guard decides on model ids only", modelID))
	}
	return c.CheckAccess(ctx, modelID, lopts...)
}

// readAPIKeyFile reads a key alone on one line (surrounding white space,
// such as the final newline, is dropped). Errors never quote the content.
func readAPIKeyFile(path string, stdin io.Reader, log *slog.Logger) (string, error) {
	var r io.Reader = stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("--api-key-file: %w", err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return "", fmt.Errorf("--api-key-file: %w", err)
		}
		if fi.IsDir() {
			return "", fmt.Errorf("--api-key-file %s: is a directory; give the file that holds the key", path)
		}
		if fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the API key file is readable by other users; restrict it (chmod 600)", "file", path, "mode", fi.Mode().Perm().String())
		}
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFile+1))
	if err != nil {
		return "", fmt.Errorf("--api-key-file %s: %w", path, err)
	}
	if len(b) > maxKeyFile {
		return "", fmt.Errorf("--api-key-file %s: larger than %d bytes; it must hold the key alone", path, maxKeyFile)
	}
	key := strings.TrimSpace(string(b))
	switch {
	case key == "":
		return "", fmt.Errorf("--api-key-file %s: empty; it must hold the API key", path)
	case strings.ContainsAny(key, " \t\r\n"):
		return "", fmt.Errorf("--api-key-file %s: holds white space inside; it must hold the API key alone on one line", path)
	}
	return key, nil
}
