package modelcache

import (
	"os"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/layout"
)

// touchLastUsed stamps .meta/last-used/<slug>/<package_id> (atime is
// unreliable on noatime mounts); failures only cost the stamp.
func touchLastUsed(home layout.Home, pkg *Package) {
	slug := filepath.Base(filepath.Dir(pkg.Dir))
	dir := filepath.Join(home.Meta(), "last-used", slug)
	p := filepath.Join(dir, pkg.PackageID)
	now := time.Now()
	if err := os.Chtimes(p, now, now); err == nil {
		return
	}
	if os.MkdirAll(dir, 0o777) == nil {
		if f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
}
