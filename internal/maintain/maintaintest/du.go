package maintaintest

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// DuSB is `du -sb path` (coreutils): apparent bytes of a tree.
func DuSB(t testing.TB, path string) int64 {
	t.Helper()
	out, err := exec.Command("du", "-sb", path).Output()
	if err != nil {
		t.Fatalf("du -sb %s: %v", path, err)
	}
	return firstNumber(t, string(out))
}

// DuCB is the total line of `du -cb paths...` (each inode once).
func DuCB(t testing.TB, paths ...string) int64 {
	t.Helper()
	if len(paths) == 0 {
		return 0
	}
	out, err := exec.Command("du", append([]string{"-cb"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("du -cb: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return firstNumber(t, lines[len(lines)-1])
}

func firstNumber(t testing.TB, s string) int64 {
	t.Helper()
	f := strings.Fields(s)
	if len(f) == 0 {
		t.Fatalf("du printed %q", s)
	}
	n, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("du printed %q: %v", s, err)
	}
	return n
}
