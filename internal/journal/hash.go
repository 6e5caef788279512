package journal

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"os"
	"strconv"

	"github.com/cespare/xxhash/v2"
)

// Hasher hashes one range's bytes in order and can report the hash of
// everything written so far at any time (a copy of its state).
type Hasher interface {
	Write(p []byte)
	Sum() string // hex of the bytes written so far; does not disturb the state
}

// NewHasher returns a range hasher for algo (XXH64 unless algo is SHA256).
func NewHasher(algo string) Hasher {
	if algo == SHA256 {
		return &shaRange{h: sha256.New()}
	}
	return &xxRange{d: xxhash.New()}
}

type xxRange struct{ d *xxhash.Digest }

func (x *xxRange) Write(p []byte) { x.d.Write(p) }
func (x *xxRange) Sum() string    { return strconv.FormatUint(x.d.Sum64(), 16) }

type shaRange struct{ h hash.Hash }

func (s *shaRange) Write(p []byte) { s.h.Write(p) }
func (s *shaRange) Sum() string    { return hex.EncodeToString(s.h.Sum(nil)) }

// HashFileRange hashes [first, last] of f with algo, reading through buf.
func HashFileRange(f *os.File, first, last int64, algo string, buf []byte) (string, error) {
	h := NewHasher(algo)
	for off := first; off <= last; {
		n := min(int64(len(buf)), last-off+1)
		m, err := f.ReadAt(buf[:n], off)
		if m > 0 {
			h.Write(buf[:m])
			off += int64(m)
		}
		if err != nil && off <= last {
			if errors.Is(err, io.EOF) {
				return "", io.ErrUnexpectedEOF
			}
			return "", err
		}
	}
	return h.Sum(), nil
}
