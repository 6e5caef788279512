package manifest

import (
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
)

// validateHandleSet checks every handle and the package-wide rules (hash
// fields are checked by the caller).
func validateHandleSet(handles []string) error { return layout.ValidateHandleSet(handles) }

// handleLess orders by (lower(handle), handle).
func handleLess(a, b string) bool {
	la, lb := strings.ToLower(a), strings.ToLower(b)
	if la != lb {
		return la < lb
	}
	return a < b
}
