package negotiation_test

import (
	"encoding/json"
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

// A runtime document (modelcache xray --json, pull --runtime FILE) must
// never crash negotiation either: it is checked, or negotiation reports.
func FuzzRuntime(f *testing.F) {
	g := loadGolden(f)
	var md *metadata.ModelMetadata
	for i := range g.Cases {
		c := &g.Cases[i]
		if b, err := json.Marshal(c.Runtime); err == nil {
			f.Add(b)
		}
		if md == nil && len(c.PackagesAPI) > 3 {
			md = &metadata.ModelMetadata{ModelID: c.Model.ModelID, ModelArchitecture: c.Model.ModelArchitecture, TaskType: c.Model.TaskType}
			for _, raw := range c.PackagesAPI {
				if o, err := pyjson.DecodeObject(raw); err == nil {
					if p, err := roboflow.ParsePackage(o, ""); err == nil && p != nil {
						md.Packages = append(md.Packages, *p)
					}
				}
			}
		}
	}
	f.Add([]byte(`{"gpu_devices": ["a", "b"], "gpu_devices_cc": ["x"], "trt_version": "10..1", "l4t_version": ""}`))
	req, err := negotiation.DecodeRequest([]byte(`{"device": "cuda"}`))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var rt negotiation.Runtime
		if json.Unmarshal(data, &rt) != nil {
			return
		}
		_ = rt.Check()
		if rep, err := negotiation.Negotiate(md, req, rt); err == nil && rep == nil {
			t.Fatal("Negotiate returned neither a report nor an error")
		}
	})
}
