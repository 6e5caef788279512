package metadata

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// MarshalJSON writes the entries as one JSON object in their order (null for nil).
func (cc ClassConfidences) MarshalJSON() ([]byte, error) {
	if cc == nil {
		return []byte("null"), nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range cc {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(e.Class)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(e.Confidence)
		if err != nil {
			return nil, fmt.Errorf("per_class_confidence[%q]: %w", e.Class, err)
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a JSON object (keeping key order; a repeated key keeps
// its first position and its last value, as Python does) or null.
func (cc *ClassConfidences) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*cc = nil
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("per_class_confidence: expected an object")
	}
	out := ClassConfidences{}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return err
		}
		k, _ := kt.(string)
		var v float64
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("per_class_confidence[%q]: %w", k, err)
		}
		replaced := false
		for i := range out {
			if out[i].Class == k {
				out[i].Confidence = v
				replaced = true
			}
		}
		if !replaced {
			out = append(out, ClassConfidence{Class: k, Confidence: v})
		}
	}
	if _, err := dec.Token(); err != nil {
		return err
	}
	*cc = out
	return nil
}

// MarshalJSON encodes the package with encoding/json, writing ModelFeatures
// (a pyjson value, whose objects encoding/json cannot see into) through pyjson.
func (p ModelPackage) MarshalJSON() ([]byte, error) {
	type plain ModelPackage
	feat, err := pyjson.Marshal(p.ModelFeatures)
	if err != nil {
		return nil, fmt.Errorf("model_features: %w", err)
	}
	return json.Marshal(struct {
		plain
		ModelFeatures json.RawMessage `json:"model_features"`
	}{plain(p), feat})
}
