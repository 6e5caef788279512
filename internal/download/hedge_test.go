package download

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// hedgeCase serves a file whose last part is answered slowly the first
// time it is asked for; the second request for that part behaves as
// second says.
func hedgeCase(t *testing.T, second fault) (*faultServer, *testEnv, Result, int64) {
	t.Helper()
	const size = 1<<20 + 100 // 16 parts of 64 KiB, the last 64 KiB + 100
	const lastPart = 64<<10 + 100
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, func(tu *Tuning) {
		tu.StreamsPerFile = 4
		tu.HedgeAfter = 100 * time.Millisecond
		tu.StallTimeout = 5 * time.Second
	})
	data := randomBytes(90, size)
	u := srv.add("/m/weights.onnx", data)
	var lastAsked atomic.Int64
	srv.setRule(func(r faultReq) fault {
		if !r.Ranged || r.Last != size-1 {
			return fault{}
		}
		switch lastAsked.Add(1) {
		case 1: // ~4 KiB per 50 ms: ~1.4 s for the part
			return fault{Chunk: 4 << 10, Delay: 50 * time.Millisecond, Tag: "first"}
		case 2:
			second.Tag = "second"
			return second
		}
		return fault{}
	})
	r, err := ensure(t, e, u, data)
	if err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, env.logs.String())
	}
	srv.quiesce(t)
	assertStore(t, env, data, true, false)
	if !strings.Contains(env.logs.String(), "racing it with a second request") {
		t.Errorf("no hedge logged:\n%s", env.logs.String())
	}
	if lastAsked.Load() < 2 {
		t.Errorf("the last part was requested %d times; want a hedge", lastAsked.Load())
	}
	return srv, env, r, lastPart
}

// TestHedgeWinsOverSlowLastPart: a slow connection on the last part no
// longer sets the file's finish time: a second request finishes the part
// and the slow response is cancelled before it has sent the part.
func TestHedgeWinsOverSlowLastPart(t *testing.T) {
	srv, _, _, lastPart := hedgeCase(t, fault{})
	if n := srv.TaggedBytes("first"); n >= lastPart {
		t.Errorf("the slow response sent all %d bytes of the part: the hedge did not win", n)
	}
	if n := srv.TaggedBytes("second"); n == 0 {
		t.Errorf("the hedge sent nothing")
	}
}

// TestHedgeLosesToOriginal: when the second request is worse (it stalls),
// the original stream finishes the part and the hedge is cancelled; the
// blob is whole either way.
func TestHedgeLosesToOriginal(t *testing.T) {
	srv, _, _, lastPart := hedgeCase(t, fault{Mode: faultStall, At: 1 << 10})
	if n := srv.TaggedBytes("first"); n < lastPart-(1<<10) {
		t.Errorf("the original sent %d of %d bytes; it should have finished the part", n, lastPart)
	}
	if n := srv.TaggedBytes("second"); n != 1<<10 {
		t.Errorf("the stalled hedge sent %d bytes", n)
	}
}
