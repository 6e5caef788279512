package registry

import (
	"fmt"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

// cfg reads snake_case registry JSON objects, recording problems on the loader.
type cfg struct {
	o     *pyjson.Object
	where string
	l     *loader
}

func (c cfg) problem(key, format string, args ...any) {
	c.l.problem("%s: %q %s", c.where, key, fmt.Sprintf(format, args...))
}

func (c cfg) reqStr(key string) string {
	v, ok := c.o.Get(key)
	if !ok {
		c.problem(key, "is required")
		return ""
	}
	s, ok := v.(string)
	if !ok || s == "" {
		c.problem(key, "must be a non-empty string")
		return ""
	}
	return s
}

func (c cfg) optStr(key string) *string {
	v, ok := c.o.Get(key)
	if !ok || v == nil {
		return nil
	}
	s, ok := v.(string)
	if !ok {
		c.problem(key, "must be a string or null")
		return nil
	}
	return &s
}

func (c cfg) boolean(key string) bool {
	v, ok := c.o.Get(key)
	if !ok {
		return false
	}
	b, ok := v.(bool)
	if !ok {
		c.problem(key, "must be true or false")
	}
	return b
}

func (c cfg) strList(key string) []string {
	v, ok := c.o.Get(key)
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		c.problem(key, "must be a list of strings")
		return nil
	}
	out := make([]string, 0, len(l))
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			c.problem(key, "must be a list of strings")
			return nil
		}
		out = append(out, s)
	}
	return out
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case pyjson.Int:
		if n, ok := x.Int64(); ok {
			return float64(n), true
		}
	}
	return 0, false
}

// recommended reads {"confidence": number|null, "per_class_confidence": {class: number}|null} or null.
func (c cfg) recommended(key string) *metadata.RecommendedParameters {
	v, ok := c.o.Get(key)
	if !ok || v == nil {
		return nil
	}
	o, ok := v.(*pyjson.Object)
	if !ok {
		c.problem(key, "must be an object or null")
		return nil
	}
	r := &metadata.RecommendedParameters{}
	for _, k := range o.Keys() {
		x, _ := o.Get(k)
		switch k {
		case "confidence":
			if x == nil {
				continue
			}
			f, ok := number(x)
			if !ok {
				c.problem(key, "confidence must be a number")
				continue
			}
			r.Confidence = &f
		case "per_class_confidence":
			if x == nil {
				continue
			}
			po, ok := x.(*pyjson.Object)
			if !ok {
				c.problem(key, "per_class_confidence must be an object")
				continue
			}
			r.PerClassConfidence = metadata.ClassConfidences{}
			for _, cls := range po.Keys() {
				cv, _ := po.Get(cls)
				f, ok := number(cv)
				if !ok {
					c.problem(key, "per_class_confidence[%q] must be a number", cls)
					continue
				}
				r.PerClassConfidence = append(r.PerClassConfidence, metadata.ClassConfidence{Class: cls, Confidence: f})
			}
		default:
			c.problem(key, "has unknown key %q", k)
		}
	}
	return r
}

func (c cfg) dependencies(key string) []metadata.ModelDependency {
	v, ok := c.o.Get(key)
	if !ok || v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		c.problem(key, "must be a list or null")
		return nil
	}
	out := []metadata.ModelDependency{}
	for i, e := range l {
		eo, ok := e.(*pyjson.Object)
		if !ok {
			c.problem(key, "entry %d must be an object", i)
			continue
		}
		dc := cfg{o: eo, where: fmt.Sprintf("%s: %s[%d]", c.where, key, i), l: c.l}
		d := metadata.ModelDependency{Name: dc.reqStr("name"), ModelID: dc.reqStr("model_id"), ModelPackageID: dc.optStr("model_package_id")}
		dc.unknownKeys("name", "model_id", "model_package_id")
		out = append(out, d)
	}
	return out
}

// unknownKeys reports keys outside known: a typo in a registry file should
// not be silently ignored.
func (c cfg) unknownKeys(known ...string) {
next:
	for _, k := range c.o.Keys() {
		for _, kk := range known {
			if k == kk {
				continue next
			}
		}
		c.l.problem("%s: unknown key %q", c.where, k)
	}
}
