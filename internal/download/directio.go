package download

import (
	"errors"
	"os"
	"syscall"
	"unsafe"
)

// dioAlign is the alignment used for direct I/O: buffer addresses, file
// offsets and lengths. 4 KiB satisfies 512-byte and 4 KiB logical blocks.
const dioAlign = 4096

// alignedBuf returns n bytes whose first byte is dioAlign-aligned.
func alignedBuf(n int) []byte {
	b := make([]byte, n+dioAlign)
	off := int(uintptr(unsafe.Pointer(&b[0])) & (dioAlign - 1))
	if off != 0 {
		off = dioAlign - off
	}
	return b[off : off+n : off+n]
}

func addrAligned(b []byte) bool {
	return len(b) == 0 || uintptr(unsafe.Pointer(&b[0]))&(dioAlign-1) == 0
}

// splitDirect divides n bytes at file offset pos into a head written
// through the page cache (up to the next aligned offset), a middle of
// whole aligned blocks for the direct descriptor, and the tail after it.
func splitDirect(pos, n int64) (head, mid, tail int64) {
	head = (dioAlign - pos%dioAlign) % dioAlign
	if head >= n {
		return n, 0, 0
	}
	mid = (n - head) &^ (dioAlign - 1)
	return head, mid, n - head - mid
}

// directRefused reports errors that mean "this file or filesystem does not
// take direct I/O here", after which the job writes through the page cache.
func directRefused(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP)
}

// chunk is written data kept in memory for the hash followers, so that
// hashing needs no read back (direct I/O leaves nothing in the page cache).
type chunk struct {
	pos  int64
	data []byte
	bp   *[]byte
	refs int // followers that have not passed it yet; guarded by job.mu
}

func (c *chunk) end() int64 { return c.pos + int64(len(c.data)) }

// noteKept records the peak of bytes held for hash followers (tests
// assert that the hash lead bounds it).
func (e *Engine) noteKept(n int64) {
	for {
		p := e.keptPeak.Load()
		if n <= p || e.keptPeak.CompareAndSwap(p, n) {
			return
		}
	}
}

// chunkAtLocked returns the kept chunk holding byte pos.
func (j *job) chunkAtLocked(pos int64) *chunk {
	if c := j.chunks[pos]; c != nil {
		return c
	}
	for _, c := range j.chunks {
		if c.pos <= pos && pos < c.end() {
			return c
		}
	}
	return nil
}

// nextChunkLocked is the start of the first kept chunk after pos (-1: none).
func (j *job) nextChunkLocked(pos int64) int64 {
	next := int64(-1)
	for _, c := range j.chunks {
		if c.pos > pos && (next < 0 || c.pos < next) {
			next = c.pos
		}
	}
	return next
}

// passChunk records that one follower has hashed all of c.
func (j *job) passChunk(c *chunk) {
	j.mu.Lock()
	c.refs--
	free := c.refs <= 0
	if free {
		delete(j.chunks, c.pos)
		j.diag.kept -= int64(len(c.data))
	}
	j.mu.Unlock()
	if free {
		j.e.putBuf(c.bp)
	}
}

// dropChunks returns every kept buffer (end of a run).
func (j *job) dropChunks() {
	j.mu.Lock()
	cs := j.chunks
	j.chunks = nil
	j.diag.kept = 0
	j.mu.Unlock()
	for _, c := range cs {
		j.e.putBuf(c.bp)
	}
}

// openDirectFor gives the job a direct-I/O descriptor when the tuning asks
// for one and the file and filesystem take it.
func (j *job) openDirectFor() func() {
	t := j.e.tune
	// Not on network or FUSE filesystems (the statfs list of unreliable
	// locks): O_DIRECT there turns writes into synchronous round trips or
	// is refused.
	if !t.DirectIO || j.size < t.DirectMin || j.f == nil || j.e.unreliableLocks {
		return func() {}
	}
	d := openDirect(j.f)
	if d == nil {
		return func() {}
	}
	j.dio = d
	return func() {
		j.mu.Lock()
		j.dio = nil
		j.mu.Unlock()
		d.Close()
	}
}

// directWriter is the descriptor for aligned blocks, or nil.
func (j *job) directWriter() *os.File {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.dio
}

func (j *job) disableDirect(err error) {
	j.mu.Lock()
	d := j.dio
	j.dio = nil
	j.mu.Unlock()
	if d != nil {
		j.e.log.Info("direct I/O refused; writing through the page cache", "file", j.name, "err", err.Error())
	}
}
