package download

import (
	"context"
	"fmt"
	"hash"
	"os"
	"time"
)

// follow hashes the contiguous written prefix as it grows, from the
// chunks the streams keep in memory; bytes without a chunk (adopted from a
// resumed partial) are read back from the file.
func (j *job) follow(ctx context.Context, h hash.Hash, wake chan struct{}, idx int) error {
	var buf []byte
	defer func() {
		if buf != nil {
			j.e.putBuf(&buf)
		}
	}()
	var done int64
	for {
		w, complete := j.watermark()
		if done < w {
			t0 := time.Now()
			j.mu.Lock()
			c := j.chunkAtLocked(done)
			next := j.nextChunkLocked(done)
			j.mu.Unlock()
			if c != nil {
				if hook := j.e.hooks.beforeHash; hook != nil {
					hook()
				}
				to := min(c.end(), w)
				h.Write(c.data[done-c.pos : to-c.pos])
				done = to
				if done == c.end() {
					j.passChunk(c)
				}
			} else {
				if buf == nil {
					buf = *j.e.getBuf()
				}
				to := w
				if next >= 0 {
					to = min(to, next)
				}
				n, err := hashRangeRead(j.f, h, done, to, buf)
				if err != nil {
					return fmt.Errorf("read back %s for hashing: %w", j.f.Name(), err)
				}
				done = n
			}
			j.mu.Lock()
			j.diag.hashBusy += time.Since(t0)
			j.hashed[idx] = done
			close(j.hashWait)
			j.hashWait = make(chan struct{})
			j.mu.Unlock()
			continue
		}
		if complete {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return nil
		}
	}
}

// hashRangeRead feeds at most one buffer of [from, to) to h with pread.
func hashRangeRead(f *os.File, h hash.Hash, from, to int64, buf []byte) (int64, error) {
	n := min(to-from, int64(len(buf)))
	m, err := f.ReadAt(buf[:n], from)
	h.Write(buf[:m])
	if err != nil && int64(m) < n {
		return from + int64(m), err
	}
	return from + int64(m), nil
}

// hashedMinLocked is the position of the slowest hash follower (-1: none).
func (j *job) hashedMinLocked() int64 {
	m, s := j.hashed[0], j.hashed[1]
	switch {
	case m < 0:
		return s
	case s < 0:
		return m
	}
	return min(m, s)
}
