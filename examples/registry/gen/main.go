// Command gen writes the bundled example registry (examples/registry).
//
// Run from the repository root:
//
//	go run ./examples/registry/gen            # writes examples/registry
//	go run ./examples/registry/gen -out DIR   # writes elsewhere
//
// Output is deterministic: file bytes come from a SHA-256 counter stream
// keyed by a label, JSON documents are written with sorted keys. A test
// regenerates the registry and compares it byte for byte with the committed copy.
package main

import (
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/modelcache/modelcache/internal/pyjson"
)

func main() {
	out := flag.String("out", filepath.Join("examples", "registry"), "output registry directory")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// stream returns size bytes of sha256(label ":" i) blocks, i = 0, 1, …
func stream(label string, size int) []byte {
	out := make([]byte, 0, size+32)
	for i := 0; len(out) < size; i++ {
		s := sha256.Sum256([]byte(label + ":" + strconv.Itoa(i)))
		out = append(out, s[:]...)
	}
	return out[:size]
}

type file struct {
	handle string
	// source, when set, is a path relative to the registry root (a shared blob).
	source string
	data   []byte
}

type pkg struct {
	id       string
	manifest *pyjson.Object
	trusted  bool
	features any
	rec      *pyjson.Object
	files    []file
}

type model struct {
	dir      string
	id       string
	aliases  []string
	arch     string
	variant  any
	task     string
	rec      *pyjson.Object
	packages []pkg
}

var o = pyjson.ObjectOf

func classNames(names ...string) []byte { return []byte(strings.Join(names, "\n") + "\n") }

func inferenceConfig(task string, size int, classes int) []byte {
	b, _ := pyjson.MarshalIndent(o(
		"image_pre_processing", o(),
		"network_input", o("training_input_size", o("height", size, "width", size), "dynamic_spatial_size_supported", false,
			"color_mode", "rgb", "resize_mode", "letterbox", "input_channels", 3, "scaling_factor", 255),
		"class_names_operations", []any{},
		"model_initialization", o("task_type", task, "classes", classes),
	))
	return append(b, '\n')
}

func trtConfig(static any, lo, opt, hi any) []byte {
	b, _ := pyjson.MarshalIndent(o("static_batch_size", static, "dynamic_batch_size_min", lo,
		"dynamic_batch_size_opt", opt, "dynamic_batch_size_max", hi))
	return append(b, '\n')
}

func onnxManifest(q string, dynamic bool, static int, opset int) *pyjson.Object {
	m := o("type", "onnx-model-package-v1", "backendType", "onnx", "quantization", q, "dynamicBatchSize", dynamic, "opset", opset)
	if !dynamic {
		m.Set("staticBatchSize", static)
	}
	return m
}

func trtServer(q, device, cc, cuda, trt, driver, osv string, dynamic bool, sameCC bool) *pyjson.Object {
	m := o("type", "trt-model-package-v1", "backendType", "trt", "quantization", q, "dynamicBatchSize", dynamic)
	if dynamic {
		m.Set("minBatchSize", 1)
		m.Set("optBatchSize", 8)
		m.Set("maxBatchSize", 16)
	} else {
		m.Set("staticBatchSize", 1)
	}
	for _, kv := range [][2]any{{"cudaDeviceType", device}, {"cudaDeviceCC", cc}, {"cudaVersion", cuda}, {"trtVersion", trt},
		{"sameCCCompatible", sameCC}, {"trtForwardCompatible", false}, {"trtLeanRuntimeExcluded", false}, {"machineType", "gpu-server"}} {
		m.Set(kv[0].(string), kv[1])
	}
	m.Set("machineSpecs", o("type", "gpu-server-specs-v1", "driverVersion", driver, "osVersion", osv))
	return m
}

func models() []model {
	const shared = "blobs/parcel-detector"
	detClasses := classNames("parcel", "label", "barcode")
	detCfg := inferenceConfig("object-detection", 640, 3)
	common := func(trt bool) []file {
		fs := []file{
			{handle: "class_names.txt", source: shared + "/class_names.txt", data: detClasses},
			{handle: "inference_config.json", source: shared + "/inference_config.json", data: detCfg},
		}
		return fs
	}
	det := model{
		dir: "parcel-detector", id: "acme-ws/parcel-detector/7", aliases: []string{"parcel-det"},
		arch: "rfdetr", variant: "rfdetr-nano", task: "object-detection",
		rec: o("confidence", 0.42, "per_class_confidence", o("parcel", 0.45, "label", 0.38)),
	}
	onnxDyn := onnxManifest("fp32", true, 0, 19)
	onnxDyn.Set("incompatibleProviders", []any{"TensorrtExecutionProvider"})
	det.packages = []pkg{
		{id: "detonnxfp32dyn", manifest: onnxDyn, trusted: true,
			files: append([]file{{handle: "weights.onnx", data: stream("det-onnx-fp32-dyn", 6144)}}, common(false)...)},
		{id: "detonnxfp16dyn", manifest: onnxManifest("fp16", true, 0, 19), trusted: true,
			files: append([]file{{handle: "weights.onnx", data: stream("det-onnx-fp16-dyn", 3072)}}, common(false)...)},
		{id: "detonnxfp32nms", manifest: onnxManifest("fp32", false, 1, 17), trusted: true,
			features: o("nms_fused", o("max_detections", 300, "confidence_threshold", 0.25, "iou_threshold", 0.7, "class_agnostic", false)),
			files:    append([]file{{handle: "weights.onnx", data: stream("det-onnx-fp32-nms", 6400)}}, common(false)...)},
		{id: "dettrtl4fp16", manifest: trtServer("fp16", "nvidia-l4", "8.9", "12.6", "10.4.0.26", "550.54.15", "ubuntu-22.04", true, false), trusted: true,
			files: append([]file{{handle: "engine.plan", data: stream("det-trt-l4", 5120)}, {handle: "trt_config.json", data: trtConfig(nil, 1, 8, 16)}}, common(true)...)},
		{id: "dettrta100fp16", manifest: trtServer("fp16", "nvidia-a100", "8.0", "12.4", "10.0.1.6", "535.161.08", "ubuntu-22.04", false, true), trusted: true,
			files: append([]file{{handle: "engine.plan", data: stream("det-trt-a100", 5120)}, {handle: "trt_config.json", data: trtConfig(1, nil, nil, nil)}}, common(true)...)},
		{id: "dettrtt4fp16trt8", manifest: trtServer("fp16", "tesla-t4", "7.5", "11.8", "8.6.1.6", "525.85.12", "ubuntu-20.04", false, true), trusted: true,
			files: append([]file{{handle: "engine.plan", data: stream("det-trt-t4", 4608)}, {handle: "trt_config.json", data: trtConfig(1, nil, nil, nil)}}, common(true)...)},
		{id: "dettrtorinfp16", manifest: o("type", "trt-model-package-v1", "backendType", "trt", "quantization", "fp16",
			"dynamicBatchSize", false, "staticBatchSize", 1, "cudaDeviceType", "orin", "cudaDeviceCC", "8.7", "cudaVersion", "12.6",
			"trtVersion", "10.3.0.30", "sameCCCompatible", true, "trtForwardCompatible", false, "trtLeanRuntimeExcluded", false,
			"machineType", "jetson", "machineSpecs", o("type", "jetson-machine-specs-v1", "l4tVersion", "36.4.3",
				"deviceName", "jetson-orin-nx", "driverVersion", "540.4.0")), trusted: true,
			files: append([]file{{handle: "engine.plan", data: stream("det-trt-orin", 4096)}, {handle: "trt_config.json", data: trtConfig(1, nil, nil, nil)}}, common(true)...)},
		{id: "dettorchfp32", manifest: o("type", "torch-model-package-v1", "backendType", "torch", "quantization", "fp32", "dynamicBatchSize", true),
			trusted: true, rec: o("confidence", 0.4),
			files: append([]file{{handle: "weights.pt", data: stream("det-torch", 7168)}}, common(false)...)},
	}

	segClasses := classNames("parcel", "tape")
	seg := model{
		dir: "parcel-segmenter", id: "acme-ws/parcel-segmenter/3", arch: "yolov8", variant: "yolov8n-seg",
		task: "instance-segmentation", rec: o("confidence", 0.5),
	}
	segFiles := func(label string, size int) []file {
		return []file{
			{handle: "weights.onnx", data: stream(label, size)},
			{handle: "class_names.txt", data: segClasses},
			{handle: "inference_config.json", data: inferenceConfig("instance-segmentation", 640, 2)},
		}
	}
	seg.packages = []pkg{
		{id: "segonnxfp32b1", manifest: onnxManifest("fp32", false, 1, 17), trusted: true, files: segFiles("seg-onnx-fp32", 5632)},
		{id: "segonnxfp16dyn", manifest: onnxManifest("fp16", true, 0, 17), trusted: true, files: segFiles("seg-onnx-fp16", 2816)},
		{id: "segtorchscript", manifest: o("type", "torch-script-model-package-v1", "backendType", "torch-script", "quantization", "fp32",
			"dynamicBatchSize", true, "supportedDeviceTypes", []any{"cpu", "cuda"}, "torchVersion", "2.4.0", "torchVisionVersion", "0.19.0"),
			trusted: true, files: []file{
				{handle: "weights.torchscript", data: stream("seg-torchscript", 6656)},
				{handle: "class_names.txt", data: segClasses},
				{handle: "inference_config.json", data: inferenceConfig("instance-segmentation", 640, 2)},
			}},
	}

	clsClasses := classNames("apple", "banana", "cherry", "grape")
	cls := model{
		dir: "fruit-classifier", id: "acme-ws/fruit-classifier/2", arch: "vit", variant: nil, task: "classification",
	}
	cls.packages = []pkg{
		{id: "clsonnxfp32b1", manifest: onnxManifest("fp32", false, 1, 17), trusted: true, files: []file{
			{handle: "weights.onnx", data: stream("cls-onnx", 4352)},
			{handle: "class_names.txt", data: clsClasses},
			{handle: "inference_config.json", data: inferenceConfig("classification", 224, 4)},
		}},
		{id: "clshffp32", manifest: o("type", "hf-model-package-v1", "backendType", "hf", "quantization", "fp32"), trusted: true, files: []file{
			{handle: "model.safetensors", data: stream("cls-hf-weights", 8192)},
			{handle: "config.json", data: []byte("{\n  \"architectures\": [\n    \"ViTForImageClassification\"\n  ],\n  \"num_labels\": 4\n}\n")},
			{handle: "preprocessor/preprocessor_config.json", data: []byte("{\n  \"do_resize\": true,\n  \"size\": 224\n}\n")},
		}},
	}
	return []model{det, seg, cls}
}

func writeJSON(path string, v any) error {
	b, err := pyjson.MarshalIndent(v)
	if err != nil {
		return err
	}
	return writeFile(path, append(b, '\n'))
}

func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// generate writes the registry below out. Existing models/ and blobs/ trees
// are replaced, but only in a directory that is empty or already a registry.
func generate(out string) error {
	if b, err := os.ReadFile(filepath.Join(out, "registry.json")); err == nil {
		if !strings.Contains(string(b), `"modelcache-registry"`) {
			return fmt.Errorf("%s/registry.json is not a modelcache registry; refusing to overwrite", out)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, d := range []string{"models", "blobs"} {
		if err := os.RemoveAll(filepath.Join(out, d)); err != nil {
			return err
		}
	}
	if err := writeJSON(filepath.Join(out, "registry.json"), o("format", "modelcache-registry", "format_version", 1)); err != nil {
		return err
	}
	written := map[string]string{} // shared source -> label of its bytes
	for _, m := range models() {
		mdir := filepath.Join(out, "models", m.dir)
		aliases := make([]any, 0, len(m.aliases))
		for _, a := range m.aliases {
			aliases = append(aliases, a)
		}
		order := make([]any, 0, len(m.packages))
		for _, p := range m.packages {
			order = append(order, p.id)
		}
		var rec any
		if m.rec != nil {
			rec = m.rec
		}
		mj := o("model_id", m.id, "aliases", aliases, "model_architecture", m.arch, "model_variant", m.variant,
			"task_type", m.task, "model_dependencies", nil, "recommended_parameters", rec, "package_order", order)
		if err := writeJSON(filepath.Join(mdir, "model.json"), mj); err != nil {
			return err
		}
		for _, p := range m.packages {
			pdir := filepath.Join(mdir, "packages", p.id)
			pj := o("manifest", p.manifest, "trusted_source", p.trusted, "model_features", p.features)
			if p.rec != nil {
				pj.Set("recommended_parameters", p.rec)
			}
			var list []any
			for _, f := range p.files {
				entry := o("handle", f.handle)
				if f.source != "" {
					entry.Set("source", f.source)
					if prev, ok := written[f.source]; ok && prev != string(f.data) {
						return fmt.Errorf("shared source %s written with different bytes", f.source)
					}
					written[f.source] = string(f.data)
					if err := writeFile(filepath.Join(out, filepath.FromSlash(f.source)), f.data); err != nil {
						return err
					}
				} else if err := writeFile(filepath.Join(pdir, "files", filepath.FromSlash(f.handle)), f.data); err != nil {
					return err
				}
				list = append(list, entry)
			}
			pj.Set("files", list)
			if err := writeJSON(filepath.Join(pdir, "package.json"), pj); err != nil {
				return err
			}
		}
	}
	return nil
}
