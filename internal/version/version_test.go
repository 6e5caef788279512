package version

import (
	"runtime"
	"testing"
)

func TestGet(t *testing.T) {
	info := Get()
	if info.Version == "" || info.GoVersion != runtime.Version() || info.Module != ModulePath || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Get() = %+v", info)
	}
	old := Version
	t.Cleanup(func() { Version = old })
	Version = "v1.2.3"
	if got := Get().Version; got != "v1.2.3" {
		t.Errorf("with the link-time Version set, Get().Version = %q", got)
	}
}
