package negotiation

import (
	"fmt"
	"math"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// NMS preference keys, in the order of the reference's defaults.
const (
	nmsMaxDetections = "max_detections"
	nmsConfidence    = "confidence_threshold"
	nmsIoU           = "iou_threshold"
	nmsClassAgnostic = "class_agnostic"
)

var nmsKeys = []string{nmsMaxDetections, nmsConfidence, nmsIoU, nmsClassAgnostic}

// nmsPref is one parsed preference.
type nmsPref struct {
	key    string
	lo, hi float64 // numeric keys: lo == hi for a scalar
	scalar bool
	flag   bool // class_agnostic
}

// nmsPrefs is the parsed nms_fusion_preferences.
type nmsPrefs struct {
	enabled bool
	all     bool // true: the reference defaults, scored 1 per fused package
	prefs   []nmsPref
}

// parseNMSPrefs validates nms_fusion_preferences: nil/false, true or an object.
func parseNMSPrefs(v any) (nmsPrefs, error) {
	switch x := v.(type) {
	case nil:
		return nmsPrefs{}, nil
	case bool:
		if !x {
			return nmsPrefs{}, nil
		}
		return nmsPrefs{enabled: true, all: true, prefs: []nmsPref{
			{key: nmsMaxDetections, lo: 300, hi: 300, scalar: true},
			{key: nmsConfidence, lo: 0.25, hi: 0.25, scalar: true},
			{key: nmsIoU, lo: 0.7, hi: 0.7, scalar: true},
			{key: nmsClassAgnostic, flag: false},
		}}, nil
	case *pyjson.Object:
		out := nmsPrefs{enabled: true}
		for _, k := range x.Keys() {
			val, _ := x.Get(k)
			switch k {
			case nmsClassAgnostic:
				b, ok := val.(bool)
				if !ok {
					return nmsPrefs{}, badNMSPref(k, val)
				}
				out.prefs = append(out.prefs, nmsPref{key: k, flag: b})
			case nmsMaxDetections, nmsConfidence, nmsIoU:
				if f, ok := pyNumber(val); ok {
					out.prefs = append(out.prefs, nmsPref{key: k, lo: f, hi: f, scalar: true})
					continue
				}
				l := toList(val)
				if len(l) != 2 {
					return nmsPrefs{}, badNMSPref(k, val)
				}
				a, ok1 := pyNumber(l[0])
				b, ok2 := pyNumber(l[1])
				if !ok1 || !ok2 {
					return nmsPrefs{}, badNMSPref(k, val)
				}
				out.prefs = append(out.prefs, nmsPref{key: k, lo: math.Min(a, b), hi: math.Max(a, b)})
			}
			// other keys are ignored, as in the reference
		}
		return out, nil
	}
	return nmsPrefs{}, negotiationErrorf(fmt.Sprintf(
		"`nms_fusion_preferences` must be None, a bool or a dict, got %s", pyTypeName(v)))
}

func badNMSPref(k string, v any) error {
	return negotiationErrorf(fmt.Sprintf(
		"`nms_fusion_preferences[%q]` must be %s, got %s", k, map[bool]string{true: "a bool", false: "a number or a (min, max) pair of numbers"}[k == nmsClassAgnostic], pyRepr(v)))
}

// pyNumber reads a Python number (bool included, as Python compares it).
func pyNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	}
	if i, ok := pyInt(v); ok {
		return float64(i), true
	}
	return 0, false
}

// nmsFused returns the package's model_features["nms_fused"] when present and
// not null.
func nmsFused(p *metadata.ModelPackage) (any, bool) {
	o, ok := p.ModelFeatures.(*pyjson.Object)
	if !ok {
		return nil, false
	}
	v, ok := o.Get("nms_fused")
	if !ok || v == nil {
		return nil, false
	}
	return v, true
}

func (n *negotiation) filterNMS(alive []int) ([]int, error) {
	prefs, err := parseNMSPrefs(n.req.NMSFusionPreferences)
	if err != nil {
		return nil, err
	}
	var keep []int
	for _, i := range alive {
		p := &n.md.Packages[i]
		v, fused := nmsFused(p)
		if !fused {
			keep = append(keep, i)
			continue
		}
		if !prefs.enabled {
			n.reject(i, StageModelFeatures, CodeNMSFusionNotRequested,
				"Package specifies NMS fusion, but auto-loading used with `nms_fusion_preferences`=None rejecting such packages.")
			continue
		}
		code, reason, err := matchNMS(p, v, prefs)
		if err != nil {
			return nil, err
		}
		if code == "" {
			keep = append(keep, i)
			continue
		}
		n.reject(i, StageModelFeatures, code, reason)
	}
	return keep, nil
}

func matchNMS(p *metadata.ModelPackage, v any, prefs nmsPrefs) (Code, string, error) {
	obj, ok := v.(*pyjson.Object)
	if !ok {
		return "", "", &PackageMetadataTypeError{PackageID: p.PackageID, Detail: fmt.Sprintf(
			"model feature `nms_fused` is %s, not an object, so it cannot be matched against `nms_fusion_preferences`; "+
				"the reference crashes here with TypeError", pyTypeName(v))}
	}
	for _, k := range nmsKeys {
		if !obj.Has(k) {
			return CodeNMSFusedMalformed, fmt.Sprintf(
				"Package specifies malformed `nms_fused` property in model features - missing key: '%s'", k), nil
		}
	}
	for _, pr := range prefs.prefs {
		val, _ := obj.Get(pr.key)
		match := false
		if pr.key == nmsClassAgnostic {
			match = pyjson.Equal(val, pr.flag)
		} else {
			f, isNum := pyNumber(val)
			switch {
			case pr.scalar:
				match = isNum && f == pr.lo
			case !isNum:
				return "", "", &PackageMetadataTypeError{PackageID: p.PackageID, Detail: fmt.Sprintf(
					"model feature `nms_fused.%s` is %s, not a number, so it cannot be compared with a range; "+
						"the reference crashes here with TypeError", pr.key, pyRepr(val))}
			default:
				match = pr.lo <= f && f <= pr.hi
			}
		}
		if !match {
			return nmsCode(pr.key), fmt.Sprintf(
				"Package specifies NMS fusion with `%s` not matching the preference passed to auto-loading.", pr.key), nil
		}
	}
	return "", "", nil
}

func nmsCode(key string) Code {
	switch key {
	case nmsMaxDetections:
		return CodeNMSMaxDetectionsMismatch
	case nmsConfidence:
		return CodeNMSConfidenceMismatch
	case nmsIoU:
		return CodeNMSIoUMismatch
	}
	return CodeNMSClassAgnosticMismatch
}

// nmsScore is ranking key 14.
func nmsScore(p *metadata.ModelPackage, prefs nmsPrefs) float64 {
	if !prefs.enabled {
		return 0
	}
	v, ok := nmsFused(p)
	if !ok {
		return 0
	}
	obj, ok := v.(*pyjson.Object)
	if !ok {
		return 0
	}
	if prefs.all {
		return 1
	}
	total := 0.0
	for _, pr := range prefs.prefs {
		val, _ := obj.Get(pr.key)
		if pr.key == nmsClassAgnostic {
			if pyjson.Equal(val, pr.flag) {
				total += 1.0
			}
			continue
		}
		f, ok := pyNumber(val)
		if !ok {
			continue
		}
		total += closeness(pr.lo, pr.hi, f)
	}
	return total
}

// closeness scores how central v is in [lo, hi] (1 at the centre, 0.5 at the
// edges, 0 outside; an exact match for lo == hi).
func closeness(lo, hi, v float64) float64 {
	if lo == hi {
		if math.Abs(v-hi) < 1e-5 {
			return 1.0
		}
		return 0
	}
	if v < lo || v > hi {
		return 0
	}
	r := (v - lo) / (hi - lo + 1e-6)
	r = math.Max(0, math.Min(1, r))
	return 1 - math.Abs(0.5-r)
}
