package modelcache_test

import (
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// docs/architecture.md has one row per package of `go list ./...`, and no row
// for a package that does not exist.
func TestArchitectureMapsEveryPackage(t *testing.T) {
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var listed []string
	for _, p := range strings.Fields(string(out)) {
		p = strings.TrimPrefix(p, "github.com/modelcache/modelcache")
		p = strings.TrimPrefix(p, "/")
		if p == "" {
			p = "."
		}
		listed = append(listed, p)
	}
	doc, err := os.ReadFile("docs/architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([^`]+)`(?: \\(modelcache\\))? \\| ")
	documented := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	for _, p := range listed {
		if !documented[p] {
			t.Errorf("package %s has no row in docs/architecture.md", p)
		}
		delete(documented, p)
	}
	var extra []string
	for p := range documented {
		if strings.Contains(p, ".") && p != "." || p == "download observer" {
			continue // rows of the seams table
		}
		extra = append(extra, p)
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("docs/architecture.md lists packages that do not exist: %v", extra)
	}
}
