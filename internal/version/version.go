// Package version reports what binary is running, for bug reports.
package version

import (
	"runtime"
	"runtime/debug"
)

// Version is stamped at link time:
//
//	go build -ldflags "-X github.com/modelcache/modelcache/internal/version.Version=v1.2.3" ./cmd/modelcache
//
// Unset, the module version from the build info is used (set by `go install module@version`).
var Version string

// ModulePath is the fallback when the binary carries no build info.
const ModulePath = "github.com/modelcache/modelcache"

// Info describes the running binary.
type Info struct {
	Version    string `json:"version"`
	GoVersion  string `json:"go_version"`
	Module     string `json:"module"`
	Platform   string `json:"platform"`
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	Modified   bool   `json:"modified,omitempty"`
}

// Get collects Info from the link-time Version and the embedded build info.
func Get() Info {
	info := Info{Version: Version, GoVersion: runtime.Version(), Module: ModulePath, Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Path != "" {
			info.Module = bi.Main.Path
		}
		if info.Version == "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitTime = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	return info
}
