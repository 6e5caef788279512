package xray

import (
	"context"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// pythonModule is an importable Python package found on disk.
type pythonModule struct {
	dir     string // the package directory, absolute
	version string // __version__, "" when not found
}

type pythonPackages map[string]pythonModule

// versionFiles tells where each probed package keeps __version__.
var versionFiles = map[string]string{
	"torch":        "version.py",
	"torchvision":  "version.py",
	"transformers": "__init__.py",
	"tensorrt":     "__init__.py",
	"onnxruntime":  "__init__.py",
}

var versionAssign = regexp.MustCompile(`(?m)^__version__\s*(?::\s*str\s*)?=\s*['"]([^'"]+)['"]`)

// pythonPaths returns the Python import directories, absolute.
func (p *prober) pythonPaths(ctx context.Context) ([]string, string) {
	if p.o.PythonPaths != nil {
		return p.o.PythonPaths, "configured Python paths"
	}
	out, err := p.run(ctx, "python3", "-c", "import sys; print('\\n'.join(sys.path))")
	if err == nil {
		var dirs []string
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); strings.HasPrefix(l, "/") {
				dirs = append(dirs, l)
			}
		}
		return dirs, "python3 sys.path"
	}
	var dirs []string
	if venv, ok := p.getenv("VIRTUAL_ENV"); ok && strings.HasPrefix(venv, "/") {
		m, _ := fs.Glob(p.o.FS, strings.TrimPrefix(venv, "/")+"/lib/python3*/site-packages")
		dirs = append(dirs, m...)
	}
	for _, pat := range []string{"usr/local/lib/python3*/dist-packages", "usr/local/lib/python3*/site-packages",
		"usr/lib/python3/dist-packages", "usr/lib/python3*/site-packages"} {
		m, _ := fs.Glob(p.o.FS, pat)
		dirs = append(dirs, m...)
	}
	for i := range dirs {
		if !strings.HasPrefix(dirs[i], "/") {
			dirs[i] = "/" + dirs[i]
		}
	}
	return dirs, "usual site-packages directories (no python3)"
}

// python finds the packages the reference imports (first match in path order).
func (p *prober) python(ctx context.Context) pythonPackages {
	dirs, src := p.pythonPaths(ctx)
	p.log.DebugContext(ctx, "x-ray Python paths", "source", src, "paths", dirs)
	found := pythonPackages{}
	for mod, vf := range versionFiles {
		for _, d := range dirs {
			pkgDir := path.Join(d, mod)
			if _, err := fs.Stat(p.o.FS, strings.TrimPrefix(path.Join(pkgDir, "__init__.py"), "/")); err != nil {
				continue
			}
			m := pythonModule{dir: pkgDir}
			if b, err := p.readFile(path.Join(pkgDir, vf)); err == nil {
				if v := versionAssign.FindSubmatch(b); v != nil {
					m.version = string(v[1])
				}
			}
			found[mod] = m
			break
		}
	}
	return found
}

// torchFacts fills torch, torchvision, transformers and TensorRT-bindings facts.
func (p *prober) torchFacts(py pythonPackages) {
	f := &p.out.Facts
	d := p.o.Declared
	avail := func(field, mod string, declared *bool) bool {
		if declared != nil {
			p.source(field, "declared by the application")
			return *declared
		}
		if m, ok := py[mod]; ok {
			p.source(field, "Python package %s at %s", mod, m.dir)
			return true
		}
		p.source(field, "not found: no importable Python package %s", mod)
		return false
	}
	version := func(field, mod string, declared *string) *string {
		raw, where := "", ""
		switch {
		case declared != nil:
			raw, where = *declared, "declared by the application"
		case py[mod].version != "":
			raw, where = py[mod].version, "__version__ of "+py[mod].dir
		default:
			p.source(field, "not found: no %s version", mod)
			return nil
		}
		public, _, _ := strings.Cut(raw, "+")
		n, ok := normVersion(public)
		if !ok {
			p.warn("%s version %q is not a PEP 440 version; reported as unknown", mod, raw)
			p.source(field, "unparsable (%s)", where)
			return nil
		}
		p.source(field, "%s", where)
		return &n
	}
	f.TorchAvailable = avail("torch_available", "torch", d.TorchAvailable)
	f.TorchVersion = version("torch_version", "torch", d.TorchVersion)
	f.TorchvisionVersion = version("torchvision_version", "torchvision", d.TorchvisionVersion)
	f.HFTransformersAvailable = avail("hf_transformers_available", "transformers", d.HFTransformers)
	f.TRTPythonPackageAvailable = avail("trt_python_package_available", "tensorrt", d.TRTPythonPackage)
}

// providerOrder is ONNX Runtime's provider priority order; provider
// libraries are named libonnxruntime_providers_<suffix>.so.
var providerOrder = []struct{ name, lib string }{
	{"TensorrtExecutionProvider", "tensorrt"}, {"CUDAExecutionProvider", "cuda"},
	{"MIGraphXExecutionProvider", "migraphx"}, {"ROCMExecutionProvider", "rocm"},
	{"OpenVINOExecutionProvider", "openvino"}, {"DnnlExecutionProvider", "dnnl"},
	{"VitisAIExecutionProvider", "vitisai"}, {"QNNExecutionProvider", "qnn"},
}

// providersIn lists the execution providers whose libraries sit in dir, in
// ONNX Runtime's order, CPUExecutionProvider (built in) last.
func (p *prober) providersIn(dir string) []string {
	names, _ := readDir(p.o.FS, dir)
	have := map[string]bool{}
	for _, n := range names {
		if s, ok := strings.CutPrefix(n, "libonnxruntime_providers_"); ok {
			s, _, _ = strings.Cut(s, ".so")
			have[s] = true
		}
	}
	var out []string
	for _, e := range providerOrder {
		if have[e.lib] {
			out = append(out, e.name)
		}
	}
	return append(out, "CPUExecutionProvider")
}

// onnxRuntime: declared by the application, else the onnxruntime Python
// package, else a system libonnxruntime; providers are inferred from the
// provider libraries shipped beside it.
func (p *prober) onnxRuntime(ctx context.Context, py pythonPackages) {
	f := &p.out.Facts
	const vf, ef = "onnxruntime_version", "available_onnx_execution_providers"
	if d := p.o.Declared; d.ONNXRuntimeVersion != nil {
		if n, ok := normVersion(*d.ONNXRuntimeVersion); ok {
			f.ONNXRuntimeVersion = &n
			f.AvailableONNXExecutionProviders = append([]string{}, d.ONNXExecutionProviders...)
			p.source(vf, "declared by the application")
			p.source(ef, "declared by the application")
			return
		}
		p.warn("declared ONNX Runtime version %q is not a PEP 440 version; probing instead", *d.ONNXRuntimeVersion)
	}
	if m, ok := py["onnxruntime"]; ok {
		if n, ok := normVersion(m.version); ok {
			f.ONNXRuntimeVersion = &n
			f.AvailableONNXExecutionProviders = p.providersIn(path.Join(m.dir, "capi"))
			p.source(vf, "__version__ of %s", m.dir)
			p.source(ef, "provider libraries in %s/capi (inferred; providers built into the core library, e.g. Azure, are not seen)", m.dir)
			return
		}
	}
	if v, dir, ok := p.findVersionedLib(ctx, "libonnxruntime"); ok {
		if n, ok := normVersion(v); ok {
			f.ONNXRuntimeVersion = &n
			f.AvailableONNXExecutionProviders = p.providersIn(dir)
			p.source(vf, "libonnxruntime.so.%s in %s", v, dir)
			p.source(ef, "provider libraries in %s (inferred)", dir)
			return
		}
	}
	p.source(vf, "not found: no onnxruntime Python package, no libonnxruntime")
	p.source(ef, "not found (ONNX Runtime not installed)")
}
