package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/registry"
)

// newRegistryCmd returns `modelcache registry` with `serve` and `ls`
// (docs/registry.md). The logic lives in package registry.
func newRegistryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "registry",
		Example: "  modelcache registry serve --root examples/registry --listen 127.0.0.1:8080\n  modelcache registry ls --root examples/registry",
		Short:   "Serve or inspect a model registry directory (weights API + files)",
		Long: "A registry directory holds models, their packages and files (docs/registry.md).\n" +
			"`serve` publishes it through the weights API that the Roboflow clients use;\n" +
			"`ls` lists what it holds.",
	}
	cmd.AddCommand(newRegistryServeCmd(), newRegistryLsCmd())
	return cmd
}

func newRegistryServeCmd() *cobra.Command {
	var (
		root, listen, publicURL, logFormat string
		pageSize, maxPages, maxFiles       int
		urlTTL, shutdown                   time.Duration
	)
	cmd := &cobra.Command{
		Use:     "serve --root DIR [--listen 127.0.0.1:8080]",
		Example: "  modelcache registry serve --root examples/registry\n  modelcache registry serve --root /srv/models --listen 0.0.0.0:8080 --public-url https://models.example.internal",
		Short:   "Serve a registry directory over HTTP",
		Long: "Serves GET /models/v1/external/weights, the package files (/files/...,\n" +
			"with HEAD, Range, ETag), /healthz and /metrics. The registry is validated\n" +
			"and hashed at start-up; bad content stops the server before it listens.\n" +
			"SIGINT/SIGTERM shut it down gracefully.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return errors.New("--root is required")
			}
			logger := loggerFrom(cmd.Context())
			switch logFormat {
			case "text":
			case "json":
				level := slog.LevelInfo
				if f := cmd.Flag("log-level"); f != nil {
					if err := level.UnmarshalText([]byte(f.Value.String())); err != nil {
						return fmt.Errorf("--log-level %q: %w", f.Value.String(), err)
					}
				}
				logger = slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			default:
				return fmt.Errorf("--log-format %q: want text or json", logFormat)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			reg, err := registry.Load(ctx, root, registry.LoadOptions{Logger: logger})
			if err != nil {
				return err
			}
			srv, err := registry.New(reg, registry.Options{
				PublicURL: publicURL, PageSize: pageSize, MaxPages: maxPages, URLTTL: urlTTL,
				MaxConcurrentFiles: maxFiles, ShutdownTimeout: shutdown, Logger: logger,
			})
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "serving registry %s on http://%s\n", reg.Root, ln.Addr())
			return srv.Serve(ctx, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&root, "root", "", "registry directory (required)")
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	f.StringVar(&publicURL, "public-url", "", "base of the download URLs in metadata when behind a proxy (default: from the request's Host)")
	f.IntVar(&pageSize, "page-size", 0, "packages per metadata page (0: all on one page); clients may ask with pageSize")
	f.IntVar(&maxPages, "max-pages", registry.DefaultMaxPages, "never need more pages than this per model (the reference reads at most 10)")
	f.IntVar(&maxFiles, "max-concurrent-files", registry.DefaultMaxConcurrentFiles, "concurrent file transfers before answering 503")
	f.DurationVar(&urlTTL, "url-ttl", registry.DefaultURLTTL, "validity of signed file URLs (only with access.json)")
	f.DurationVar(&shutdown, "shutdown-timeout", registry.DefaultShutdownTimeout, "grace period for in-flight requests on shutdown")
	f.StringVar(&logFormat, "log-format", "text", "log format on stderr: text or json")
	return cmd
}

func newRegistryLsCmd() *cobra.Command {
	var root string
	var asJSON bool
	cmd := &cobra.Command{
		Use:     "ls --root DIR [--json]",
		Example: "  modelcache registry ls --root examples/registry\n  modelcache registry ls --root examples/registry --json",
		Short:   "List the models, packages and files of a registry directory",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if root == "" {
				return errors.New("--root is required")
			}
			reg, err := registry.Load(cmd.Context(), root, registry.LoadOptions{Logger: loggerFrom(cmd.Context())})
			if err != nil {
				return err
			}
			l := reg.Listing()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(l)
			}
			return l.WriteTable(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&root, "root", "", "registry directory (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
