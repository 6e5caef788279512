package pyjson_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/pyjson"
)

type pyjsonRecord struct {
	Name            string          `json:"name"`
	Value           json.RawMessage `json:"value"`
	DumpsSortKeys   string          `json:"dumps_sort_keys"`
	SHA256SortKeys  string          `json:"sha256_sort_keys"`
	Dumps           string          `json:"dumps"`
	DumpsIndent2    string          `json:"dumps_indent2_sort_keys"`
	HashDictContent *string         `json:"hash_dict_content"`
}

func TestVectorsPyJSON(t *testing.T) {
	var recs []pyjsonRecord
	if err := json.Unmarshal(compat.Section(t, "pyjson"), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("no pyjson records")
	}
	for _, r := range recs {
		v := compat.MustValue(t, r.Value)
		check := func(what string, got []byte, err error, want string) {
			t.Helper()
			if err != nil {
				t.Errorf("%s %s: %v", r.Name, what, err)
			} else if string(got) != want {
				t.Errorf("%s %s:\n got %s\nwant %s", r.Name, what, got, want)
			}
		}
		b, err := pyjson.MarshalSorted(v)
		check("sorted", b, err, r.DumpsSortKeys)
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != r.SHA256SortKeys {
			t.Errorf("%s: sha256 mismatch", r.Name)
		}
		b, err = pyjson.Marshal(v)
		check("insertion", b, err, r.Dumps)
		b, err = pyjson.MarshalIndent(v)
		check("indent", b, err, r.DumpsIndent2)
		if r.HashDictContent != nil {
			h, err := pyjson.HashDict(v)
			if err != nil || h != *r.HashDictContent {
				t.Errorf("%s: hash_dict %s, %v", r.Name, h, err)
			}
		}
		// Round trip: parsing the reference's output and re-encoding is the identity.
		parsed, err := pyjson.Decode([]byte(r.Dumps))
		if err != nil {
			t.Errorf("%s: decode: %v", r.Name, err)
			continue
		}
		b, err = pyjson.Marshal(parsed)
		check("re-encode", b, err, r.Dumps)
	}
	t.Logf("pyjson: checked %d records", len(recs))
}

func TestSpecVectors(t *testing.T) {
	cases := map[string]string{
		"{}": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
		`{"b":[1,2.5,null,true],"a":{"y":"é","x":1.0}}`: "51cae1c95ef18242aff231f7627dba66d822895a4dd736df954006b41c3d1e3d",
		`{"api_key": null}`:  "91d9e205685fee945e81d9d6fcfc785d50762ac9cbf4f00f5d5a58eb753d0d4f",
		`{"api_key": "abc"}`: "341207e8c109f75fe758161d796905f2266cfdbf70e74f1a8e3b4cf9a8478d5a",
	}
	for doc, want := range cases {
		v, err := pyjson.Decode([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if h, _ := pyjson.HashDict(v); h != want {
			t.Errorf("hash_dict(%s) = %s, want %s", doc, h, want)
		}
	}
}

func TestFloatRoundTripVector(t *testing.T) {
	const doc = "[0.0, -0.0, 1.0, 0.5, 0.1, 0.0001, 9.99e-05, 1e-05, 123.456, 1000000000000000.0, 9999999999999998.0, 1e+16, 1.5e+16, 1e+22, 2.5e-07, 5e-324, 1.7976931348623157e+308, 30000000000.0]"
	v, err := pyjson.Decode([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pyjson.Marshal(v)
	if string(b) != doc {
		t.Fatalf("got %s", b)
	}
}

func TestDecodePythonSemantics(t *testing.T) {
	v, err := pyjson.Decode([]byte(`{"a": 1, "b": 1E5, "a": 2, "c": 1e400, "d": NaN, "e": -Infinity, "f": 18446744073709551616}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pyjson.Marshal(v)
	if want := `{"a": 2, "b": 100000.0, "c": Infinity, "d": NaN, "e": -Infinity, "f": 18446744073709551616}`; string(b) != want {
		t.Fatalf("got %s", b)
	}
	bad := []string{"", " ", "\ufeff{}", "{'a': 1}", "[1,]", "01", "+1", ".5", "1.", `"a` + "\x01" + `"`, "{} x", "nan", `"\x"`, "\xff"}
	for _, s := range bad {
		if _, err := pyjson.Decode([]byte(s)); err == nil {
			t.Errorf("Decode(%q) accepted", s)
		}
	}
	if x, _ := pyjson.Decode([]byte("-0")); x.(pyjson.Int).Sign() != 0 {
		t.Error("-0 is int zero")
	}
	if x, _ := pyjson.Decode([]byte("-0.0")); !math.Signbit(x.(float64)) {
		t.Error("-0.0 keeps its sign")
	}
}

func TestEqualPythonSemantics(t *testing.T) {
	dec := func(s string) any {
		v, err := pyjson.Decode([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	eq := [][2]string{{"1", "1.0"}, {"true", "1"}, {`{"a":1,"b":[2]}`, `{"b":[2.0],"a":true}`}, {"18446744073709551616", "1.8446744073709552e19"}}
	ne := [][2]string{{"1", `"1"`}, {"NaN", "NaN"}, {"9007199254740993", "9007199254740992.0"}, {`{"a":1}`, `{"a":1,"b":2}`}, {"null", "false"}, {"[1]", "[1,1]"}}
	for _, p := range eq {
		if !pyjson.Equal(dec(p[0]), dec(p[1])) {
			t.Errorf("%s == %s should hold", p[0], p[1])
		}
	}
	for _, p := range ne {
		if pyjson.Equal(dec(p[0]), dec(p[1])) {
			t.Errorf("%s != %s should hold", p[0], p[1])
		}
	}
}

func TestRejectsPythonOnlyTypes(t *testing.T) {
	for _, v := range []any{pyjson.Set{1}, pyjson.Path("/x"), struct{}{}, "\xff"} {
		if _, err := pyjson.Marshal(v); err == nil {
			t.Errorf("Marshal(%#v) accepted", v)
		}
	}
	b, err := pyjson.Marshal(pyjson.Enum{Class: "BackendType", Value: "onnx"})
	if err != nil || string(b) != `"onnx"` {
		t.Errorf("enum: %s %v", b, err)
	}
}

func TestLaxBool(t *testing.T) {
	for _, doc := range []string{"true", "1", "1.0", `"yes"`, `"ON"`, `"t"`} {
		v, _ := pyjson.Decode([]byte(doc))
		if b, ok := pyjson.LaxBool(v); !ok || !b {
			t.Errorf("%s: %v %v", doc, b, ok)
		}
	}
	for _, doc := range []string{"false", "0", "0.0", `"no"`, `"Off"`, `"F"`} {
		v, _ := pyjson.Decode([]byte(doc))
		if b, ok := pyjson.LaxBool(v); !ok || b {
			t.Errorf("%s: %v %v", doc, b, ok)
		}
	}
	for _, doc := range []string{"2", "0.5", `"maybe"`, "null", "[]", `""`} {
		v, _ := pyjson.Decode([]byte(doc))
		if _, ok := pyjson.LaxBool(v); ok {
			t.Errorf("%s accepted", doc)
		}
	}
}
