package registry

import (
	"fmt"
	"strings"

	"github.com/modelcache/modelcache/internal/layout"
)

// validPackageID applies on-disk-contract §4.2.
func validPackageID(id string) error { return layout.ValidatePackageID(id) }

// validHandle applies the per-handle rules of on-disk-contract §4.4.
func validHandle(h string) error { return layout.ValidateHandle(h) }

// checkHandleSet applies the cross-handle rules of §4.4 to one package: no
// case-folded duplicates, no case-ambiguous paths, no file/dir collision.
func checkHandleSet(handles []string) error { return layout.ValidateHandleSet(handles) }

// validModelID applies on-disk-contract §4.3, and refuses surrounding
// whitespace (an id that only differs by blanks is a typo in a registry).
func validModelID(id string) error {
	if err := layout.ValidateRemoteModelID(id); err != nil {
		return err
	}
	if strings.TrimSpace(id) != id {
		return fmt.Errorf("model id %q has leading or trailing whitespace", id)
	}
	return nil
}

// validDependencyNames checks a model's dependency names (single segments,
// case-fold unique).
func validDependencyNames(names []string) error { return layout.ValidateDependencyNames(names) }
