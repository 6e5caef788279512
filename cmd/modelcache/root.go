package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
)

// subcommands lists the commands under the root. Each constructor receives what it
// needs explicitly (the Config is built once, in main).
func subcommands(cfg *config.Config) []*cobra.Command {
	return []*cobra.Command{
		newVersionCmd(),
		newPathCmd(cfg),
		newRegistryCmd(),
		newPullCmd(cfg),
		newResolveCmd(cfg),
		newXrayCmd(cfg),
		newLsCmd(cfg),
		newShowCmd(cfg),
		newDuCmd(cfg),
		newVerifyCmd(cfg),
		newGcCmd(cfg),
		newPurgeCmd(cfg),
		newExportCmd(cfg),
		newImportCmd(cfg),
		newPushCmd(cfg),
		newTierCmd(cfg),
		// Subcommands must not set PersistentPreRun(E): cobra would then skip the
		// root's, which applies --home and sets up logging.
	}
}

func newRootCmd(cfg *config.Config) *cobra.Command {
	var home, logLevel string
	root := &cobra.Command{
		Use:   "modelcache",
		Short: "Model cache compatible with inference-models 0.36.0",
		Long: "modelcache manages the model cache under $INFERENCE_HOME (default /tmp/cache),\n" +
			"byte-compatible with Roboflow's inference-models 0.36.0. Settings come from the\n" +
			"environment and <CWD>/.env; see docs/config.md.",
		SilenceUsage:  true, // a failing command prints one error line, not the usage
		SilenceErrors: true, // main prints it
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("home") {
				if home == "" {
					return errors.New("--home: empty path")
				}
				abs, err := config.AbsPath(home)
				if err != nil {
					return fmt.Errorf("--home: %w", err)
				}
				cfg.Home = abs
			}
			logger, err := newLogger(cmd, logLevel)
			if err != nil {
				return err
			}
			for _, w := range cfg.Warnings {
				logger.Warn(w)
			}
			cmd.SetContext(context.WithValue(cmd.Context(), loggerKey{}, logger))
			return nil
		},
	}
	root.PersistentFlags().StringVar(&home, "home", "", "cache root (default $INFERENCE_HOME, else $MODEL_CACHE_DIR, else /tmp/cache)")
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	root.AddCommand(subcommands(cfg)...)
	return root
}

type loggerKey struct{}

// newLogger writes text logs to the command's stderr.
func newLogger(cmd *cobra.Command, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil || strings.ContainsAny(level, "+-") {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: l})), nil
}

// loggerFrom returns the logger the root command set up; commands use it rather
// than slog's process-wide default.
func loggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.New(slog.DiscardHandler)
}
