package negotiation

import (
	"fmt"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

const (
	msgNoPackagesAnnounced = "Could not find any model package announced by weights provider. If you see this error using " +
		"Roboflow platform your model may not be ready - if the problem persists, contact Roboflow support."
	msgSummaryHead = "Auto-negotiation protocol could not select model packages. This situation may be caused by several " +
		"issues, with the most common being missing dependencies or too strict requirements stated as parameters of " +
		"loading function. Below you can find reasons why specific model packages were rejected:\n"
)

// Negotiate chooses, from the packages md announces, a ranked non-empty list
// of packages that can run on rt (negotiation.md §3), following the
// reference inference-models 0.36.0 except where §9 decides otherwise.
//
// It is a pure function. The report is returned whenever the packages were
// examined, also together with a *NoModelPackagesAvailableError raised after
// the filters (then it lists every rejection); it is nil for errors raised
// before any filter. Errors belong to the ModelPackageNegotiationError family
// (errors.Is(err, ErrNegotiation); ClassName gives the reference class), except
// *PackageMetadataTypeError, which replaces a reference crash.
func Negotiate(md *metadata.ModelMetadata, req Request, rt Runtime) (*Report, error) {
	if md == nil {
		md = &metadata.ModelMetadata{}
	}
	n := &negotiation{md: md, req: req, rt: rt, reg: newRegistry()}
	return n.run()
}

type negotiation struct {
	md  *metadata.ModelMetadata
	req Request
	rt  Runtime
	reg registry
	dev *Device

	rep *Report

	xrayDone bool
	xray     *facts
	xrayErr  error

	epsDone     bool
	eps         []string
	epsExplicit bool
}

// facts consults the x-ray (lazily, once).
func (n *negotiation) facts() (*facts, error) {
	if !n.xrayDone {
		n.xray, n.xrayErr = n.rt.parse()
		n.xrayDone = true
	}
	return n.xray, n.xrayErr
}

func (n *negotiation) run() (*Report, error) {
	if n.req.Device != "" {
		d, err := ParseDevice(n.req.Device)
		if err != nil {
			return nil, err
		}
		n.dev = &d
	}
	pkgs := n.md.Packages
	n.rep = &Report{ModelArchitecture: n.md.ModelArchitecture, TaskType: n.md.TaskType, Selected: []string{}}
	for i := range pkgs {
		p := &pkgs[i]
		n.rep.Packages = append(n.rep.Packages, Verdict{Index: i, PackageID: p.PackageID, Backend: p.Backend,
			Quantization: p.Quantization, Batch: describeBatch(p)})
	}
	if len(pkgs) == 0 {
		return n.rep, &NoModelPackagesAvailableError{Message: msgNoPackagesAnnounced}
	}
	if n.req.ModelPackageID != nil {
		return n.selectByID(*n.req.ModelPackageID)
	}

	alive := make([]int, len(pkgs))
	for i := range alive {
		alive[i] = i
	}
	var err error
	steps := []func([]int) ([]int, error){
		n.filterImplementation, n.filterTrust, n.filterBackend, n.filterBatch,
		n.filterQuantization, n.filterRuntime, n.filterNMS,
	}
	for _, step := range steps {
		if alive, err = step(alive); err != nil {
			return n.rep, err
		}
	}
	if len(alive) == 0 {
		return n.rep, &NoModelPackagesAvailableError{
			Message:    msgSummaryHead + Summary(n.rep.Rejections) + "\n",
			Rejections: append([]Rejection(nil), n.rep.Rejections...),
		}
	}
	ranked, keys, err := n.rank(alive)
	if err != nil {
		return n.rep, err
	}
	for pos, i := range ranked {
		v := &n.rep.Packages[i]
		v.Accepted = true
		v.Rank = pos + 1
		v.Key = keys[i]
		n.rep.Selected = append(n.rep.Selected, pkgs[i].PackageID)
	}
	return n.rep, nil
}

func (n *negotiation) reject(i int, stage Stage, code Code, reason string) {
	r := Rejection{Index: i, PackageID: n.md.Packages[i].PackageID, Stage: stage, Code: code, Reason: reason}
	n.rep.Rejections = append(n.rep.Rejections, r)
	v := &n.rep.Packages[i]
	v.Stage, v.Code, v.Reason = stage, code, reason
}

func (n *negotiation) note(s string) {
	for _, x := range n.rep.Notes {
		if x == s {
			return
		}
	}
	n.rep.Notes = append(n.rep.Notes, s)
}

// selectByID is §4.1: no filter but trust, no environment check.
func (n *negotiation) selectByID(id string) (*Report, error) {
	n.rep.ByID = true
	var found []int
	for i := range n.md.Packages {
		if n.md.Packages[i].PackageID == id {
			found = append(found, i)
		}
	}
	switch {
	case len(found) == 0:
		return n.rep, &NoModelPackagesAvailableError{Message: fmt.Sprintf(
			"Requested model package ID: %s cannot be resolved among the model packages announced by weights provider. "+
				"This may indicate either typo on the identifier or a change in set of models packages being announced by provider.", id)}
	case len(found) > 1:
		return n.rep, &AmbiguousModelPackageResolutionError{PackageID: id, Count: len(found), Message: fmt.Sprintf(
			"Requested model package ID: %s resolved to %d different packages announced by weights provider. "+
				"That is most likely weights provider error, as it is supposed to provide unique identifiers for each model package.",
			id, len(found))}
	}
	i := found[0]
	if !n.md.Packages[i].TrustedSource && !n.req.AllowUntrustedPackages {
		return n.rep, &NoModelPackagesAvailableError{Message: fmt.Sprintf(
			"Model package `%s` comes from an untrusted source and cannot be loaded while `allow_untrusted_packages=False`.", id)}
	}
	v := &n.rep.Packages[i]
	v.Accepted, v.Rank = true, 1
	n.rep.Selected = []string{id}
	return n.rep, nil
}

// featureNames returns the keys of a package's model_features.
func featureNames(p *metadata.ModelPackage) []string {
	o, ok := p.ModelFeatures.(*pyjson.Object)
	if !ok || o == nil {
		return nil
	}
	return o.Keys()
}

func (n *negotiation) filterImplementation(alive []int) ([]int, error) {
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		feats := featureNames(p)
		if e, ok := n.reg.lookup(n.md.ModelArchitecture, n.md.TaskType, p.Backend); ok && e.accepts(feats) {
			keep = append(keep, i)
			continue
		}
		task := "None"
		if n.md.TaskType != nil {
			task = *n.md.TaskType
		}
		withFeatures := ""
		if len(feats) > 0 {
			withFeatures = " (and requested model features " + pyRepr(p.ModelFeatures) + ")"
		}
		n.reject(i, StageImplementation, CodeImplementationMissing, fmt.Sprintf(
			"`inference-models` does not provide implementation for the model %s (%s) with backend %s%s. "+
				"If new versions of package available, consider the upgrade - we may already have this package supported.",
			n.md.ModelArchitecture, task, p.Backend, withFeatures))
	}
	return keep, nil
}

func (n *negotiation) filterTrust(alive []int) ([]int, error) {
	if n.req.AllowUntrustedPackages {
		return alive, nil
	}
	var keep []int
	for _, i := range alive {
		if n.md.Packages[i].TrustedSource {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageTrust, CodeUntrusted,
			"Package is marked as `untrusted` and auto-loader was used with `allow_untrusted_packages=False`")
	}
	return keep, nil
}

func (n *negotiation) filterBackend(alive []int) ([]int, error) {
	if n.req.Backends == nil {
		return alive, nil
	}
	set, err := parseBackends(n.req.Backends)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range backendDeclarationOrder() {
		if containsBackend(set, b) {
			names = append(names, string(b))
		}
	}
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		if containsBackend(set, p.Backend) {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageBackend, CodeBackendNotRequested, fmt.Sprintf(
			"Package backend %s does not match requested backends: %s", p.Backend, pyListRepr(names)))
	}
	return keep, nil
}

func (n *negotiation) filterBatch(alive []int) ([]int, error) {
	if n.req.BatchSize == nil {
		return alive, nil
	}
	lo, hi, err := n.req.BatchSize.Parse()
	if err != nil {
		return nil, err
	}
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		ok := false
		if p.DynamicBatchSizeSupported != nil && *p.DynamicBatchSizeSupported {
			if bmin, bmax, specified := p.DynamicBatchBoundaries(); specified {
				ok = int64(bmin) <= lo && lo <= hi && hi <= int64(bmax)
			} else {
				ok = true
			}
		} else {
			if p.StaticBatchSize == nil {
				// The reference compares the request with None and crashes (Q2).
				return nil, &PackageMetadataTypeError{PackageID: p.PackageID, Detail: fmt.Sprintf(
					"package declares neither dynamic nor static batch size (backend %s), so it cannot be matched "+
						"against requested batch size <%d, %d>; the reference crashes here with TypeError "+
						"('<=' not supported between instances of 'int' and 'NoneType') - request it without a batch size "+
						"or by package id", p.Backend, lo, hi)}
			}
			s := int64(*p.StaticBatchSize)
			ok = lo <= s && s <= hi
		}
		if ok {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageBatchSize, CodeBatchSizeMismatch, fmt.Sprintf(
			"Package batch size does not match requested batch size <%d, %d>", lo, hi))
	}
	return keep, nil
}

func (n *negotiation) filterQuantization(alive []int) ([]int, error) {
	var set []metadata.Quantization
	byDefault := n.req.Quantization == nil
	if byDefault {
		var gpu bool
		if n.dev != nil {
			gpu = n.dev.Type != "cpu"
		} else {
			f, err := n.facts()
			if err != nil {
				return nil, err
			}
			gpu = len(f.gpus) > 0
		}
		set = []metadata.Quantization{metadata.QuantizationUnknown, metadata.QuantizationFP32}
		switch {
		case gpu:
			set = append(set, metadata.QuantizationFP16)
		case n.dev != nil: // cpu
			set = append(set, metadata.QuantizationBF16)
		default: // device=None without GPUs
			set = append(set, metadata.QuantizationFP16, metadata.QuantizationBF16)
		}
	} else {
		var err error
		if set, err = parseQuantizations(n.req.Quantization); err != nil {
			return nil, err
		}
		if len(set) == 0 {
			return alive, nil // [] disables the filter
		}
	}
	n.rep.Quantizations, n.rep.QuantizationByDefault = set, byDefault
	var names []string
	for _, q := range quantizationDeclarationOrder() {
		if containsQuant(set, q) {
			names = append(names, string(q))
		}
	}
	who := "caller"
	if byDefault {
		who = "default"
	}
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		if p.Quantization != "" && containsQuant(set, p.Quantization) {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageQuantization, CodeQuantizationMismatch, fmt.Sprintf(
			"Package does not match requested quantization %s (which was selected by %s).", pyListRepr(names), who))
	}
	return keep, nil
}

// pep returns the parsed version of s (nil for nil or an invalid string).
func pep(s *string) *pep440.Version {
	if s == nil {
		return nil
	}
	v, err := pep440.Parse(*s)
	if err != nil {
		return nil
	}
	return &v
}
