package negotiation_test

import (
	"testing"

	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// A request document from a file or a caller must never crash negotiation:
// DecodeRequest refuses it with an error, or Negotiate answers (a report
// or a typed error) for every golden case's packages and runtime.
func FuzzRequest(f *testing.F) {
	g := loadGolden(f)
	type target struct {
		md *metadata.ModelMetadata
		rt negotiation.Runtime
	}
	var targets []target
	for i := range g.Cases {
		c := &g.Cases[i]
		f.Add([]byte(c.Request))
		if i%10 != 0 {
			continue // a spread of models and runtimes is enough per input
		}
		md := &metadata.ModelMetadata{ModelID: c.Model.ModelID, ModelArchitecture: c.Model.ModelArchitecture, TaskType: c.Model.TaskType}
		for _, raw := range c.PackagesAPI {
			o, err := pyjson.DecodeObject(raw)
			if err != nil {
				continue
			}
			if p, err := roboflow.ParsePackage(o, ""); err == nil && p != nil {
				md.Packages = append(md.Packages, *p)
			}
		}
		targets = append(targets, target{md, c.Runtime})
	}
	f.Add([]byte(`{"batch_size": [1, "x"], "device": "cuda:-1"}`))
	f.Add([]byte(`{"backend": ["trt", "trt"], "quantization": [], "nms_fusion_preferences": {"iou_threshold": "a"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := negotiation.DecodeRequest(data)
		if err != nil {
			return
		}
		for _, tg := range targets {
			rep, err := negotiation.Negotiate(tg.md, req, tg.rt)
			if err == nil && rep == nil {
				t.Fatal("Negotiate returned neither a report nor an error")
			}
		}
	})
}
