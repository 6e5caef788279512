package negotiation

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcache/modelcache/internal/pep440"
)

// Runtime holds the runtime facts negotiation matches packages against: the
// reference's runtime x-ray (negotiation.md §8). Its JSON form is the
// "runtime" object of compat/NEGOTIATION.md; package xray produces it.
//
// Versions are PEP 440 strings (normal form recommended); nil is null.
type Runtime struct {
	// GPUAvailable is informational: negotiation reads GPUDevices.
	GPUAvailable bool `json:"gpu_available"`
	// GPUDevices are normalized GPU names (lower-case, spaces -> "-") in CUDA
	// index order; GPUDevicesCC their compute capabilities ("8.9").
	GPUDevices   []string `json:"gpu_devices"`
	GPUDevicesCC []string `json:"gpu_devices_cc"`
	// DriverVersion is the NVIDIA driver (ranking only).
	DriverVersion *string `json:"driver_version"`
	// CUDAVersion is the CUDA runtime (not read by negotiation).
	CUDAVersion *string `json:"cuda_version"`
	// TRTVersion is the TensorRT runtime; nil means TensorRT is not installed.
	TRTVersion *string `json:"trt_version"`
	// JetsonType is e.g. "nvidia-jetson-orin-nx" (ranking only).
	JetsonType *string `json:"jetson_type"`
	// L4TVersion is the Jetson L4T release, e.g. "36.4.3".
	L4TVersion *string `json:"l4t_version"`
	// OSVersion is e.g. "ubuntu-22.04"; nil on Jetson (ranking only).
	OSVersion      *string `json:"os_version"`
	TorchAvailable bool    `json:"torch_available"`
	// TorchVersion / TorchvisionVersion without a local suffix ("+cu124").
	TorchVersion       *string `json:"torch_version"`
	TorchvisionVersion *string `json:"torchvision_version"`
	// ONNXRuntimeVersion nil means ONNX Runtime is not installed.
	ONNXRuntimeVersion *string `json:"onnxruntime_version"`
	// AvailableONNXExecutionProviders in ONNX Runtime's order; nil is null.
	AvailableONNXExecutionProviders []string `json:"available_onnx_execution_providers"`
	HFTransformersAvailable         bool     `json:"hf_transformers_available"`
	TRTPythonPackageAvailable       bool     `json:"trt_python_package_available"`
}

// MarshalJSON writes every field; GPU lists are [] rather than null.
func (r Runtime) MarshalJSON() ([]byte, error) {
	type plain Runtime
	p := plain(r)
	if p.GPUDevices == nil {
		p.GPUDevices = []string{}
	}
	if p.GPUDevicesCC == nil {
		p.GPUDevicesCC = []string{}
	}
	return json.Marshal(p)
}

func copyStr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}

// facts are the parsed runtime facts.
type facts struct {
	gpus       []string
	ccs        []pep440.Version
	driver     *pep440.Version
	trt        *pep440.Version
	l4t        *pep440.Version
	torch      *pep440.Version
	torchVis   *pep440.Version
	ort        *pep440.Version
	jetsonType *string
	osVersion  *string
	eps        []string // nil: null
	torchOK    bool
	hfOK       bool
	trtBinding bool
}

// JetsonGPUName is the normalized name of the Jetson Orin GPU; a runtime
// listing it without an L4T version is inconsistent (negotiation.md §8).
const JetsonGPUName = "orin"

// Check validates the facts the way negotiation consults them: the Jetson
// consistency rule (a GPU named exactly "orin" needs an L4T version) and the
// versions, which must parse as PEP 440 (an unparsable torch or torchvision
// version counts as unknown). It returns a *RuntimeIntrospectionError.
func (r Runtime) Check() error {
	_, err := r.parse()
	return err
}

func (r Runtime) parse() (*facts, error) {
	for _, g := range r.GPUDevices {
		if g == JetsonGPUName && r.L4TVersion == nil {
			return nil, &RuntimeIntrospectionError{Message: "Inconsistency in environment setup detected - GPU device name indicate that you run the code " +
				"on Jetson device, but L4T version cannot be established, which is important for `inference-models` to work correctly. " +
				"Please set environment variable `RUNNING_ON_JETSON=True`, as well as `L4T_VERSION=<your-l4t-version>`. " +
				"Optionally you may also set `JETSON_MODULE` variable to the name of your Jetson module (e.g. `NVIDIA Jetson Orin NX`)."}
		}
	}
	f := &facts{
		gpus:       r.GPUDevices,
		jetsonType: r.JetsonType,
		osVersion:  r.OSVersion,
		eps:        r.AvailableONNXExecutionProviders,
		torchOK:    r.TorchAvailable,
		hfOK:       r.HFTransformersAvailable,
		trtBinding: r.TRTPythonPackageAvailable,
	}
	var bad []string
	opt := func(field string, s *string) *pep440.Version {
		if s == nil {
			return nil
		}
		v, err := pep440.Parse(*s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s=%q", field, *s))
			return nil
		}
		return &v
	}
	lenient := func(s *string) *pep440.Version {
		if s == nil {
			return nil
		}
		v, err := pep440.Parse(*s)
		if err != nil {
			return nil
		}
		return &v
	}
	for i, c := range r.GPUDevicesCC {
		v, err := pep440.Parse(c)
		if err != nil {
			bad = append(bad, fmt.Sprintf("gpu_devices_cc[%d]=%q", i, c))
			continue
		}
		f.ccs = append(f.ccs, v)
	}
	f.driver = opt("driver_version", r.DriverVersion)
	opt("cuda_version", r.CUDAVersion)
	f.trt = opt("trt_version", r.TRTVersion)
	f.l4t = opt("l4t_version", r.L4TVersion)
	f.ort = opt("onnxruntime_version", r.ONNXRuntimeVersion)
	f.torch = lenient(r.TorchVersion)
	f.torchVis = lenient(r.TorchvisionVersion)
	if len(bad) > 0 {
		return nil, &RuntimeIntrospectionError{Message: "Runtime introspection results hold values that are not PEP 440 versions: " + strings.Join(bad, ", ")}
	}
	return f, nil
}
