package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/layout"
)

func newPathCmd(cfg *config.Config) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "path MODEL_ID [PACKAGE_ID]",
		Short: "Print the cache directory of a model, or of one of its packages",
		Long: "Print <home>/models-cache/<slug of MODEL_ID>, or that directory's PACKAGE_ID\n" +
			"subdirectory. The path is computed, not looked up: it need not exist. When a\n" +
			"directory on the way is a symlink (it may lead out of the cache), path fails.",
		Example: "  modelcache path coco/3\n  modelcache path coco/3 a1b2c3\n  modelcache path coco/3 --json",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			slug, err := layout.Slug(args[0]) // layout's errors name the id and the rule
			if err != nil {
				return err
			}
			dir := joinUnder(cfg.Home, "models-cache", slug)
			if len(args) == 2 {
				if err := layout.ValidatePackageID(args[1]); err != nil {
					return err
				}
				dir = joinUnder(dir, args[1])
			}
			// The printed path must not lead out of the cache: a symlinked
			// models-cache, model dir or package dir on the way is refused.
			checks := []string{joinUnder(cfg.Home, "models-cache"), joinUnder(cfg.Home, "models-cache", slug)}
			if len(args) == 2 {
				checks = append(checks, dir)
			}
			if err := cache.CheckRealDirs(checks...); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(map[string]string{"path": dir})
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), dir)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, `print {"path": ...}`)
	return cmd
}

// joinUnder appends validated names to root like Python's os.path.join, leaving
// root byte-for-byte as configured (filepath.Join would clean a leading "//").
func joinUnder(root string, names ...string) string {
	if !strings.HasSuffix(root, "/") {
		root += "/"
	}
	return root + strings.Join(names, "/")
}
