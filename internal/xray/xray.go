// Package xray inspects the Linux host the way the reference's runtime x-ray
// does (negotiation.md §8): GPUs and their compute capability, NVIDIA driver,
// CUDA and TensorRT versions, Jetson module and L4T release, OS version, ONNX
// Runtime and its execution providers, and the torch / transformers /
// TensorRT Python packages when present. Every fact records where it came
// from.
//
// Detection never needs any of those installed: a missing tool or file only
// leaves the fact unknown (CPU-only hosts are the common case). All I/O goes
// through Options (a command runner and a file system rooted at "/"), so
// tests replay recorded tool outputs; nothing is cached between calls.
package xray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/pep440"
)

// Runner runs a command and returns its standard output. A command that is
// not installed must yield an error wrapping exec.ErrNotFound (or fs.ErrNotExist).
type Runner func(ctx context.Context, name string, args ...string) ([]byte, error)

// Options configure Probe. The zero value probes the real host with no
// settings (use OptionsFromConfig to take them from the environment).
type Options struct {
	// Settings from the environment (raw, as config.Config holds them).
	RunningOnJetson string // RUNNING_ON_JETSON: strict bool when set
	JetsonModule    string // JETSON_MODULE: a Jetson module name
	L4TVersion      string // L4T_VERSION
	// Getenv reads other variables (CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER,
	// VIRTUAL_ENV); nil uses os.LookupEnv.
	Getenv func(string) (string, bool)
	// Run runs external tools (nvidia-smi, dpkg, ldconfig, python3); nil runs
	// them for real with CommandTimeout each.
	Run Runner
	// FS is the root file system (paths without the leading "/"); nil is
	// os.DirFS("/").
	FS fs.FS
	// Machine is `uname -m` (x86_64, aarch64); empty derives it from GOARCH.
	Machine string
	// CUDA, when set, enumerates GPUs through the CUDA driver API (an
	// embedding application with cgo can provide it); otherwise nvidia-smi
	// and /proc/driver/nvidia are used.
	CUDA CUDADriver
	// Declared facts of the embedding application override probing.
	Declared Declared
	// PythonPaths are the Python import directories to inspect; nil asks
	// `python3` for sys.path, falling back to the usual site-packages dirs.
	PythonPaths []string
	// CommandTimeout bounds each external command (default 10 s).
	CommandTimeout time.Duration
	// Logger receives debug lines about each probe; nil discards them.
	Logger *slog.Logger
}

// Declared are facts an embedding application knows better than a probe
// (for instance because it links ONNX Runtime). nil fields are probed.
type Declared struct {
	ONNXRuntimeVersion *string
	// ONNXExecutionProviders as ONNX Runtime's GetAvailableProviders lists them.
	ONNXExecutionProviders []string
	TorchAvailable         *bool
	TorchVersion           *string
	TorchvisionVersion     *string
	HFTransformers         *bool
	TRTPythonPackage       *bool
}

// CUDADriver enumerates CUDA devices in CUDA order (honouring
// CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, as the driver does).
type CUDADriver interface {
	Devices(ctx context.Context) ([]GPU, error)
	// DriverVersion is cuDriverGetVersion (e.g. 12040); 0 when unknown.
	DriverVersion(ctx context.Context) (int, error)
}

// GPU is one CUDA device.
type GPU struct {
	// Name as the driver reports it ("Tesla T4"); normalized in Runtime.
	Name string
	// CC is the compute capability "major.minor".
	CC string
}

// OptionsFromConfig takes the x-ray settings from cfg.
func OptionsFromConfig(cfg config.Config) Options {
	return Options{RunningOnJetson: cfg.RunningOnJetson, JetsonModule: cfg.JetsonModule, L4TVersion: cfg.L4TVersion}
}

// Runtime is the x-ray result: the facts negotiation consumes and, per JSON
// field name, where each came from.
type Runtime struct {
	Facts negotiation.Runtime
	// Sources maps a field of the runtime JSON schema to a description of
	// its origin, e.g. "nvidia-smi --query-gpu", "/etc/os-release",
	// "env L4T_VERSION", "not found: ...".
	Sources map[string]string
	// Warnings are anomalies worth showing (capped CUDA version, guessed
	// values, inconsistencies).
	Warnings []string
}

// MarshalJSON writes the runtime schema of compat/NEGOTIATION.md (fields in
// schema order) plus "sources" and "warnings", which negotiation ignores when
// it reads the document back (`resolve --runtime`).
func (r Runtime) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.Facts); err != nil {
		return nil, err
	}
	facts := bytes.TrimRight(bytes.TrimSpace(buf.Bytes()), "}")
	var out bytes.Buffer
	out.Write(facts)
	out.WriteString(`,"sources":{`)
	n := 0
	for _, f := range Fields {
		s, ok := r.Sources[f]
		if !ok {
			continue
		}
		if n > 0 {
			out.WriteByte(',')
		}
		n++
		k, _ := json.Marshal(f)
		v, err := marshalNoEscape(s)
		if err != nil {
			return nil, err
		}
		out.Write(k)
		out.WriteByte(':')
		out.Write(v)
	}
	out.WriteString(`},"warnings":`)
	w := r.Warnings
	if w == nil {
		w = []string{}
	}
	v, err := marshalNoEscape(w)
	if err != nil {
		return nil, err
	}
	out.Write(v)
	out.WriteByte('}')
	return out.Bytes(), nil
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSpace(buf.Bytes()), nil
}

// Field names of the runtime schema, in schema order.
var Fields = []string{"gpu_available", "gpu_devices", "gpu_devices_cc", "driver_version", "cuda_version",
	"trt_version", "jetson_type", "l4t_version", "os_version", "torch_available", "torch_version",
	"torchvision_version", "onnxruntime_version", "available_onnx_execution_providers",
	"hf_transformers_available", "trt_python_package_available"}

// InvalidEnvError reports a setting the reference refuses (InvalidEnvVariable).
type InvalidEnvError struct {
	Variable, Value, Want string
}

func (e *InvalidEnvError) Error() string {
	return fmt.Sprintf("environment variable %s=%q is invalid: want %s", e.Variable, e.Value, e.Want)
}

// JetsonTypeResolutionError reports a JETSON_MODULE value that names no known
// Jetson module (the reference's JetsonTypeResolutionError).
type JetsonTypeResolutionError struct{ Value string }

func (e *JetsonTypeResolutionError) Error() string {
	return fmt.Sprintf("Could not resolve jetson type. Value found in environment: %s (known modules: %s)",
		e.Value, strings.Join(jetsonModules, ", "))
}

// prober carries one Probe call's state.
type prober struct {
	o   Options
	out *Runtime
	log *slog.Logger

	jtDone, jetsonFlag bool
	jtErr              error
	typeDone           bool
	jt                 *string
	typeErr            error
	libDirs            []string // memoized library search directories
}

func (p *prober) source(field, format string, args ...any) {
	p.out.Sources[field] = fmt.Sprintf(format, args...)
}

func (p *prober) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.out.Warnings = append(p.out.Warnings, msg)
	p.log.Warn(msg)
}

func (p *prober) getenv(name string) (string, bool) {
	if p.o.Getenv != nil {
		return p.o.Getenv(name)
	}
	return os.LookupEnv(name)
}

func (p *prober) readFile(name string) ([]byte, error) {
	return fs.ReadFile(p.o.FS, strings.TrimPrefix(name, "/"))
}

func (p *prober) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := p.o.Run(ctx, name, args...)
	if err != nil {
		p.log.DebugContext(ctx, "x-ray command failed", "command", name, "args", args, "error", err.Error())
	}
	return out, err
}

func machine(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "i686"
	}
	return goarch
}

// Probe inspects the host. The facts are returned even with an error, which
// is one of: *InvalidEnvError (RUNNING_ON_JETSON, L4T_VERSION),
// *JetsonTypeResolutionError (JETSON_MODULE), or the x-ray consistency rule's
// *negotiation.RuntimeIntrospectionError (a GPU named "orin" without L4T).
// Tool failures are not errors: the fact stays unknown and its source says why.
func Probe(ctx context.Context, o Options) (Runtime, error) {
	if o.Run == nil {
		o.Run = ExecRunner(o.CommandTimeout)
	}
	if o.FS == nil {
		o.FS = os.DirFS("/")
	}
	if o.Machine == "" {
		o.Machine = machine(runtime.GOARCH)
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &prober{o: o, out: &Runtime{Sources: map[string]string{}}, log: log}
	err := p.probe(ctx)
	if err == nil {
		err = p.out.Facts.Check()
	}
	return *p.out, err
}

func (p *prober) probe(ctx context.Context) error {
	f := &p.out.Facts
	// Jetson first: it decides whether L4T or the OS version is reported.
	jetson, err := p.isJetson()
	if err != nil {
		return err
	}
	var errs []error
	if jetson {
		if f.JetsonType, err = p.jetsonType(); err != nil {
			errs = append(errs, err)
		}
		if f.L4TVersion, err = p.l4tVersion(); err != nil {
			errs = append(errs, err)
		}
		p.source("os_version", "not reported on Jetson")
	} else {
		if v := p.o.RunningOnJetson; v != "" {
			p.source("jetson_type", "not a Jetson host (RUNNING_ON_JETSON=%s)", v)
		} else {
			p.source("jetson_type", "not a Jetson host (%s)", p.out.Sources["jetson_type"])
		}
		p.source("l4t_version", "not a Jetson host")
		f.OSVersion = p.osVersion()
	}
	f.DriverVersion = p.driverVersion(jetson, f.L4TVersion)
	gpus, driverCUDA := p.gpus(ctx, jetson, f.JetsonType)
	f.GPUDevices, f.GPUDevicesCC = []string{}, []string{}
	for _, g := range gpus {
		f.GPUDevices = append(f.GPUDevices, NormalizeGPUName(g.Name))
		f.GPUDevicesCC = append(f.GPUDevicesCC, g.CC)
	}
	f.GPUAvailable = len(f.GPUDevices) > 0
	p.source("gpu_available", "len(gpu_devices) > 0")

	pkgs := p.python(ctx)
	dpkg := p.dpkgPackages(ctx)
	f.CUDAVersion = p.cudaVersion(ctx, dpkg, driverCUDA)
	f.TRTVersion = p.trtVersion(ctx, dpkg, pkgs)
	p.torchFacts(pkgs)
	p.onnxRuntime(ctx, pkgs)
	return errors.Join(errs...)
}

// NormalizeGPUName lower-cases a CUDA device name and replaces spaces with
// "-" ("Tesla T4" -> "tesla-t4"); nvidia-smi's Jetson suffix " (nvgpu)" is
// dropped first.
func NormalizeGPUName(name string) string {
	name = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(name), "(nvgpu)"))
	return strings.ToLower(strings.ReplaceAll(name, " ", "-"))
}

// normVersion parses s as PEP 440 and returns its normal form.
func normVersion(s string) (string, bool) {
	v, err := pep440.Normalize(strings.TrimSpace(s))
	if err != nil {
		return "", false
	}
	return v, true
}

func ptr(s string) *string { return &s }

func boolPtr(b bool) *bool { return &b }
