package roboflow

import (
	"fmt"

	"github.com/modelcache/modelcache/internal/pep440"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// Wire type literals (registry-protocol §7–§8).
const (
	TypeModelMetadataV1 = "external-model-metadata-v1"
	TypeModelPackageV1  = "external-model-package-v1"
	TypeDependencyV1    = "model-dependency-v1"

	ManifestONNX        = "onnx-model-package-v1"
	ManifestTRT         = "trt-model-package-v1"
	ManifestTorch       = "torch-model-package-v1"
	ManifestHF          = "hf-model-package-v1"
	ManifestUltralytics = "ultralytics-model-package-v1"
	ManifestTorchScript = "torch-script-model-package-v1"
	ManifestOAK         = "oak-model-package-v1"
	ManifestTFJS        = "tfjs-model-package-v1"
	ManifestMediaPipe   = "mediapipe-model-package-v1"

	SpecsGPUServer = "gpu-server-specs-v1"
	SpecsJetson    = "jetson-machine-specs-v1"
)

// page is one decoded metadata page, before package parsing.
type page struct {
	modelID      string
	architecture string
	variant      *string
	taskType     *string
	dependencies []metadata.ModelDependency
	recommended  *metadata.RecommendedParameters
	nextPage     *string
	packages     []*pyjson.Object // raw entities, provider order
}

// parsePage validates the page-level schema. Any error here makes the whole
// response undecodable (ModelRetrievalError "Could not decode ...").
func parsePage(body []byte) (*page, error) {
	root, err := pyjson.Decode(body)
	if err != nil {
		return nil, err
	}
	ro, err := asObject(root, "$")
	if err != nil {
		return nil, err
	}
	mv, ok := ro.Get("modelMetadata")
	if !ok {
		return nil, ferr("modelMetadata", "field required")
	}
	m, err := asObject(mv, "modelMetadata")
	if err != nil {
		return nil, err
	}
	const p = "modelMetadata"
	pg := &page{}
	if err := literal(m, "type", TypeModelMetadataV1, p); err != nil {
		return nil, err
	}
	if pg.modelID, err = reqStr(m, "modelId", p); err != nil {
		return nil, err
	}
	if pg.architecture, err = reqStr(m, "modelArchitecture", p); err != nil {
		return nil, err
	}
	if pg.variant, err = optStr(m, "modelVariant", p); err != nil {
		return nil, err
	}
	if pg.taskType, err = optStr(m, "taskType", p); err != nil {
		return nil, err
	}
	if pg.nextPage, err = optStr(m, "nextPage", p); err != nil {
		return nil, err
	}
	if rv, ok := m.Get("recommendedParameters"); ok {
		if pg.recommended, err = recommendedParameters(rv, join(p, "recommendedParameters")); err != nil {
			return nil, err
		}
	}
	if dv, ok := m.Get("modelDependencies"); ok && dv != nil {
		dl, ok := dv.([]any)
		if !ok {
			return nil, ferr(join(p, "modelDependencies"), "expected a list, got %s", typeName(dv))
		}
		pg.dependencies = make([]metadata.ModelDependency, 0, len(dl))
		for i, e := range dl {
			dp := fmt.Sprintf("%s.modelDependencies[%d]", p, i)
			do, err := asObject(e, dp)
			if err != nil {
				return nil, err
			}
			if err := literal(do, "type", TypeDependencyV1, dp); err != nil {
				return nil, err
			}
			var d metadata.ModelDependency
			if d.Name, err = reqStr(do, "name", dp); err != nil {
				return nil, err
			}
			if d.ModelID, err = reqStr(do, "modelId", dp); err != nil {
				return nil, err
			}
			if d.ModelPackageID, err = optStr(do, "modelPackageId", dp); err != nil {
				return nil, err
			}
			pg.dependencies = append(pg.dependencies, d)
		}
	}
	pv, ok := m.Get("modelPackages")
	if !ok {
		return nil, ferr(join(p, "modelPackages"), "field required")
	}
	pl, ok := pv.([]any)
	if !ok {
		return nil, ferr(join(p, "modelPackages"), "expected a list, got %s", typeName(pv))
	}
	for i, e := range pl {
		o, err := asObject(e, fmt.Sprintf("%s.modelPackages[%d]", p, i))
		if err != nil {
			return nil, err
		}
		pg.packages = append(pg.packages, o)
	}
	return pg, nil
}

// SkipReason says why a raw package entity was not turned into a ModelPackage.
type SkipReason int

// Skip reasons. Every one of them skips only that package, never the response.
const (
	parsed SkipReason = iota
	// SkipIgnored: a manifest type the reference ignores silently (oak, tfjs, mediapipe).
	SkipIgnored
	// SkipUnsupported: an unknown entity or manifest type ("outdated" warning).
	SkipUnsupported
	// SkipInvalid: validation, consistency or version errors.
	SkipInvalid
	// SkipNotImplemented: a TRT machine type other than gpu-server / jetson.
	SkipNotImplemented
)

// String names the reason.
func (r SkipReason) String() string {
	switch r {
	case SkipIgnored:
		return "ignored"
	case SkipUnsupported:
		return "unsupported"
	case SkipInvalid:
		return "invalid"
	case SkipNotImplemented:
		return "not-implemented"
	}
	return "parsed"
}

// PackageSkipError reports a package entity that a client skips.
type PackageSkipError struct {
	Reason    SkipReason
	PackageID string // "" when the entity has no string packageId
	Err       error
}

func (e *PackageSkipError) Error() string {
	return fmt.Sprintf("model package %q skipped (%s): %v", e.PackageID, e.Reason, e.Err)
}

func (e *PackageSkipError) Unwrap() error { return e.Err }

// ParsePackage parses one raw package entity of a weights-API response
// (registry-protocol §7–§8); download URLs are rewritten for gateway when it
// is non-empty. A package the reference would skip yields a *PackageSkipError.
func ParsePackage(o *pyjson.Object, gateway string) (*metadata.ModelPackage, error) {
	pkg, kind, err := parsePackage(o, gateway)
	if kind != parsed {
		return nil, &PackageSkipError{Reason: kind, PackageID: rawPackageID(o), Err: err}
	}
	return pkg, nil
}

// entity is a validated external-model-package-v1 object.
type entity struct {
	packageID     string
	manifest      *pyjson.Object
	files         []metadata.Artifact
	modelFeatures any
	trusted       bool
	recommended   *metadata.RecommendedParameters
}

// parseEntity validates the package entity. A failure means the object is
// kept raw by the reference and then skipped.
func parseEntity(o *pyjson.Object, gateway string) (*entity, error) {
	const p = "package"
	if err := literal(o, "type", TypeModelPackageV1, p); err != nil {
		return nil, err
	}
	e := &entity{}
	var err error
	if e.packageID, err = reqStr(o, "packageId", p); err != nil {
		return nil, err
	}
	mv, ok := o.Get("packageManifest")
	if !ok {
		return nil, ferr(join(p, "packageManifest"), "field required")
	}
	if e.manifest, err = asObject(mv, join(p, "packageManifest")); err != nil {
		return nil, err
	}
	fv, ok := o.Get("packageFiles")
	if !ok {
		return nil, ferr(join(p, "packageFiles"), "field required")
	}
	fl, ok := fv.([]any)
	if !ok {
		return nil, ferr(join(p, "packageFiles"), "expected a list, got %s", typeName(fv))
	}
	e.files = make([]metadata.Artifact, 0, len(fl))
	for i, f := range fl {
		fp := fmt.Sprintf("%s.packageFiles[%d]", p, i)
		fo, err := asObject(f, fp)
		if err != nil {
			return nil, err
		}
		var a metadata.Artifact
		if a.FileHandle, err = reqStr(fo, "fileHandle", fp); err != nil {
			return nil, err
		}
		if a.DownloadURL, err = reqStr(fo, "downloadUrl", fp); err != nil {
			return nil, err
		}
		if a.MD5Hash, err = optStr(fo, "md5Hash", fp); err != nil {
			return nil, err
		}
		a.DownloadURL = GatewayRewrite(gateway, a.DownloadURL)
		e.files = append(e.files, a)
	}
	if v, ok := o.Get("modelFeatures"); ok && v != nil {
		if _, err := asObject(v, join(p, "modelFeatures")); err != nil {
			return nil, err
		}
		e.modelFeatures = v
	}
	if e.trusted, err = strictBoolDefault(o, "trustedSource", p, false); err != nil {
		return nil, err
	}
	if v, ok := o.Get("recommendedParameters"); ok {
		if e.recommended, err = recommendedParameters(v, join(p, "recommendedParameters")); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// parsePackage turns one raw entity into a ModelPackage, or says why it is skipped.
func parsePackage(o *pyjson.Object, gateway string) (*metadata.ModelPackage, SkipReason, error) {
	if t, _ := o.Get("type"); t != TypeModelPackageV1 {
		return nil, SkipUnsupported, fmt.Errorf("unknown package entity type %v", describe(t))
	}
	e, err := parseEntity(o, gateway)
	if err != nil {
		return nil, SkipInvalid, err
	}
	mt, _ := e.manifest.Get("type")
	mts, _ := mt.(string)
	pkg := &metadata.ModelPackage{
		PackageID:             e.packageID,
		Artifacts:             e.files,
		PackageSource:         metadata.SourcePlatform,
		TrustedSource:         e.trusted,
		ModelFeatures:         e.modelFeatures,
		RecommendedParameters: e.recommended,
	}
	man := e.manifest
	const p = "packageManifest"
	switch mts {
	case ManifestOAK, ManifestTFJS, ManifestMediaPipe:
		return nil, SkipIgnored, fmt.Errorf("manifest type %q is ignored", mts)
	case ManifestONNX:
		err = parseONNX(man, p, pkg)
	case ManifestTRT:
		var kind SkipReason
		kind, err = parseTRT(man, p, pkg)
		if err != nil {
			return nil, kind, err
		}
	case ManifestTorch:
		err = parseTorch(man, p, pkg)
	case ManifestHF:
		err = parseHF(man, p, pkg)
	case ManifestUltralytics:
		pkg.Backend = metadata.BackendUltralytics
		pkg.Quantization = metadata.QuantizationUnknown
	case ManifestTorchScript:
		err = parseTorchScript(man, p, pkg)
	default:
		return nil, SkipUnsupported, fmt.Errorf("unknown manifest type %v", describe(mt))
	}
	if err != nil {
		return nil, SkipInvalid, err
	}
	return pkg, parsed, nil
}

func describe(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return typeName(v)
}

func quantization(man *pyjson.Object, p string) (metadata.Quantization, error) {
	s, err := reqStr(man, "quantization", p)
	if err != nil {
		return "", err
	}
	q := metadata.Quantization(s)
	if !q.Valid() {
		return "", ferr(join(p, "quantization"), "unknown quantization %q", s)
	}
	return q, nil
}

// batch reads dynamicBatchSize / staticBatchSize and applies the reference's
// consistency rule.
func batch(man *pyjson.Object, p string) (bool, *int, error) {
	dyn, err := boolDefault(man, "dynamicBatchSize", p, false)
	if err != nil {
		return false, nil, err
	}
	static, err := optInt(man, "staticBatchSize", p)
	if err != nil {
		return false, nil, err
	}
	if !dyn && (static == nil || *static <= 0) {
		return false, nil, ferr(p, "static batch size must be a positive integer when dynamic batch size is not supported")
	}
	if dyn && static != nil {
		return false, nil, ferr(p, "static batch size must not be given when dynamic batch size is supported")
	}
	return dyn, static, nil
}

func backendLiteral(man *pyjson.Object, p, want string) error {
	return literal(man, "backendType", want, p)
}

func parseONNX(man *pyjson.Object, p string, pkg *metadata.ModelPackage) error {
	if err := backendLiteral(man, p, "onnx"); err != nil {
		return err
	}
	dyn, static, err := batch(man, p)
	if err != nil {
		return err
	}
	q, err := quantization(man, p)
	if err != nil {
		return err
	}
	opset, err := reqInt(man, "opset", p)
	if err != nil {
		return err
	}
	d := &metadata.ONNXPackageDetails{Opset: opset}
	if v, ok := man.Get("incompatibleProviders"); ok && v != nil {
		if d.IncompatibleProviders, err = strList(v, join(p, "incompatibleProviders")); err != nil {
			return err
		}
	}
	pkg.Backend = metadata.BackendONNX
	pkg.Quantization = q
	pkg.DynamicBatchSizeSupported = &dyn
	pkg.StaticBatchSize = static
	pkg.ONNXPackageDetails = d
	return nil
}

func parseTorch(man *pyjson.Object, p string, pkg *metadata.ModelPackage) error {
	if err := backendLiteral(man, p, "torch"); err != nil {
		return err
	}
	dyn, static, err := batch(man, p)
	if err != nil {
		return err
	}
	q, err := quantization(man, p)
	if err != nil {
		return err
	}
	pkg.Backend = metadata.BackendTorch
	pkg.Quantization = q
	pkg.DynamicBatchSizeSupported = &dyn
	pkg.StaticBatchSize = static
	return nil
}

func parseHF(man *pyjson.Object, p string, pkg *metadata.ModelPackage) error {
	if err := backendLiteral(man, p, "hf"); err != nil {
		return err
	}
	q, err := quantization(man, p)
	if err != nil {
		return err
	}
	pkg.Backend = metadata.BackendHuggingFace
	pkg.Quantization = q
	return nil
}

func version(o *pyjson.Object, key, p string) (string, error) {
	s, err := reqStr(o, key, p)
	if err != nil {
		return "", err
	}
	if !validVersion(s) {
		return "", ferr(join(p, key), "invalid version %q", s)
	}
	return s, nil
}

func optVersion(o *pyjson.Object, key, p string) (*string, error) {
	s, err := optStr(o, key, p)
	if err != nil || s == nil {
		return s, err
	}
	if !validVersion(*s) {
		return nil, ferr(join(p, key), "invalid version %q", *s)
	}
	return s, nil
}

func parseTorchScript(man *pyjson.Object, p string, pkg *metadata.ModelPackage) error {
	if err := backendLiteral(man, p, "torch-script"); err != nil {
		return err
	}
	dyn, static, err := batch(man, p)
	if err != nil {
		return err
	}
	q, err := quantization(man, p)
	if err != nil {
		return err
	}
	sv, ok := man.Get("supportedDeviceTypes")
	if !ok {
		return ferr(join(p, "supportedDeviceTypes"), "field required")
	}
	devs, err := strList(sv, join(p, "supportedDeviceTypes"))
	if err != nil {
		return err
	}
	tv, err := version(man, "torchVersion", p)
	if err != nil {
		return err
	}
	tvv, err := optVersion(man, "torchVisionVersion", p)
	if err != nil {
		return err
	}
	pkg.Backend = metadata.BackendTorchScript
	pkg.Quantization = q
	pkg.DynamicBatchSizeSupported = &dyn
	pkg.StaticBatchSize = static
	pkg.TorchScriptPackageDetails = &metadata.TorchScriptPackageDetails{
		SupportedDeviceTypes: devs, TorchVersion: tv, TorchVisionVersion: tvv,
	}
	return nil
}

func parseTRT(man *pyjson.Object, p string, pkg *metadata.ModelPackage) (SkipReason, error) {
	if err := backendLiteral(man, p, "trt"); err != nil {
		return SkipInvalid, err
	}
	dyn, static, err := batch(man, p)
	if err != nil {
		return SkipInvalid, err
	}
	d := &metadata.TRTPackageDetails{}
	if d.MinDynamicBatchSize, err = optInt(man, "minBatchSize", p); err != nil {
		return SkipInvalid, err
	}
	if d.OptDynamicBatchSize, err = optInt(man, "optBatchSize", p); err != nil {
		return SkipInvalid, err
	}
	if d.MaxDynamicBatchSize, err = optInt(man, "maxBatchSize", p); err != nil {
		return SkipInvalid, err
	}
	if dyn && (d.MinDynamicBatchSize == nil || d.OptDynamicBatchSize == nil || d.MaxDynamicBatchSize == nil) {
		return SkipInvalid, ferr(p, "dynamic TRT package must declare minBatchSize, optBatchSize and maxBatchSize")
	}
	q, err := quantization(man, p)
	if err != nil {
		return SkipInvalid, err
	}
	deviceType, err := reqStr(man, "cudaDeviceType", p)
	if err != nil {
		return SkipInvalid, err
	}
	cc, err := version(man, "cudaDeviceCC", p)
	if err != nil {
		return SkipInvalid, err
	}
	cuda, err := version(man, "cudaVersion", p)
	if err != nil {
		return SkipInvalid, err
	}
	trt, err := version(man, "trtVersion", p)
	if err != nil {
		return SkipInvalid, err
	}
	if d.SameCCCompatible, err = boolDefault(man, "sameCCCompatible", p, false); err != nil {
		return SkipInvalid, err
	}
	if d.TRTForwardCompatible, err = boolDefault(man, "trtForwardCompatible", p, false); err != nil {
		return SkipInvalid, err
	}
	if d.TRTLeanRuntimeExcluded, err = boolDefault(man, "trtLeanRuntimeExcluded", p, false); err != nil {
		return SkipInvalid, err
	}
	machine, err := reqStr(man, "machineType", p)
	if err != nil {
		return SkipInvalid, err
	}
	sv, ok := man.Get("machineSpecs")
	if !ok {
		return SkipInvalid, ferr(join(p, "machineSpecs"), "field required")
	}
	sp := join(p, "machineSpecs")
	specs, err := asObject(sv, sp)
	if err != nil {
		return SkipInvalid, err
	}
	specType, err := reqStr(specs, "type", sp)
	if err != nil {
		return SkipInvalid, err
	}
	if specType != SpecsGPUServer && specType != SpecsJetson {
		return SkipInvalid, ferr(join(sp, "type"), "unknown machine specs type %q", specType)
	}
	env := &metadata.EnvironmentRequirements{CUDADeviceCC: cc, CUDADeviceName: deviceType, CUDAVersion: &cuda, TRTVersion: &trt}
	switch machine {
	case string(metadata.MachineGPUServer):
		if specType != SpecsGPUServer {
			return SkipInvalid, ferr(sp, "machine specs of type %q do not match machine type %q", specType, machine)
		}
		drv, err := version(specs, "driverVersion", sp)
		if err != nil {
			return SkipInvalid, err
		}
		osv, err := reqStr(specs, "osVersion", sp)
		if err != nil {
			return SkipInvalid, err
		}
		env.Kind = metadata.MachineGPUServer
		env.DriverVersion = &drv
		env.OSVersion = &osv
	case string(metadata.MachineJetson):
		if specType != SpecsJetson {
			return SkipInvalid, ferr(sp, "machine specs of type %q do not match machine type %q", specType, machine)
		}
		l4t, err := version(specs, "l4tVersion", sp)
		if err != nil {
			return SkipInvalid, err
		}
		name, err := reqStr(specs, "deviceName", sp)
		if err != nil {
			return SkipInvalid, err
		}
		drv, err := version(specs, "driverVersion", sp)
		if err != nil {
			return SkipInvalid, err
		}
		env.Kind = metadata.MachineJetson
		env.L4TVersion = l4t
		env.JetsonProductName = &name
		env.DriverVersion = &drv
	default:
		return SkipNotImplemented, ferr(join(p, "machineType"), "machine type %q is not implemented", machine)
	}
	pkg.Backend = metadata.BackendTRT
	pkg.Quantization = q
	pkg.DynamicBatchSizeSupported = &dyn
	pkg.StaticBatchSize = static
	pkg.TRTPackageDetails = d
	pkg.EnvironmentRequirements = env
	return parsed, nil
}

// validVersion reports whether s parses as a PEP 440 version, as
// packaging.version.Version requires.
func validVersion(s string) bool {
	_, err := pep440.Parse(s)
	return err == nil
}
