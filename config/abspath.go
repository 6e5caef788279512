package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
)

// AbsPath makes p absolute the way Python's os.path.abspath does, so that paths
// derived from the cache root match the reference byte for byte: purely lexical
// ("a/../b" -> "b"), symlinks never resolved, and POSIX's special exactly-two
// leading slashes kept. Relative paths are joined to the kernel's working
// directory (getcwd), as Python does, not to $PWD as os.Getwd may return.
func AbsPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		wd, err := syscall.Getwd()
		if err != nil {
			return "", fmt.Errorf("read the working directory: %w", err)
		}
		p = wd + "/" + p
	}
	lead := ""
	if strings.HasPrefix(p, "//") && !strings.HasPrefix(p, "///") {
		lead = "/"
	}
	return lead + filepath.Clean(p), nil
}
