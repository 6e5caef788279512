package negotiation

import (
	"fmt"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/metadata"
)

// Reason texts of the runtime matchers (verbatim from the reference).
const (
	reasonONNXNotInstalled = "ONNX backend not installed - consider installing relevant ONNX extras: `onnx-cpu`, `onnx-cu118`, " +
		"`onnx-cu12`, `onnx-jp6-cu126` depending on hardware you run `inference-models`"
	reasonONNXDetailsMissing    = "Model package metadata delivered by weights provider lack required ONNX package details"
	reasonONNXNoDefaultProvider = "Incorrect ONNX backend installation none of the default ONNX Execution Providers available in environment"
	reasonONNXNoSelected        = "None of the selected ONNX Execution Providers detected in runtime environment - consider adjusting the settings"
	reasonONNXOpset             = "ONNX model package was compiled with opset higher than supported for installed ONNX backend"
	// The run of 12 spaces is the reference's (Q9).
	reasonTorchNotInstalled = "Torch backend not installed - consider installing relevant torch extras: `torch-cpu`, `torch-cu118`, " +
		"`torch-cu124`, `torch-cu126`, `torch-cu128` or `torch-jp6-cu126`             depending on hardware you run `inference-models`"
	reasonTransformersNotInstalled = "Transformers backend not installed - this package should be installed by default and probably " +
		"was accidentally deleted - install `inference-models` package again."
	reasonTRTNotInstalled      = "TRT backend not installed. Consider installing `trt10` extras."
	reasonTRTDetailsMissing    = "Model package metadata delivered by weights provider lack required TRT package details"
	reasonTRTHardware          = "TRT model package is incompatible with your hardware"
	reasonTRTL4T               = "TRT model package is incompatible with installed L4T version"
	reasonTRTVersion           = "TRT model package is incompatible with installed TRT version"
	reasonTRTLeanExcluded      = "TRT model package is currently not supported"
	reasonTRTHostCode          = "TRT model package cannot run with `trt_engine_host_code_allowed=False` - consider settings adjustment."
	reasonTorchScriptDetails   = "Model package metadata delivered by weights provider lack required TorchScript package details"
	reasonTorchScriptNoDevice  = "Auto-negotiation run with `device=None` which makes it impossible to match the request with TorchScript model package. Specify the device."
	reasonTorchScriptNoVersion = "Model package is not supported when %s version cannot be determined. This may be a bug - please report: https://github.com/roboflow/inference/issues/"
	reasonTorchScriptTooOld    = "Model package requires %s in version at least %s, but your environment has the following version installed: %s - consider the upgrade of %s."
)

// onnxOpsetLimits maps ONNX Runtime major.minor to the highest opset it runs;
// any other version (older or newer) gets defaultOpsetLimit (Q6).
var onnxOpsetLimits = map[string]int{
	"1.15": 19, "1.16": 19, "1.17": 20, "1.18": 21, "1.19": 21, "1.20": 21, "1.21": 22, "1.22": 23,
}

const defaultOpsetLimit = 19

// OpsetLimit returns the highest ONNX opset the reference accepts for an ONNX
// Runtime version.
func OpsetLimit(ort pep440.Version) int {
	r := ort.Release()
	if len(r) < 2 {
		return defaultOpsetLimit
	}
	if l, ok := onnxOpsetLimits[r[0]+"."+r[1]]; ok {
		return l
	}
	return defaultOpsetLimit
}

func (n *negotiation) filterRuntime(alive []int) ([]int, error) {
	f, err := n.facts() // consulted even when no package is left
	if err != nil {
		return nil, err
	}
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		var code Code
		var reason string
		switch p.Backend {
		case metadata.BackendONNX:
			code, reason = n.matchONNX(p, f)
		case metadata.BackendTRT:
			code, reason, err = n.matchTRT(p, f)
		case metadata.BackendTorch:
			if !f.torchOK {
				code, reason = CodeTorchNotInstalled, reasonTorchNotInstalled
			}
		case metadata.BackendHuggingFace:
			if !f.hfOK {
				code, reason = CodeTransformersNotInstalled, reasonTransformersNotInstalled
			}
		case metadata.BackendTorchScript:
			code, reason = n.matchTorchScript(p, f)
		default:
			// The reference aborts the whole negotiation here (Q7).
			code, reason = CodeBackendNotNegotiable, fmt.Sprintf("Model package negotiation protocol not implemented for model backend %s", p.Backend)
		}
		if err != nil {
			return nil, err
		}
		if code == "" {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageRuntime, code, reason)
	}
	return keep, nil
}

// onnxProviders computes the execution-provider list once (§4.8 step 3).
func (n *negotiation) onnxProviders(f *facts) ([]string, bool) {
	if n.epsDone {
		return n.eps, n.epsExplicit
	}
	n.epsDone = true
	avail := map[string]bool{}
	for _, e := range f.eps {
		avail[e] = true
	}
	var list []string
	if len(n.req.ONNXExecutionProviders) > 0 {
		n.epsExplicit = true
		withOptions := false
		for _, ep := range n.req.ONNXExecutionProviders {
			if ep.Options != nil {
				withOptions = true
				continue // never matches the available set (Q3)
			}
			if avail[ep.Name] {
				list = append(list, ep.Name)
			}
		}
		if withOptions {
			n.note("ONNX execution providers given with options are ignored by negotiation (reference quirk Q3): only bare names are matched against the available providers.")
		}
	} else {
		env := n.req.EnvONNXExecutionProviders
		if env == nil {
			env = DefaultEnvONNXExecutionProviders()
		}
		for _, name := range env {
			if avail[name] {
				list = append(list, name)
			}
		}
	}
	n.eps = list
	n.rep.ONNXExecutionProviders = append([]string{}, list...)
	if len(list) > 0 && n.dev != nil && n.dev.Type == "cpu" && list[0] != "CPUExecutionProvider" {
		n.note(fmt.Sprintf("The primary ONNX execution provider is %s although the device is cpu: the reference ignores the device when choosing providers (Q15).", list[0]))
	}
	return n.eps, n.epsExplicit
}

func (n *negotiation) matchONNX(p *metadata.ModelPackage, f *facts) (Code, string) {
	if f.ort == nil || len(f.eps) == 0 {
		return CodeONNXNotInstalled, reasonONNXNotInstalled
	}
	d := p.ONNXPackageDetails
	if d == nil {
		return CodeONNXDetailsMissing, reasonONNXDetailsMissing
	}
	eps, explicit := n.onnxProviders(f)
	if len(eps) == 0 {
		if explicit {
			return CodeONNXNoSelectedProviderAvailable, reasonONNXNoSelected
		}
		return CodeONNXNoDefaultProviderAvailable, reasonONNXNoDefaultProvider
	}
	if contains(d.IncompatibleProviders, eps[0]) {
		return CodeONNXPrimaryProviderIncompatible, "Model package cannot be run with default ONNX Execution Provider: " + eps[0]
	}
	if d.Opset > OpsetLimit(*f.ort) {
		return CodeONNXOpsetTooHigh, reasonONNXOpset
	}
	return "", ""
}

func (n *negotiation) matchTorchScript(p *metadata.ModelPackage, f *facts) (Code, string) {
	if !f.torchOK {
		return CodeTorchNotInstalled, reasonTorchNotInstalled
	}
	d := p.TorchScriptPackageDetails
	if d == nil {
		return CodeTorchScriptDetailsMissing, reasonTorchScriptDetails
	}
	if n.dev == nil {
		return CodeTorchScriptDeviceNotSpecified, reasonTorchScriptNoDevice
	}
	if !contains(d.SupportedDeviceTypes, n.dev.Type) {
		return CodeTorchScriptDeviceTypeUnsupp, fmt.Sprintf(
			"Model package is supported with the following device types: %s, but auto-negotiation requested model for device with type: %s",
			pySetRepr(d.SupportedDeviceTypes), n.dev.Type)
	}
	if f.torch == nil {
		return CodeTorchScriptTorchVersionUnknown, fmt.Sprintf(reasonTorchScriptNoVersion, "torch")
	}
	need, err := pep440.Parse(d.TorchVersion)
	if err != nil {
		return CodeInvalidPackageVersion, fmt.Sprintf("Model package declares torch version %q which is not a PEP 440 version", d.TorchVersion)
	}
	if f.torch.Less(need) {
		return CodeTorchScriptTorchTooOld, fmt.Sprintf(reasonTorchScriptTooOld, "torch", need, f.torch, "torch")
	}
	if d.TorchVisionVersion == nil {
		return "", ""
	}
	if f.torchVis == nil {
		return CodeTorchScriptVisionVersionUnknown, fmt.Sprintf(reasonTorchScriptNoVersion, "torchvision")
	}
	needV, err := pep440.Parse(*d.TorchVisionVersion)
	if err != nil {
		return CodeInvalidPackageVersion, fmt.Sprintf("Model package declares torchvision version %q which is not a PEP 440 version", *d.TorchVisionVersion)
	}
	if f.torchVis.Less(needV) {
		return CodeTorchScriptVisionTooOld, fmt.Sprintf(reasonTorchScriptTooOld, "torchvision", needV, f.torchVis, "torchvision")
	}
	return "", ""
}

// selectedGPUs is §4.10 step 7: the GPU indices the device selects.
func (n *negotiation) selectedGPUs(f *facts) ([]int, error) {
	count := len(f.gpus)
	if len(f.ccs) < count {
		count = len(f.ccs)
	}
	if n.dev == nil {
		out := make([]int, count)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	if n.dev.Type != "cuda" {
		return nil, nil
	}
	idx := n.dev.Index // "cuda" without index is cuda:0
	if idx >= len(f.gpus) || idx >= len(f.ccs) {
		return nil, negotiationErrorf(fmt.Sprintf(
			"Model Package Negotiation algorithm received selected device: %s which does not match runtime introspection results. "+
				"If you selected device manually, please verify it is available, otherwise this is probably a bug.", n.dev))
	}
	return []int{idx}, nil
}

// deviceCompatible is the TRT device check.
func (n *negotiation) deviceCompatible(p *metadata.ModelPackage, f *facts, sameCC bool) (bool, error) {
	sel, err := n.selectedGPUs(f)
	if err != nil {
		return false, err
	}
	env := p.EnvironmentRequirements
	if sameCC {
		want, err := pep440.Parse(env.CUDADeviceCC)
		if err != nil {
			return false, nil
		}
		for _, i := range sel {
			if f.ccs[i].Equal(want) {
				return true, nil
			}
		}
		return false, nil
	}
	for _, i := range sel {
		if f.gpus[i] == env.CUDADeviceName {
			return true, nil
		}
	}
	return false, nil
}

func (n *negotiation) matchTRT(p *metadata.ModelPackage, f *facts) (Code, string, error) {
	if f.trt == nil {
		return CodeTRTNotInstalled, reasonTRTNotInstalled, nil
	}
	if !f.trtBinding {
		n.note("Some TensorRT packages were rejected as \"lack required TRT package details\": the reference reports missing TensorRT Python bindings (trt_python_package_available=false) with that text (Q10).")
		return CodeTRTDetailsMissing, reasonTRTDetailsMissing, nil
	}
	env := p.EnvironmentRequirements
	if env == nil {
		return CodeTRTDetailsMissing, reasonTRTDetailsMissing, nil
	}
	var sameCC, forward, leanExcluded bool
	if d := p.TRTPackageDetails; d != nil {
		sameCC, forward, leanExcluded = d.SameCCCompatible, d.TRTForwardCompatible, d.TRTLeanRuntimeExcluded
	}
	switch env.Kind {
	case metadata.MachineJetson:
		pkgTRT := pep(env.TRTVersion)
		if pkgTRT == nil {
			return CodeTRTDetailsMissing, reasonTRTDetailsMissing, nil
		}
		if f.l4t == nil {
			n.note("Jetson TensorRT packages met a runtime without an L4T version; the reference reports that as \"lack required TRT package details\".")
			return CodeTRTDetailsMissing, reasonTRTDetailsMissing, nil
		}
		ok, err := n.deviceCompatible(p, f, sameCC)
		if err != nil || !ok {
			return CodeTRTHardwareIncompatible, reasonTRTHardware, err
		}
		pkgL4T, err := pep440.Parse(env.L4TVersion)
		if err != nil || !pkgL4T.MajorMinor().Equal(f.l4t.MajorMinor()) {
			return CodeTRTL4TIncompatible, reasonTRTL4T, nil
		}
		code, reason := n.trtVersionRule(*pkgTRT, *f.trt, forward, leanExcluded)
		return code, reason, nil
	case metadata.MachineGPUServer:
		pkgTRT := pep(env.TRTVersion)
		if pkgTRT == nil {
			return CodeTRTDetailsMissing, reasonTRTDetailsMissing, nil
		}
		ok, err := n.deviceCompatible(p, f, sameCC)
		if err != nil || !ok {
			return CodeTRTHardwareIncompatible, reasonTRTHardware, err
		}
		code, reason := n.trtVersionRule(*pkgTRT, *f.trt, forward, leanExcluded)
		return code, reason, nil
	}
	return "", "", negotiationErrorf(fmt.Sprintf(
		"Model package %s declares environment requirements of unknown kind %q - this is probably a bug in the weights provider.",
		p.PackageID, env.Kind))
}

func (n *negotiation) trtVersionRule(pkg, rt pep440.Version, forward, leanExcluded bool) (Code, string) {
	if !forward {
		if !rt.Equal(pkg) {
			return CodeTRTVersionIncompatible, reasonTRTVersion
		}
		return "", ""
	}
	switch {
	case rt.Less(pkg):
		return CodeTRTVersionIncompatible, reasonTRTVersion
	case leanExcluded:
		return CodeTRTLeanRuntimeExcluded, reasonTRTLeanExcluded
	case n.req.DisallowTRTEngineHostCode:
		return CodeTRTHostCodeNotAllowed, reasonTRTHostCode
	}
	return "", ""
}
