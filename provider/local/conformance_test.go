package local

import (
	"path/filepath"
	"testing"

	"github.com/modelcache/modelcache/provider/providertest"
)

// DirProvider: model ids are directory paths.
func TestConformance(t *testing.T) {
	dir := writeDir(t, "m", map[string]string{
		"model_config.json": `{"model_architecture": "yolov8", "backend_type": "onnx"}`,
		"weights.onnx":      "w",
		"labels/names.txt":  "a\nb\n",
	})
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	providertest.Run(t, DirProvider{}, providertest.Fixture{
		Known: dir, Canonical: abs, Packages: []string{filepath.Base(dir)}, // a valid id is the directory name
		Unknown: filepath.Join(t.TempDir(), "missing"),
	})
}
