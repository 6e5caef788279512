// Command modelcache inspects and fills a model cache that is byte-compatible with
// the one of inference-models 0.36.0 under $INFERENCE_HOME.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/textsafe"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run returns the exit status; main only exits, so deferred cleanups run first.
// Everything a command prints goes through textsafe: text from a weights
// provider never reaches the terminal with its control characters.
func run(args []string, stdout, stderr io.Writer) int {
	stdout, stderr = textsafe.Writer(stdout), textsafe.Writer(stderr)
	// The environment is read once, here, and passed down (on-disk-contract §1.1).
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, "modelcache: "+oneLine(err))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	root := newRootCmd(&cfg)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "modelcache: "+oneLine(err))
		// Commands that distinguish "problems found" (1) from usage or I/O
		// errors (2) say so through ExitCode.
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			return ec.ExitCode()
		}
		return 1
	}
	return 0
}

// oneLine joins multi-line errors (errors.Join puts each on its own line) so that
// the failure is one line in logs and terminals.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
