// Command install builds every pinned test tool into the tools cache
// (testsvc.Dir), in parallel; .ci/run runs it before the tests.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/testsvc"
)

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var g errgroup.Group
	for _, tl := range testsvc.All() {
		g.Go(func() error {
			start := time.Now()
			bin, err := tl.Install(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("%s %s: %s (%s)\n", tl.Name, tl.Version, bin, time.Since(start).Round(time.Millisecond))
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
