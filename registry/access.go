package registry

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/modelcache/modelcache/internal/pyjson"
)

// Key statuses of access.json, mapped to the API's answers.
const (
	KeyActive          = "active"           // normal access
	KeyPaymentRequired = "payment_required" // 402
	KeyUsagePaused     = "usage_paused"     // 423
)

// Access is the parsed access.json: API keys with model allow-lists.
type Access struct {
	AllowAnonymous  bool
	anonymousModels []*regexp.Regexp
	Keys            []*Key
}

// Key is one API key entry. Only its SHA-256 is kept in memory.
type Key struct {
	Name   string
	sha    [32]byte
	Status string
	Models []string
	models []*regexp.Regexp
}

// Decision is the outcome of an access check.
type Decision struct {
	Status  int    // 0 when allowed, else 401/402/403/404/423
	KeyName string // "" for anonymous
}

func globRe(p string) (*regexp.Regexp, error) {
	if p == "" {
		return nil, fmt.Errorf("empty model pattern")
	}
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = regexp.QuoteMeta(parts[i])
	}
	return regexp.Compile("^" + strings.Join(parts, ".*") + "$")
}

func parseAccess(b []byte) (*Access, error) {
	o, err := pyjson.DecodeObject(b)
	if err != nil {
		return nil, err
	}
	a := &Access{}
	for _, k := range o.Keys() {
		v, _ := o.Get(k)
		switch k {
		case "allow_anonymous":
			bv, ok := v.(bool)
			if !ok {
				return nil, fmt.Errorf("\"allow_anonymous\" must be true or false")
			}
			a.AllowAnonymous = bv
		case "anonymous_models":
			pats, err := patterns(v, "anonymous_models")
			if err != nil {
				return nil, err
			}
			a.anonymousModels = pats
		case "keys":
			l, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("\"keys\" must be a list")
			}
			for i, e := range l {
				key, err := parseKey(e)
				if err != nil {
					return nil, fmt.Errorf("keys[%d]: %w", i, err)
				}
				for _, prev := range a.Keys {
					if prev.sha == key.sha {
						return nil, fmt.Errorf("keys[%d]: same key as %q", i, prev.Name)
					}
				}
				a.Keys = append(a.Keys, key)
			}
		default:
			return nil, fmt.Errorf("unknown key %q", k)
		}
	}
	if a.AllowAnonymous && a.anonymousModels == nil {
		re, _ := globRe("*")
		a.anonymousModels = []*regexp.Regexp{re}
	}
	return a, nil
}

func patterns(v any, field string) ([]*regexp.Regexp, error) {
	l, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%q must be a list of model id patterns", field)
	}
	out := []*regexp.Regexp{}
	for _, e := range l {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("%q must be a list of model id patterns", field)
		}
		re, err := globRe(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", field, err)
		}
		out = append(out, re)
	}
	return out, nil
}

func parseKey(v any) (*Key, error) {
	o, ok := v.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("must be an object")
	}
	k := &Key{Status: KeyActive}
	var haveKey bool
	for _, name := range o.Keys() {
		x, _ := o.Get(name)
		switch name {
		case "name":
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("\"name\" must be a string")
			}
			k.Name = s
		case "key":
			s, ok := x.(string)
			if !ok || s == "" || s == "local" {
				return nil, fmt.Errorf("\"key\" must be a non-empty string other than \"local\"")
			}
			if haveKey {
				return nil, fmt.Errorf("give either \"key\" or \"key_sha256\"")
			}
			k.sha = sha256.Sum256([]byte(s))
			haveKey = true
		case "key_sha256":
			s, ok := x.(string)
			raw, err := hex.DecodeString(s)
			if !ok || err != nil || len(raw) != 32 || strings.ToLower(s) != s {
				return nil, fmt.Errorf("\"key_sha256\" must be 64 lowercase hex digits")
			}
			if haveKey {
				return nil, fmt.Errorf("give either \"key\" or \"key_sha256\"")
			}
			copy(k.sha[:], raw)
			haveKey = true
		case "models":
			pats, err := patterns(x, "models")
			if err != nil {
				return nil, err
			}
			k.models = pats
			for _, e := range x.([]any) {
				k.Models = append(k.Models, e.(string))
			}
		case "status":
			s, _ := x.(string)
			switch s {
			case KeyActive, KeyPaymentRequired, KeyUsagePaused:
				k.Status = s
			default:
				return nil, fmt.Errorf("\"status\" must be %q, %q or %q", KeyActive, KeyPaymentRequired, KeyUsagePaused)
			}
		default:
			return nil, fmt.Errorf("unknown key %q", name)
		}
	}
	if !haveKey {
		return nil, fmt.Errorf("\"key\" or \"key_sha256\" is required")
	}
	if k.Name == "" {
		k.Name = hex.EncodeToString(k.sha[:4])
	}
	return k, nil
}

func anyMatch(pats []*regexp.Regexp, ids ...string) bool {
	for _, re := range pats {
		for _, id := range ids {
			if id != "" && re.MatchString(id) {
				return true
			}
		}
	}
	return false
}

// Check decides a metadata request for requested id (canonical "" when the
// model is unknown) given the Authorization header value.
func (a *Access) Check(authorization, requested, canonical string) Decision {
	if a == nil {
		if canonical == "" {
			return Decision{Status: 404}
		}
		return Decision{}
	}
	var pats []*regexp.Regexp
	var name string
	if authorization == "" {
		if !a.AllowAnonymous {
			return Decision{Status: 401}
		}
		pats = a.anonymousModels
	} else {
		tok, ok := strings.CutPrefix(authorization, "Bearer ")
		if !ok || tok == "" {
			return Decision{Status: 401}
		}
		sum := sha256.Sum256([]byte(tok))
		var key *Key
		for _, k := range a.Keys {
			if subtle.ConstantTimeCompare(sum[:], k.sha[:]) == 1 {
				key = k
			}
		}
		if key == nil {
			return Decision{Status: 401}
		}
		name = key.Name
		switch key.Status {
		case KeyPaymentRequired:
			return Decision{Status: 402, KeyName: name}
		case KeyUsagePaused:
			return Decision{Status: 423, KeyName: name}
		}
		pats = key.models
	}
	if !anyMatch(pats, requested, canonical) {
		if authorization == "" {
			// Anonymous access to a non-public model: a key is needed.
			return Decision{Status: 401}
		}
		return Decision{Status: 403, KeyName: name}
	}
	if canonical == "" {
		return Decision{Status: 404, KeyName: name}
	}
	return Decision{KeyName: name}
}
