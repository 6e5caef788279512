package cache_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
)

// Offline, opening a cache writes nothing (offline.md §7); online it creates
// shared-blobs and CACHEDIR.TAG.
func TestOpenOfflineWritesNothing(t *testing.T) {
	home := filepath.Join(t.TempDir(), "h")
	cfg := config.Default()
	cfg.Home, cfg.Offline = home, true
	if _, err := cache.Open(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(home); !os.IsNotExist(err) {
		t.Fatalf("offline open created %s (%v)", home, err)
	}
	cfg.Offline = false
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{c.Home.SharedBlobs(), c.Home.CacheDirTag()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("online open: %v", err)
		}
	}
	tag, _ := os.ReadFile(c.Home.CacheDirTag())
	if string(tag[:43]) != "Signature: 8a477f597d28d172789f06886806bc55" {
		t.Errorf("CACHEDIR.TAG starts %q", tag[:43])
	}
}

// An unwritable cache root opens read-only instead of failing: lookups
// (resolve, ls) work; nothing is created.
func TestOpenUnwritableRootReadOnly(t *testing.T) {
	parent := t.TempDir()
	if err := os.Chmod(parent, 0o555); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(parent, 0o755)
	home := filepath.Join(parent, "h")
	if f, err := os.Create(filepath.Join(parent, "probe")); err == nil {
		// Running as root: permission bits do not stop us, but nobody can
		// create a directory in procfs.
		f.Close()
		home = "/proc/self/modelcache-test-home"
	}
	cfg := config.Default()
	cfg.Home = home
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatalf("opening an unwritable cache failed: %v", err)
	}
	if pkgs, err := c.ScanPackages(context.Background()); err != nil || len(pkgs) != 0 {
		t.Errorf("scan of an absent read-only cache: %v %v", pkgs, err)
	}
	if _, err := os.Lstat(home); !os.IsNotExist(err) {
		t.Errorf("read-only open created %s", home)
	}
}
