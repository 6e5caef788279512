package download

import (
	"fmt"
	"testing"

	"github.com/modelcache/modelcache/internal/journal"
)

// spans renders parts as "[a,b)" with "*" for done parts.
func spans(parts []*part) string {
	s := ""
	for _, p := range parts {
		mark := ""
		if p.done {
			mark = "*"
		}
		s += fmt.Sprintf("[%d,%d)%s", p.start, p.end, mark)
	}
	return s
}

func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name       string
		size, step int64
		done       []journal.Range
		want       string
	}{
		{"unknown size", -1, 0, nil, "[0,-1)"},
		{"empty", 0, 8, nil, "[0,0)*"},
		{"one step", 8, 8, nil, "[0,8)"},
		{"exact steps", 24, 8, nil, "[0,8)[8,16)[16,24)"},
		{"runt tail folded", 17, 8, nil, "[0,8)[8,17)"},
		{"tail of a quarter kept", 18, 8, nil, "[0,8)[8,16)[16,18)"},
		{"step 0 means 1", 3, 0, nil, "[0,1)[1,2)[2,3)"},
		{"done ranges kept", 40, 8, []journal.Range{{First: 0, Last: 9}, {First: 20, Last: 29}},
			"[0,10)*[10,18)[18,20)[20,30)*[30,38)[38,40)"},
		{"done at the end", 16, 8, []journal.Range{{First: 8, Last: 15}}, "[0,8)[8,16)*"},
		{"all done", 16, 8, []journal.Range{{First: 0, Last: 15}}, "[0,16)*"},
	} {
		parts := partLayout(tc.size, tc.step, tc.done)
		if got := spans(parts); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		for i, p := range parts {
			if !p.done && (p.cur != p.start || p.reserved != p.start) {
				t.Errorf("%s: part %d starts written", tc.name, i)
			}
			if p.done && p.cur != p.end {
				t.Errorf("%s: done part %d not written", tc.name, i)
			}
		}
	}
}

func TestWatermarkOf(t *testing.T) {
	mk := func(spec ...int64) []*part { // triples start, end, cur
		var ps []*part
		for i := 0; i < len(spec); i += 3 {
			ps = append(ps, &part{start: spec[i], end: spec[i+1], cur: spec[i+2]})
		}
		return ps
	}
	for _, tc := range []struct {
		name     string
		parts    []*part
		size     int64
		want     int64
		complete bool
	}{
		{"nothing written", mk(0, 10, 0, 10, 20, 10), 20, 0, false},
		{"first part partly", mk(0, 10, 4, 10, 20, 15), 20, 4, false},
		{"first done, second partly", mk(0, 10, 10, 10, 20, 15), 20, 15, false},
		{"all written", mk(0, 10, 10, 10, 20, 20), 20, 20, true},
		{"gap stops it", mk(0, 10, 10, 12, 20, 20), 20, 10, false},
		{"unknown size", mk(0, -1, 7), -1, 7, false},
	} {
		w, c := watermarkOf(tc.parts, tc.size)
		if w != tc.want || c != tc.complete {
			t.Errorf("%s: %d %v, want %d %v", tc.name, w, c, tc.want, tc.complete)
		}
	}
}

func TestSteal(t *testing.T) {
	const M = 1 << 20
	type p struct {
		start, end, cur, reserved int64
		active, done, hedged      bool
	}
	mk := func(ps ...p) []*part {
		var out []*part
		for _, x := range ps {
			out = append(out, &part{start: x.start, end: x.end, cur: x.cur, reserved: max(x.reserved, x.cur), active: x.active, done: x.done, hedged: x.hedged})
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		parts []*part
		min   int64
		want  string // spans after, "" when nothing was stolen
	}{
		{"nothing in flight", mk(p{0, 64 * M, 0, 0, false, false, false}), 8 * M, ""},
		{"largest remainder, aligned middle", mk(p{0, 64 * M, 10 * M, 0, true, false, false}, p{64 * M, 80 * M, 64 * M, 0, true, false, false}), 8 * M,
			fmt.Sprintf("[0,%d)[%d,%d)[%d,%d)", 37*M, 37*M, 64*M, 64*M, 80*M)},
		{"below the minimum", mk(p{0, 20 * M, 10 * M, 0, true, false, false}), 16 * M, ""},
		{"hedged part not split", mk(p{0, 64 * M, 0, 0, true, false, true}), 8 * M, ""},
		{"done part not split", mk(p{0, 64 * M, 64 * M, 0, false, true, false}), 8 * M, ""},
		{"reserved write respected", mk(p{0, 64 * M, 0, 32 * M, true, false, false}), 8 * M,
			fmt.Sprintf("[0,%d)[%d,%d)", 48*M, 48*M, 64*M)},
		{"middle rounds up to 64 KiB", mk(p{0, 3*M + 1, 1, 0, true, false, false}), M,
			fmt.Sprintf("[0,%d)[%d,%d)", 1600<<10, 1600<<10, 3*M+1)}, // 1 + 1.5 MiB, up to 1600 KiB
	} {
		parts, np := steal(tc.parts, tc.min)
		if tc.want == "" {
			if np != nil {
				t.Errorf("%s: stole %s", tc.name, spans([]*part{np}))
			}
			continue
		}
		if np == nil {
			t.Errorf("%s: nothing stolen", tc.name)
			continue
		}
		if got := spans(parts); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
		if !np.active || np.cur != np.start || np.start%stealAlign != 0 {
			t.Errorf("%s: new part %+v", tc.name, np)
		}
		for i := 1; i < len(parts); i++ {
			if parts[i].start != parts[i-1].end {
				t.Errorf("%s: parts do not tile at %d", tc.name, i)
			}
		}
	}
}
