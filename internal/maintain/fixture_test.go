package maintain_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/materialize"
)

var (
	weights = maintaintest.Content("weights", 300_000) // shared by three packages
	classes = maintaintest.Content("classes", 900)
	keypts  = maintaintest.Content("kp", 700)
	labels  = maintaintest.Content("labels", 640) // unhashed
	otherB  = maintaintest.Content("other", 5_000)
	segB    = maintaintest.Content("seg", 7_000)
)

// standard is a cache with two models, three packages and one blob they
// all share:
//
//	ws/det/3  onnxa: weights.onnx, classes.txt, extras/kp.json, labels/u.txt (unhashed)
//	ws/det/3  onnxb: weights.onnx, other.bin
//	ws/seg/1  segp:  weights.onnx, seg.bin
type standard struct {
	*maintaintest.Cache
	pkgA, pkgB, pkgS maintaintest.Package
	resA, resB, resS *materialize.Result
}

func newStandard(t *testing.T) *standard {
	t.Helper()
	s := &standard{Cache: maintaintest.New(t)}
	s.pkgA = maintaintest.Package{ModelID: "ws/det/3", PackageID: "onnxa",
		Files:    map[string][]byte{"weights.onnx": weights, "classes.txt": classes, "extras/kp.json": keypts},
		Unhashed: map[string][]byte{"labels/u.txt": labels}}
	s.pkgB = maintaintest.Package{ModelID: "ws/det/3", PackageID: "onnxb",
		Files: map[string][]byte{"weights.onnx": weights, "other.bin": otherB}}
	s.pkgS = maintaintest.Package{ModelID: "ws/seg/1", PackageID: "segp",
		Files: map[string][]byte{"weights.onnx": weights, "seg.bin": segB}}
	s.resA = s.Materialize(s.pkgA)
	s.resB = s.Materialize(s.pkgB)
	s.resS = s.Materialize(s.pkgS)
	return s
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
