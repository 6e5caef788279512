package pep440

import (
	"errors"
	"sort"
	"strings"
	"testing"
)

// normalizeCases: input -> PEP 440 normal form ("" = invalid).
var normalizeCases = []struct{ in, want string }{
	// negotiation.md §5
	{"535.104.05", "535.104.5"},
	{"12.6.68-1", "12.6.68.post1"},
	{"10.3.0.30-1", "10.3.0.30.post1"},
	{"1.0RC1", "1.0rc1"},
	{"1.0-dev", "1.0.dev0"},
	{"v1.0", "1.0"},
	{"1!2.0", "1!2.0"},
	{"2.4.0+cu124", "2.4.0+cu124"},
	{"12.6.0", "12.6.0"},
	{"12.6", "12.6"},
	// plain releases, leading zeros, huge numbers
	{"0", "0"},
	{"00", "0"},
	{"1.0.0.0.0", "1.0.0.0.0"},
	{"0.21.00", "0.21.0"},
	{"36.04.3", "36.4.3"},
	{"007.010", "7.10"},
	{"2024.01.05", "2024.1.5"},
	{"123456789012345678901234567890.1", "123456789012345678901234567890.1"},
	{"0123456789012345678901234567890", "123456789012345678901234567890"},
	// case
	{"1.0A1", "1.0a1"},
	{"1.0B2", "1.0b2"},
	{"1.0.POST1", "1.0.post1"},
	{"1.0.DEV3", "1.0.dev3"},
	{"V1.0", "1.0"},
	{"1.0+UBUNTU", "1.0+ubuntu"},
	// pre-release spellings and separators
	{"1.0alpha1", "1.0a1"},
	{"1.0beta2", "1.0b2"},
	{"1.0c3", "1.0rc3"},
	{"1.0pre4", "1.0rc4"},
	{"1.0preview5", "1.0rc5"},
	{"1.0rc6", "1.0rc6"},
	{"1.0-a1", "1.0a1"},
	{"1.0_a1", "1.0a1"},
	{"1.0.a1", "1.0a1"},
	{"1.0a.1", "1.0a1"},
	{"1.0a-1", "1.0a1"},
	{"1.0a_1", "1.0a1"},
	{"1.0-alpha-1", "1.0a1"},
	{"1.0a", "1.0a0"},
	{"1.0-beta", "1.0b0"},
	{"1.0a01", "1.0a1"},
	{"1.0a-", "1.0a0"}, // the separator after the label is optional even without a number
	{"1.0rc", "1.0rc0"},
	// post-release spellings, separators, implicit number and the "-N" form
	{"1.0post1", "1.0.post1"},
	{"1.0-post1", "1.0.post1"},
	{"1.0_post1", "1.0.post1"},
	{"1.0.post-1", "1.0.post1"},
	{"1.0.post_1", "1.0.post1"},
	{"1.0.post.1", "1.0.post1"},
	{"1.0.post", "1.0.post0"},
	{"1.0rev2", "1.0.post2"},
	{"1.0-r3", "1.0.post3"},
	{"1.0r", "1.0.post0"},
	{"1.0-1", "1.0.post1"},
	{"1.0-01", "1.0.post1"},
	{"1.0a1-1", "1.0a1.post1"},
	{"1.0a--1", "1.0a0.post1"},
	// development releases
	{"1.0dev", "1.0.dev0"},
	{"1.0.dev2", "1.0.dev2"},
	{"1.0-dev2", "1.0.dev2"},
	{"1.0_dev2", "1.0.dev2"},
	{"1.0dev-2", "1.0.dev2"},
	{"1.0.dev.2", "1.0.dev2"},
	{"1.0a1.dev2", "1.0a1.dev2"},
	{"1.0.post1.dev2", "1.0.post1.dev2"},
	{"1.0rc1.post2.dev3", "1.0rc1.post2.dev3"},
	{"1.0-1-dev", "1.0.post1.dev0"},
	// epochs
	{"0!1.0", "1.0"},
	{"00!1.0", "1.0"},
	{"01!1.0", "1!1.0"},
	{"v2!3.0a1", "2!3.0a1"},
	// local versions
	{"1.0+abc.5", "1.0+abc.5"},
	{"1.0+abc-5", "1.0+abc.5"},
	{"1.0+abc_5", "1.0+abc.5"},
	{"1.0+ubuntu-1", "1.0+ubuntu.1"},
	{"1.0+007", "1.0+7"},
	{"1.0+0abc", "1.0+0abc"},
	{"1.0.post1+local.7", "1.0.post1+local.7"},
	{"1.0-1+x", "1.0.post1+x"},
	// whitespace and the leading v
	{" 1.0 ", "1.0"},
	{"\t1.0\n", "1.0"},
	{"\v1.0\f", "1.0"},
	{"\u00a01.0\u2003", "1.0"},
	{"\x1c1.0\x1f", "1.0"},
	{"v 1.0", ""},
	{"vv1.0", ""},
	// invalid
	{"", ""},
	{"   ", ""},
	{"v", ""},
	{"1.", ""},
	{".1", ""},
	{"1..0", ""},
	{"1.0-", ""},
	{"1.0+", ""},
	{"1.0+abc..1", ""},
	{"1.0+abc+1", ""},
	{"1.0+ab c", ""},
	{"1.0 1", ""},
	{"1.0gamma", ""},
	{"1.0.post1.post2", ""},
	{"1.0.dev1.a1", ""},
	{"1.0.dev1.post1", ""},
	{"1!", ""},
	{"!1.0", ""},
	{"1.0!2", ""},
	{"a1.0", ""},
	{"1.0--1", ""},
	{"1.0-a-", "1.0a0"},
	{"ubuntu-22.04", ""},
	{"nvidia-l4", ""},
	{"1,0", ""},
	{"1.0\x00", ""},
	{"١.٠", ""}, // Arabic-Indic digits are not [0-9]
	{"1.0+é", ""},
}

func TestNormalize(t *testing.T) {
	for _, c := range normalizeCases {
		v, err := Parse(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("Parse(%q) = %q, want invalid", c.in, v)
				continue
			}
			var ie *InvalidVersionError
			if !errors.Is(err, ErrInvalidVersion) || !errors.As(err, &ie) || ie.Input != c.in {
				t.Errorf("Parse(%q) error %v is not an InvalidVersionError for the input", c.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := v.String(); got != c.want {
			t.Errorf("Parse(%q).String() = %q, want %q", c.in, got, c.want)
		}
		// The normal form is a fixed point.
		if again := MustParse(v.String()).String(); again != c.want {
			t.Errorf("normal form of %q not stable: %q", c.want, again)
		}
		if n, err := Normalize(c.in); err != nil || n != c.want {
			t.Errorf("Normalize(%q) = %q, %v", c.in, n, err)
		}
	}
}

// Ascending order; entries on one line compare equal.
var ordered = [][]string{
	{"0.dev0"},
	{"0.0", "0", "0.0.0"},
	{"0.1"},
	{"1.0.dev0", "1.0.0.dev0", "1-dev"},
	{"1.0.dev1"},
	{"1.0a1.dev0"},
	{"1.0a1", "1.0alpha1", "1.0.0a1"},
	{"1.0a1.post1.dev0"},
	{"1.0a1.post1"},
	{"1.0a2"},
	{"1.0b1"},
	{"1.0rc1.dev0"},
	{"1.0rc1", "1.0c1", "1.0pre1", "1.0preview1"},
	{"1.0", "1", "1.0.0", "v1.0", "0!1.0"},
	{"1.0+abc"},
	{"1.0+abc.def"},
	{"1.0+abc.1"},
	{"1.0+abd"},
	{"1.0+1", "1.0+01", "1.0.0+1"},
	{"1.0+1.abc"},
	{"1.0+2"},
	{"1.0+10"},
	{"1.0.post1.dev0"},
	{"1.0.post1", "1.0-1", "1.0rev1", "1.0r1"},
	{"1.0.post1+local"},
	{"1.0.post2"},
	{"1.0.1.dev0"},
	{"1.0.1"},
	{"1.1"},
	{"1.10"},
	{"2.0"},
	{"10.3.0.11"},
	{"10.3.0.11-1"},
	{"12.6", "12.6.0"},
	{"12.6.0.1"},
	{"535.104.5", "535.104.05"},
	{"535.104.12"},
	{"99999999999999999999999.0"},
	{"1!0.1"},
	{"1!1.0"},
	{"2!0.0.dev0"},
}

func TestOrdering(t *testing.T) {
	var all []Version
	var rank []int
	for r, group := range ordered {
		for _, s := range group {
			all = append(all, MustParse(s))
			rank = append(rank, r)
		}
	}
	for i := range all {
		for j := range all {
			want := sign(rank[i] - rank[j])
			if got := all[i].Compare(all[j]); got != want {
				t.Errorf("Compare(%q, %q) = %d, want %d", all[i], all[j], got, want)
			}
			if got := all[i].Equal(all[j]); got != (want == 0) {
				t.Errorf("Equal(%q, %q) = %v", all[i], all[j], got)
			}
			if got := all[i].Key() == all[j].Key(); got != (want == 0) {
				t.Errorf("Key(%q)=%q vs Key(%q)=%q", all[i], all[i].Key(), all[j], all[j].Key())
			}
		}
	}
	// Sorting a reversed list restores the order.
	rev := append([]Version(nil), all...)
	sort.SliceStable(rev, func(a, b int) bool { return rev[b].Less(rev[a]) })
	sort.SliceStable(rev, func(a, b int) bool { return rev[a].Less(rev[b]) })
	for i := 1; i < len(rev); i++ {
		if rev[i].Less(rev[i-1]) {
			t.Fatalf("sort order broken at %q < %q", rev[i], rev[i-1])
		}
	}
}

func TestSpecExamples(t *testing.T) {
	chain := []string{"1.0.dev0", "1.0a1", "1.0rc1", "1.0", "1.0+local", "1.0.post1.dev0", "1.0.post1"}
	for i := 1; i < len(chain); i++ {
		if !MustParse(chain[i-1]).Less(MustParse(chain[i])) {
			t.Errorf("%s < %s does not hold", chain[i-1], chain[i])
		}
	}
	lt := [][2]string{{"10.3.0", "10.3.0.1"}, {"10.3.0.11", "10.3.0.11-1"}}
	for _, p := range lt {
		if !MustParse(p[0]).Less(MustParse(p[1])) {
			t.Errorf("%s < %s does not hold", p[0], p[1])
		}
	}
	if !MustParse("12.6").Equal(MustParse("12.6.0")) {
		t.Error("12.6 != 12.6.0")
	}
	if MustParse("12.6.0").String() != "12.6.0" {
		t.Error("trailing zero dropped from the string")
	}
}

func TestMajorMinor(t *testing.T) {
	for in, want := range map[string]string{
		"36.4.3":        "36.4",
		"36":            "36.0",
		"1.17.3rc1+cpu": "1.17",
		"1!2.3.4":       "1!2.3",
		"05.06.07":      "5.6",
	} {
		if got := MustParse(in).MajorMinor().String(); got != want {
			t.Errorf("MajorMinor(%q) = %q, want %q", in, got, want)
		}
	}
	if !MustParse("36.4.3").MajorMinor().Equal(MustParse("36.4")) {
		t.Error("36.4.3 major.minor != 36.4")
	}
	if MustParse("36.4.3").MajorMinor().Equal(MustParse("36.5")) {
		t.Error("36.4.3 major.minor == 36.5")
	}
}

func TestAccessors(t *testing.T) {
	v := MustParse("V1.02.0rc1.post2.dev3+Ubuntu-04")
	if got := v.String(); got != "1.2.0rc1.post2.dev3+ubuntu.4" {
		t.Fatalf("String = %q", got)
	}
	if got := v.Public().String(); got != "1.2.0rc1.post2.dev3" {
		t.Errorf("Public = %q", got)
	}
	if v.Local() != "ubuntu.4" {
		t.Errorf("Local = %q", v.Local())
	}
	if strings.Join(v.Release(), ".") != "1.2.0" {
		t.Errorf("Release = %v", v.Release())
	}
	if !v.IsPrerelease() || MustParse("1.0.post1").IsPrerelease() || !MustParse("1.0.dev1").IsPrerelease() {
		t.Error("IsPrerelease wrong")
	}
	var zero Version
	if !zero.IsZero() || zero.String() != "" || MustParse("0").IsZero() {
		t.Error("zero value handling")
	}
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse did not panic")
		}
	}()
	MustParse("not a version")
}
