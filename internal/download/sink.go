package download

import (
	"context"
	"fmt"
	"io"
	"time"
)

// throttle is hash backpressure: no stream writes more than the job's
// lead beyond what the hash followers have hashed. On a machine where the
// CPU is the limit, network streams would otherwise take CPU from the MD5,
// which would then finish long after the last byte arrived; when the
// network or the disk is the limit the followers keep up and nothing waits
// (the lead covers every part in flight). It cannot deadlock: a waiting
// stream is more than the lead beyond the hashers, so either the hashers
// have written bytes to hash (and will wake it), or the stream at the
// watermark, which is then within the lead, proceeds.
func (j *job) throttle(ctx context.Context, st *stream, pos int64) error {
	lead := j.lead
	if lead <= 0 {
		return nil
	}
	var since time.Time
	paused := false
	defer func() {
		if paused {
			st.resume(since)
		}
	}()
	for {
		j.mu.Lock()
		wait, h := j.hashWait, j.hashedMinLocked()
		j.mu.Unlock()
		if h < 0 || pos-h <= lead {
			return nil
		}
		if !paused {
			paused, since = true, st.pause()
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// copyBody streams body into the file from off; limit is the end of the
// response (-1: until EOF). It stops early when the part was split below the
// response's end. With direct I/O, a buffer's byte i holds file offset
// pos-off0+i with off0 = pos mod dioAlign, so whole blocks are aligned in
// memory and on disk; an unaligned tail is carried into the next buffer.
func (j *job) copyBody(rctx context.Context, st *stream, p *part, body io.Reader, off, limit int64) error {
	bp := j.e.getBuf()
	defer func() { j.e.putBuf(bp) }() // the buffer held at return
	// pos is the next byte to write; buf[at:at+filled] holds [pos, pos+filled).
	pos := off
	at, filled := 0, 0
	if j.directWriter() != nil {
		at = int(pos % dioAlign)
	}
	const flushAfter = 100 * time.Millisecond
	for {
		j.mu.Lock()
		end, complete := p.end, p.end >= 0 && p.cur >= p.end
		j.mu.Unlock()
		if complete {
			return nil // finished by the part's other stream (hedge)
		}
		if limit >= 0 && (end < 0 || limit < end) {
			end = limit
		}
		if end >= 0 && pos >= end {
			return nil
		}
		buf := *bp
		want := len(buf) - at
		if end >= 0 {
			want = int(min(int64(want), end-pos))
		}
		if err := j.journalThrottle(rctx, st); err != nil {
			return err
		}
		if err := j.throttle(rctx, st, pos+int64(filled)); err != nil {
			return err
		}
		var rerr error
		began := time.Now()
		for filled < want && rerr == nil {
			var n int
			n, rerr = body.Read(buf[at+filled : at+want])
			if n > 0 {
				filled += n
				st.touch(int64(n))
				if time.Since(began) > flushAfter {
					break
				}
			}
		}
		final := rerr != nil || (end >= 0 && pos+int64(filled) >= end)
		if filled > 0 {
			n, next, nextAt, err := j.write(p, st, bp, buf[at:at+filled], pos, final)
			if err != nil {
				return err
			}
			pos += int64(n)
			bp, at, filled = next, nextAt, filled-n
			if limit < 0 {
				// Nobody announced a size: bounded by the cap and the reserve.
				if err := j.checkUnknownSize(pos); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			if limit >= 0 && pos < limit {
				return io.ErrUnexpectedEOF
			}
			if limit < 0 {
				j.mu.Lock()
				if p.end < 0 {
					j.size, p.end = pos, pos
				}
				j.mu.Unlock()
			}
			return nil
		}
		if rerr != nil {
			if c := abortCause(rctx); c != nil {
				return c
			}
			return scrubURLError(rerr, j.safe)
		}
	}
}

// write stores data (held in *bp) at pos for part p, trimmed to the part's
// current end, and advances the part. With direct I/O and final false it
// may leave an unaligned tail unwritten. The caller continues with buffer
// next, where the unwritten rest of data now sits at nextAt: bp itself, or
// a new buffer when bp went to the hash followers (the rest is copied out
// before they can see bp, which they return to the pool).
func (j *job) write(p *part, st *stream, bp *[]byte, data []byte, pos int64, final bool) (written int, next *[]byte, nextAt int, err error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	orig, pos0 := data, pos
	carry := func(written int64, fresh bool) (*[]byte, int) {
		at := 0
		if j.directWriter() != nil {
			at = int((pos0 + written) % dioAlign)
		}
		nb := bp
		if fresh {
			nb = j.e.getBuf()
		}
		copy((*nb)[at:], orig[written:])
		return nb, at
	}
	j.mu.Lock()
	// A hedged part has two streams over the same bytes: skip what the
	// other one has written already.
	skip := min(max(p.cur-pos, 0), int64(len(data)))
	data, pos = data[skip:], pos+skip
	n := int64(len(data))
	if p.end >= 0 && pos+n > p.end {
		n = max(p.end-pos, 0)
		final = true
	}
	p.reserved = max(p.reserved, pos+n)
	dio := j.dio
	j.mu.Unlock()
	if n == 0 {
		next, nextAt = carry(skip, false)
		return int(skip), next, nextAt, nil
	}
	var direct int64 // bytes of this write that went through the direct descriptor
	head, mid, tail := n, int64(0), int64(0)
	if dio != nil {
		head, mid, tail = splitDirect(pos, n)
		if mid > 0 && !addrAligned(data[head:]) {
			head, mid, tail = n, 0, 0
		}
		if !final {
			n -= tail
			tail = 0
		}
	}
	if n == 0 {
		next, nextAt = carry(skip, false)
		return int(skip), next, nextAt, nil
	}
	if hook := j.e.hooks.writeErr; hook != nil {
		err = hook(j.f.Name(), pos)
	}
	if err == nil && head > 0 {
		_, err = j.f.WriteAt(data[:head], pos)
	}
	if err == nil && mid > 0 {
		if hook := j.e.hooks.directErr; hook != nil {
			err = hook(pos + head)
		}
		if err == nil {
			_, err = dio.WriteAt(data[head:head+mid], pos+head)
		}
		if err != nil && directRefused(err) {
			j.disableDirect(err)
			_, err = j.f.WriteAt(data[head:head+mid], pos+head)
		} else if err == nil {
			direct = mid
		}
	}
	if err == nil && tail > 0 {
		_, err = j.f.WriteAt(data[head+mid:n], pos+head+mid)
	}
	if err != nil {
		if isDiskFatal(err) {
			return 0, bp, 0, &DiskError{Path: j.f.Name(), Op: "write", Written: j.doneBytes(), Err: err}
		}
		return 0, bp, 0, fmt.Errorf("write %s: %w", j.f.Name(), err)
	}
	var sum string
	if p.h != nil {
		p.h.Write(data[:n])
		sum = p.h.Sum()
	}
	keep := j.followers > 0 // set before the run's streams start
	next, nextAt = carry(skip+n, keep)
	j.mu.Lock()
	if keep {
		// Kept before the watermark moves, so followers never miss it.
		if j.chunks == nil {
			j.chunks = map[int64]*chunk{}
		}
		j.chunks[pos] = &chunk{pos: pos, data: data[:n], bp: bp, refs: j.followers}
		j.diag.kept += n
		j.e.noteKept(j.diag.kept)
	}
	p.cur = pos + n
	p.sum = sum
	j.diag.direct += direct
	j.diag.lastByte = time.Now()
	j.failingSince = time.Time{}
	j.written += n
	due := j.jpath != "" && j.written-j.ckptAt >= j.journalStep()
	if p.hedged && p.end >= 0 && p.cur >= p.end {
		for o := range j.streams {
			if o.p == p && o != st {
				o.cancel(errHedgeLost)
			}
		}
	}
	j.mu.Unlock()
	j.fp.network.Add(n)
	j.wake()
	if due {
		select {
		case j.ckpt <- struct{}{}:
		default:
		}
	}
	if h := j.e.hooks.afterWrite; h != nil {
		h(n)
	}
	return int(skip + n), next, nextAt, nil
}
