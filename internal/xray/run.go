package xray

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// DefaultCommandTimeout bounds each external command of the x-ray.
const DefaultCommandTimeout = 10 * time.Second

// ExecRunner returns a Runner that executes commands with a timeout (0 means
// DefaultCommandTimeout) in the C locale. A command missing from PATH (and
// from /usr/sbin, /sbin for ldconfig) yields an error wrapping exec.ErrNotFound.
func ExecRunner(timeout time.Duration) Runner {
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		path, err := exec.LookPath(name)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
				if st, serr := os.Stat(dir + "/" + name); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
					path, err = dir+"/"+name, nil
					break
				}
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(stderr.String())
			if msg == "" {
				msg = strings.TrimSpace(stdout.String())
			}
			if len(msg) > 300 {
				msg = msg[:300] + "…"
			}
			return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return stdout.Bytes(), nil
	}
}
