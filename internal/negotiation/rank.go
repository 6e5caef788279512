package negotiation

import (
	"sort"

	"github.com/modelcache/modelcache/internal/pep440"
	"github.com/modelcache/modelcache/metadata"
)

func backendPriority(b metadata.BackendType) int {
	switch b {
	case metadata.BackendTRT:
		return 7
	case metadata.BackendONNX:
		return 6
	case metadata.BackendTorch:
		return 5
	case metadata.BackendHuggingFace:
		return 4
	case metadata.BackendTorchScript:
		return 3
	case metadata.BackendUltralytics:
		return 1
	}
	return 0
}

func quantizationPriority(q metadata.Quantization) int {
	switch q {
	case metadata.QuantizationINT8:
		return 4
	case metadata.QuantizationFP16:
		return 3
	case metadata.QuantizationFP32:
		return 2
	case metadata.QuantizationUnknown:
		return 1
	}
	return 0
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// versionRanks is keys 10/11: distinct versions (PEP 440 equality) sorted
// ascending; a package's rank is minus the index of its version; packages
// without one (no requirements, or a null/invalid version: Q5) get -(N-1).
func versionRanks(alive []int, pkgs []metadata.ModelPackage, get func(*metadata.EnvironmentRequirements) *string) map[int]int {
	var distinct []pep440.Version
	own := map[int]*pep440.Version{}
	for _, i := range alive {
		env := pkgs[i].EnvironmentRequirements
		if env == nil {
			continue
		}
		v := pep(get(env))
		if v == nil {
			continue
		}
		own[i] = v
		dup := false
		for _, d := range distinct {
			if d.Equal(*v) {
				dup = true
				break
			}
		}
		if !dup {
			distinct = append(distinct, *v)
		}
	}
	sort.SliceStable(distinct, func(a, b int) bool { return distinct[a].Less(distinct[b]) })
	out := map[int]int{}
	for _, i := range alive {
		v, ok := own[i]
		if !ok {
			out[i] = -(len(alive) - 1)
			continue
		}
		for idx, d := range distinct {
			if d.Equal(*v) {
				out[i] = -idx
				break
			}
		}
	}
	return out
}

// rank sorts the survivors by the §6 keys, descending.
func (n *negotiation) rank(alive []int) ([]int, map[int]*RankKey, error) {
	f, err := n.facts()
	if err != nil {
		return nil, nil, err
	}
	prefs, err := parseNMSPrefs(n.req.NMSFusionPreferences)
	if err != nil {
		return nil, nil, err
	}
	pkgs := n.md.Packages
	cudaRanks := versionRanks(alive, pkgs, func(e *metadata.EnvironmentRequirements) *string { return e.CUDAVersion })
	trtRanks := versionRanks(alive, pkgs, func(e *metadata.EnvironmentRequirements) *string { return e.TRTVersion })

	// Key 20 (Q4): perm = positions of the post-filter list stably sorted by
	// package id; the package at position j gets perm[j].
	perm := make([]int, len(alive))
	for j := range perm {
		perm[j] = j
	}
	sort.SliceStable(perm, func(a, b int) bool { return pkgs[alive[perm[a]]].PackageID < pkgs[alive[perm[b]]].PackageID })

	avail := map[string]bool{}
	for _, e := range f.eps {
		avail[e] = true
	}
	keys := map[int]*RankKey{}
	for j, i := range alive {
		p := &pkgs[i]
		k := &RankKey{
			Backend:             backendPriority(p.Backend),
			Quantization:        quantizationPriority(p.Quantization),
			Trusted:             b2i(p.TrustedSource),
			BatchMode:           1,
			Opset:               -1,
			TRTNotForwardCompat: 1,
			TRTNotSameCC:        1,
			CUDAVersionRank:     cudaRanks[i],
			TRTVersionRank:      trtRanks[i],
			NMSScore:            nmsScore(p, prefs),
			IDTieBreak:          perm[j],
		}
		if p.DynamicBatchSizeSupported != nil && *p.DynamicBatchSizeSupported {
			k.BatchMode = 2
		}
		if p.StaticBatchSize != nil {
			k.StaticBatch = -*p.StaticBatchSize
		}
		if d := p.ONNXPackageDetails; d != nil {
			k.Opset = d.Opset
			seen := map[string]bool{}
			for _, ep := range d.IncompatibleProviders {
				if avail[ep] && !seen[ep] {
					seen[ep] = true
					k.ONNXIncompatibleEPs--
				}
			}
		}
		env := p.EnvironmentRequirements
		if d := p.TRTPackageDetails; d != nil {
			k.TRTNotForwardCompat = b2i(!d.TRTForwardCompatible)
			k.TRTNotSameCC = b2i(!d.SameCCCompatible)
			if d.MinDynamicBatchSize != nil && d.MaxDynamicBatchSize != nil {
				k.TRTDynamicSpan = *d.MaxDynamicBatchSize - *d.MinDynamicBatchSize
			}
			k.LeanRuntime = b2i(!d.TRTLeanRuntimeExcluded)
			if env != nil {
				if env.Kind == metadata.MachineJetson && env.JetsonProductName != nil && f.jetsonType != nil &&
					*f.jetsonType == *env.JetsonProductName {
					k.JetsonProduct = 1
				}
				if rv := pep(env.DriverVersion); rv != nil && f.driver != nil && rv.Equal(*f.driver) {
					k.DriverMatch = 1
				}
			}
		}
		if p.Backend == metadata.BackendTRT && env != nil {
			sel, err := n.selectedGPUs(f)
			if err != nil {
				return nil, nil, err
			}
			for _, g := range sel {
				if f.gpus[g] == env.CUDADeviceName {
					k.CUDADeviceMatch++
				}
			}
			if env.Kind == metadata.MachineGPUServer && env.OSVersion != nil && *env.OSVersion != "" &&
				f.osVersion != nil && *f.osVersion == *env.OSVersion {
				k.OSMatch = 1
			}
			if env.Kind == metadata.MachineJetson && f.l4t != nil {
				if v, err := pep440.Parse(env.L4TVersion); err == nil && v.Equal(*f.l4t) {
					k.L4TMatch = 1
				}
			}
		}
		keys[i] = k
	}
	ranked := append([]int(nil), alive...)
	sort.SliceStable(ranked, func(a, b int) bool { return keys[ranked[a]].compare(keys[ranked[b]]) > 0 })
	return ranked, keys, nil
}
