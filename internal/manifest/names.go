package manifest

import (
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
)

// validateHandleSet checks every handle and the package-wide rules (no
// duplicates, no case-ambiguous paths or prefixes, no file/directory
// collisions) with layout.Declarations. Each handle is declared as an
// unhashed download without URL so that only the handle rules apply: hash
// fields are checked by the caller.
func validateHandleSet(handles []string) error {
	arts := make([]layout.Artefact, len(handles))
	for i, h := range handles {
		arts[i] = layout.Artefact{Kind: layout.ArtefactDownload, FileHandle: h}
	}
	_, err := layout.Declarations(arts)
	return err
}

// handleLess orders by (lower(handle), handle).
func handleLess(a, b string) bool {
	la, lb := strings.ToLower(a), strings.ToLower(b)
	if la != lb {
		return la < lb
	}
	return a < b
}
