package main

import (
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/modelcache/modelcache/config"
)

// TestCLIDocsCoverEveryCommand keeps docs/cli.md and --help honest: every
// command has a heading and examples, and each of its flags is documented.
func TestCLIDocsCoverEveryCommand(t *testing.T) {
	b, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	cfg := config.Default()
	root := newRootCmd(&cfg)
	var walk func(c *cobra.Command)
	checked := 0
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			if sub.HasSubCommands() {
				walk(sub)
				continue
			}
			path := strings.TrimSpace(strings.TrimPrefix(sub.CommandPath(), ""))
			if !strings.Contains(doc, "### `"+path+"`") {
				t.Errorf("docs/cli.md has no heading for %q", path)
			}
			if sub.Example == "" {
				t.Errorf("%q has no examples in --help", path)
			}
			sub.Flags().VisitAll(func(f *pflag.Flag) {
				if f.Name == "help" {
					return
				}
				if !strings.Contains(doc, "--"+f.Name) {
					t.Errorf("docs/cli.md does not mention %s --%s", path, f.Name)
				}
			})
			checked++
		}
	}
	walk(root)
	if checked < 13 {
		t.Errorf("only %d commands checked", checked)
	}
}

func TestPathJSON(t *testing.T) {
	cfg := config.Default()
	cfg.Home = "/srv/cache"
	out, err := runCmd(t, newPathCmd(&cfg), "my-model", "pkg1", "--json")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"path":"/srv/cache/models-cache/` + slugMyModel + `/pkg1"}` + "\n"; out != want {
		t.Errorf("got %q, want %q", out, want)
	}
}
