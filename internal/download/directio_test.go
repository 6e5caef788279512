//go:build linux

package download

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func TestSplitDirect(t *testing.T) {
	cases := []struct{ pos, n, head, mid, tail int64 }{
		{0, 8192, 0, 8192, 0},
		{0, 8191, 0, 4096, 4095},
		{0, 100, 0, 0, 100},
		{1, 100, 100, 0, 0},
		{4095, 1, 1, 0, 0},
		{4095, 4098, 1, 4096, 1},
		{100, 3996, 3996, 0, 0},
		{100, 3997, 3996, 0, 1},
		{100, 20000, 3996, 12288, 3716},
		{8192, 0, 0, 0, 0},
	}
	for _, c := range cases {
		h, m, tl := splitDirect(c.pos, c.n)
		if h != c.head || m != c.mid || tl != c.tail {
			t.Errorf("splitDirect(%d, %d) = %d, %d, %d; want %d, %d, %d", c.pos, c.n, h, m, tl, c.head, c.mid, c.tail)
		}
		if h+m+tl != c.n || (m > 0 && ((c.pos+h)%dioAlign != 0 || m%dioAlign != 0)) {
			t.Errorf("splitDirect(%d, %d): pieces do not tile aligned blocks", c.pos, c.n)
		}
	}
	for range 100 {
		if b := alignedBuf(12345); !addrAligned(b) || len(b) != 12345 {
			t.Fatal("alignedBuf not aligned")
		}
	}
}

// TestDirectIOOddPiecesAndFaults: bodies arriving in pieces that never
// line up with blocks, and connections dying at unaligned offsets, end in
// a verified blob, in direct mode (with carried tails) and through the
// page cache alike.
func TestDirectIOOddPiecesAndFaults(t *testing.T) {
	const size = 1<<20 + 777
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			t.Parallel()
			srv := newFaultServer(t)
			srv.throttle(4097, 0)
			env := newEnv(t, "")
			e := env.engine(t, func(tu *Tuning) { tu.DirectIO = direct; tu.BufferSize = 20000 })
			data := randomBytes(77, size)
			u := srv.add("/m/weights.onnx", data)
			srv.setRule(func(r faultReq) fault {
				if r.N <= 5 {
					return fault{Mode: faultReset, At: int64(r.N)*4099 + 13}
				}
				if r.N <= 8 {
					return fault{Mode: faultTruncate, At: int64(r.N)*1031 + 1}
				}
				return fault{}
			})
			r, err := ensure(t, e, u, data)
			if err != nil {
				t.Fatalf("%v\nlogs:\n%s", err, env.logs.String())
			}
			if direct && r.DirectBytes < size/2 {
				t.Errorf("direct mode wrote only %d of %d bytes directly", r.DirectBytes, size)
			}
			if !direct && r.DirectBytes != 0 {
				t.Errorf("page-cache mode wrote %d bytes directly", r.DirectBytes)
			}
			assertStore(t, env, data, true, false)
		})
	}
}

// TestDirectIOBypassesPageCache: the point of direct I/O is that a blob's
// bytes are not left in memory; mincore shows which pages are resident.
func TestDirectIOBypassesPageCache(t *testing.T) {
	const size = 8<<20 + 5
	var st unix.Statfs_t
	dir := t.TempDir()
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	onTmpfs := st.Type == unix.TMPFS_MAGIC
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct=%v", direct), func(t *testing.T) {
			srv := newFaultServer(t)
			env := newEnv(t, "")
			// No stall restarts or hedges (a loaded machine may trigger them): each
			// one writes its unaligned edges through the page cache.
			e := env.engine(t, func(tu *Tuning) {
				tu.DirectIO = direct
				tu.BufferSize = 1 << 20
				tu.StallTimeout, tu.HedgeAfter = time.Minute, 0
			})
			data := randomBytes(78, size)
			u := srv.add("/m/weights.onnx", data)
			r, err := ensure(t, e, u, data)
			if err != nil {
				t.Fatal(err)
			}
			frac := residentFraction(t, r.Path)
			t.Logf("direct=%v: %d bytes written directly, %.0f%% of the blob's pages resident", direct, r.DirectBytes, frac*100)
			switch {
			case direct && r.DirectBytes < size-2*dioAlign:
				t.Errorf("only %d of %d bytes written directly", r.DirectBytes, size)
			case !direct && r.DirectBytes != 0:
				t.Errorf("%d bytes written directly with DirectIO off", r.DirectBytes)
			case onTmpfs:
				t.Logf("%s is tmpfs (always resident): residency not compared", dir)
			case direct && frac > 0.05:
				t.Errorf("direct I/O left %.0f%% of the blob in the page cache", frac*100)
			case !direct && frac < 0.5:
				t.Errorf("page-cache mode left only %.0f%% resident: the comparison above proves nothing", frac*100)
			}
			assertStore(t, env, data, true, false)
		})
	}
}

func residentFraction(t *testing.T, path string) float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	m, err := unix.Mmap(int(f.Fd()), 0, int(fi.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	page := os.Getpagesize()
	vec := make([]byte, (len(m)+page-1)/page)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return float64(n) / float64(len(vec))
}

// TestNoDirectIOOnNetworkFilesystems: where statfs names NFS, Lustre,
// GPFS, SMB or FUSE, blobs are written through the page cache.
func TestNoDirectIOOnNetworkFilesystems(t *testing.T) {
	const size = 1<<20 + 3
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	e.unreliableLocks = true // as New sets it for those filesystem magics
	data := randomBytes(81, size)
	r, err := ensure(t, e, srv.add("/m/weights.onnx", data), data)
	if err != nil {
		t.Fatal(err)
	}
	if r.DirectBytes != 0 {
		t.Errorf("%d bytes written with direct I/O on a network filesystem", r.DirectBytes)
	}
	assertStore(t, env, data, true, false)
}

// TestDirectIORefusedFallsBack: a filesystem that accepts O_DIRECT at open
// but refuses the writes (EINVAL) costs nothing but the mode.
func TestDirectIORefusedFallsBack(t *testing.T) {
	const size = 1<<20 + 3
	srv := newFaultServer(t)
	env := newEnv(t, "")
	e := env.engine(t, nil)
	var refused atomic.Int64
	e.hooks.directErr = func(int64) error { refused.Add(1); return syscall.EINVAL }
	data := randomBytes(79, size)
	u := srv.add("/m/weights.onnx", data)
	r, err := ensure(t, e, u, data)
	if err != nil {
		t.Fatalf("%v\nlogs:\n%s", err, env.logs.String())
	}
	if r.DirectBytes != 0 || refused.Load() == 0 {
		t.Errorf("direct bytes %d, refusals %d", r.DirectBytes, refused.Load())
	}
	if !strings.Contains(env.logs.String(), "direct I/O refused") {
		t.Errorf("fallback not logged")
	}
	assertStore(t, env, data, true, false)
}

// TestKeptBuffersBoundedByHashLead: buffers held for a slow hasher never
// exceed the hash lead (plus one buffer per stream), for a single stream
// (no ranges) as for parallel ranges; without the bound a fast network
// would park most of the file in memory.
func TestKeptBuffersBoundedByHashLead(t *testing.T) {
	const size = 4 << 20
	for _, ranged := range []bool{false, true} {
		t.Run(fmt.Sprintf("ranged=%v", ranged), func(t *testing.T) {
			srv := newFaultServer(t)
			env := newEnv(t, "")
			e := env.engine(t, func(tu *Tuning) { tu.HashLead = 512 << 10; tu.SHA256 = false })
			e.hooks.beforeHash = func() { time.Sleep(time.Millisecond) }
			data := randomBytes(80, size)
			u := srv.add("/m/weights.onnx", data)
			if !ranged {
				srv.setRule(func(faultReq) fault { return fault{NoRanges: true, IgnoreRange: true} })
			}
			r, err := ensure(t, e, u, data)
			if err != nil {
				t.Fatalf("%v\nlogs:\n%s", err, env.logs.String())
			}
			tu := e.Tuning()
			lead := tu.HashLead
			streams := int64(1)
			if ranged {
				step := tu.partSize(size)
				lead = max(lead, int64(tu.StreamsPerFile)*step*3/2)
				streams = int64(tu.StreamsPerFile)
			}
			bound := lead + streams*int64(tu.BufferSize)
			peak := e.keptPeak.Load()
			t.Logf("kept at most %d bytes (bound %d) for %d", peak, bound, r.Size)
			if peak == 0 || peak > bound {
				t.Errorf("kept %d bytes for the hasher; bound %d", peak, bound)
			}
			assertStore(t, env, data, true, false)
		})
	}
}
