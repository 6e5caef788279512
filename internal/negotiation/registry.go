package negotiation

import (
	"sort"

	"github.com/modelcache/modelcache/metadata"
)

// Implementation is one entry of the model registry: inference-models 0.36.0
// ships an implementation of Architecture for Task on Backend.
type Implementation struct {
	Architecture string
	Task         string
	Backend      metadata.BackendType
	// FeatureSets marks an entry that declares model features. A plain entry
	// (false) rejects every package that has any model feature.
	FeatureSets bool
	// SupportedFeatures / RequiredFeatures (sorted) of an entry with feature sets.
	SupportedFeatures []string
	RequiredFeatures  []string
}

type implKey struct {
	arch, task string
	backend    metadata.BackendType
}

// registry is the compiled-in table (negotiation.md §4.2), built once per
// call from data; nothing in it is mutable state shared between calls.
type registry map[implKey]Implementation

var rfdetrFeatures = []string{"dec_layers", "num_queries", "num_select", "num_windows", "patch_size", "resolution"}

// Registry returns the model registry of inference-models 0.36.0, sorted by
// (architecture, task, backend).
func Registry() []Implementation {
	var out []Implementation
	add := func(archs, tasks []string, backends ...metadata.BackendType) {
		for _, a := range archs {
			for _, t := range tasks {
				for _, b := range backends {
					out = append(out, Implementation{Architecture: a, Task: t, Backend: b})
				}
			}
		}
	}
	addF := func(archs, tasks []string, b metadata.BackendType, supported, required []string) {
		for _, a := range archs {
			for _, t := range tasks {
				out = append(out, Implementation{Architecture: a, Task: t, Backend: b, FeatureSets: true,
					SupportedFeatures: append([]string{}, supported...), RequiredFeatures: append([]string{}, required...)})
			}
		}
	}
	l := func(s ...string) []string { return s }
	const (
		onnx = metadata.BackendONNX
		trt  = metadata.BackendTRT
		tor  = metadata.BackendTorch
		ts   = metadata.BackendTorchScript
		hf   = metadata.BackendHuggingFace
		cust = metadata.BackendCustom
	)
	nms := l("nms_fused")
	yoloTasks := l("object-detection", "keypoint-detection", "instance-segmentation")

	add(l("yolonas"), l("object-detection"), onnx, trt)
	add(l("yolov5"), l("object-detection", "instance-segmentation"), onnx)
	add(l("yolov7"), l("instance-segmentation"), onnx)
	addF(l("yolov8"), l("classification"), onnx, nil, nil)
	for _, a := range l("yolov8", "yolov11") {
		addF(l(a), yoloTasks, onnx, nms, nil)
		addF(l(a), yoloTasks, ts, nms, nil)
		add(l(a), yoloTasks, trt)
	}
	for _, a := range l("yolov9", "yolov12") {
		addF(l(a), l("object-detection"), onnx, nms, nil)
		addF(l(a), l("object-detection"), ts, nms, nil)
		add(l(a), l("object-detection"), trt)
	}
	add(l("yolov10"), l("object-detection"), onnx, trt)
	// The spec table lists yolov11 classification as plain; the reference
	// registry snapshot declares empty feature sets (same behaviour).
	addF(l("yolov11"), l("classification"), onnx, nil, nil)
	add(l("yolo26"), l("object-detection", "keypoint-detection", "instance-segmentation", "semantic-segmentation", "depth-estimation"), onnx, ts, trt)
	addF(l("yololite"), l("object-detection"), onnx, nms, nil)
	add(l("paligemma-2", "paligemma", "smolvlm-v2", "qwen25vl", "qwen3vl", "cosmos-3-edge", "mage-vl", "qwen3_5",
		"qwen3_8", "gemma-4", "florence-2", "moondream2", "glm-ocr"), l("vlm"), hf)
	add(l("cosmos-3-edge-world"), l("world-model"), cust)
	add(l("clip"), l("embedding"), tor, onnx)
	add(l("perception-encoder"), l("embedding"), tor)
	add(l("rfdetr"), l("object-detection"), trt, tor)
	addF(l("rfdetr"), l("object-detection"), onnx, rfdetrFeatures, nil)
	add(l("rfdetr"), l("instance-segmentation"), tor, trt)
	addF(l("rfdetr"), l("instance-segmentation"), onnx, rfdetrFeatures, nil)
	addF(l("rfdetr"), l("keypoint-detection"), onnx, rfdetrFeatures, nil)
	add(l("vit"), l("classification", "multi-label-classification"), onnx, hf, trt)
	add(l("resnet"), l("classification", "multi-label-classification"), onnx, tor, trt)
	add(l("segment-anything-2-rt"), l("instance-segmentation"), tor)
	add(l("sam2video", "sam3video", "sam3trackervideo"), l("instance-segmentation"), hf)
	add(l("deep-lab-v3-plus"), l("semantic-segmentation"), tor, onnx, trt)
	add(l("yolact"), l("instance-segmentation"), onnx)
	add(l("depth-anything-v2"), l("depth-estimation"), hf)
	add(l("depth-anything-v3"), l("depth-estimation"), tor)
	addF(l("doctr"), l("structured-ocr"), tor, l("doctr_vocab_127"), l("doctr_vocab_127"))
	add(l("easy-ocr"), l("structured-ocr"), tor)
	add(l("tr-ocr"), l("text-only-ocr"), hf)
	add(l("pp-ocrv6-rec"), l("text-only-ocr"), onnx)
	add(l("pp-ocrv6-det"), l("object-detection"), onnx)
	add(l("l2cs-net"), l("gaze-detection"), onnx)
	add(l("grounding-dino"), l("open-vocabulary-object-detection"), tor)
	add(l("owlv2"), l("open-vocabulary-object-detection"), hf)
	add(l("dinov3_probe"), l("classification", "multi-label-classification"), onnx, tor)
	add(l("roboflow-instant"), l("object-detection"), hf)
	add(l("sam", "sam2"), l("interactive-instance-segmentation"), tor)
	add(l("sam3"), l("interactive-instance-segmentation", "instance-segmentation"), tor)

	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Architecture != b.Architecture {
			return a.Architecture < b.Architecture
		}
		if a.Task != b.Task {
			return a.Task < b.Task
		}
		return a.Backend < b.Backend
	})
	return out
}

func newRegistry() registry {
	r := registry{}
	for _, e := range Registry() {
		r[implKey{e.Architecture, e.Task, e.Backend}] = e
	}
	return r
}

// lookup returns the entry for (arch, task, backend); a nil task has none.
func (r registry) lookup(arch string, task *string, b metadata.BackendType) (Implementation, bool) {
	if task == nil {
		return Implementation{}, false
	}
	e, ok := r[implKey{arch, *task, b}]
	return e, ok
}

// accepts applies the feature check to a package's feature names.
func (e Implementation) accepts(features []string) bool {
	if !e.FeatureSets {
		return len(features) == 0
	}
	for _, req := range e.RequiredFeatures {
		if !contains(features, req) {
			return false
		}
	}
	if len(features) > 0 {
		if len(e.SupportedFeatures) == 0 {
			return false
		}
		for _, f := range features {
			if !contains(e.SupportedFeatures, f) {
				return false
			}
		}
	}
	return true
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
