// Package blake2s implements unkeyed BLAKE2s (RFC 7693) with a selectable
// digest length of 1 to 32 bytes.
//
// The digest length is part of the parameter block, so BLAKE2s with
// outlen=16 is a different function from BLAKE2s-256 truncated to 16 bytes.
// The reference's model-id slug uses hashlib.blake2s(digest_size=16) and its
// local TRT package ids use digest_size=6; golang.org/x/crypto/blake2s only
// offers 32 bytes (and 16 bytes with a mandatory key), hence this package.
package blake2s

import (
	"encoding/binary"
	"fmt"
	"hash"
	"math/bits"

	"github.com/modelcache/modelcache/errdefs"
)

const (
	// BlockSize is the BLAKE2s block size in bytes.
	BlockSize = 64
	// MaxSize is the largest digest length in bytes.
	MaxSize = 32
)

// iv is the BLAKE2s initialization vector (RFC 7693 §2.6; the SHA-256 IV).
var iv = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

// sigma holds the message word permutations of the ten rounds (RFC 7693 §2.7).
var sigma = [10][16]uint8{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
	{11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
	{7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
	{9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
	{2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
	{12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
	{13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
	{6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
	{10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
}

// SizeError reports a digest length outside 1..MaxSize; it matches
// errdefs.ErrInvalidParameter.
type SizeError int

func (e SizeError) Error() string {
	return fmt.Sprintf("blake2s: digest size %d is outside 1..%d", int(e), MaxSize)
}

func (e SizeError) Unwrap() error { return errdefs.ErrInvalidParameter }

// Sum returns the BLAKE2s digest of data with the given length in bytes.
// It panics if size is not in 1..MaxSize (a programming error: every caller
// uses a constant).
func Sum(data []byte, size int) []byte {
	d, err := newDigest(size)
	if err != nil {
		panic(err)
	}
	d.Write(data)
	return d.Sum(nil)
}

// New returns a hash.Hash computing unkeyed BLAKE2s with a size-byte digest.
func New(size int) (hash.Hash, error) {
	return newDigest(size)
}

type digest struct {
	h    [8]uint32
	t    uint64 // bytes compressed so far (RFC 7693 counter t, 2 words)
	buf  [BlockSize]byte
	n    int // bytes pending in buf
	size int
}

func newDigest(size int) (*digest, error) {
	if size < 1 || size > MaxSize {
		return nil, SizeError(size)
	}
	d := &digest{size: size}
	d.Reset()
	return d, nil
}

// Reset restores the initial state.
func (d *digest) Reset() {
	d.h = iv
	// Parameter block word 0: digest length, key length 0, fanout 1, depth 1.
	d.h[0] ^= 0x01010000 ^ uint32(d.size)
	d.t = 0
	d.n = 0
	clear(d.buf[:])
}

func (d *digest) Size() int      { return d.size }
func (d *digest) BlockSize() int { return BlockSize }

// Write absorbs p. A full block is compressed only once more input follows,
// because the last block (even a full one) needs the final flag.
func (d *digest) Write(p []byte) (int, error) {
	written := len(p)
	if d.n > 0 {
		k := copy(d.buf[d.n:], p)
		d.n += k
		p = p[k:]
		if len(p) == 0 {
			return written, nil
		}
		d.t += BlockSize
		d.compress(d.buf[:], false)
		d.n = 0
	}
	for len(p) > BlockSize {
		d.t += BlockSize
		d.compress(p[:BlockSize], false)
		p = p[BlockSize:]
	}
	d.n = copy(d.buf[:], p)
	return written, nil
}

// Sum appends the digest of the data written so far to b; d is unchanged.
func (d *digest) Sum(b []byte) []byte {
	f := *d
	f.t += uint64(f.n)
	clear(f.buf[f.n:])
	f.compress(f.buf[:], true)
	var out [MaxSize]byte
	for i, w := range f.h {
		binary.LittleEndian.PutUint32(out[4*i:], w)
	}
	return append(b, out[:f.size]...)
}

// compress is the function F of RFC 7693 §3.2 applied to one 64-byte block.
func (d *digest) compress(block []byte, last bool) {
	var m [16]uint32
	for i := range m {
		m[i] = binary.LittleEndian.Uint32(block[4*i:])
	}
	var v [16]uint32
	copy(v[:8], d.h[:])
	copy(v[8:], iv[:])
	v[12] ^= uint32(d.t)
	v[13] ^= uint32(d.t >> 32)
	if last {
		v[14] = ^v[14]
	}
	for r := range sigma {
		s := &sigma[r]
		g(&v, 0, 4, 8, 12, m[s[0]], m[s[1]])
		g(&v, 1, 5, 9, 13, m[s[2]], m[s[3]])
		g(&v, 2, 6, 10, 14, m[s[4]], m[s[5]])
		g(&v, 3, 7, 11, 15, m[s[6]], m[s[7]])
		g(&v, 0, 5, 10, 15, m[s[8]], m[s[9]])
		g(&v, 1, 6, 11, 12, m[s[10]], m[s[11]])
		g(&v, 2, 7, 8, 13, m[s[12]], m[s[13]])
		g(&v, 3, 4, 9, 14, m[s[14]], m[s[15]])
	}
	for i := range d.h {
		d.h[i] ^= v[i] ^ v[i+8]
	}
}

// g is the mixing function G of RFC 7693 §3.1 with the BLAKE2s rotation
// constants (R1..R4) = (16, 12, 8, 7).
func g(v *[16]uint32, a, b, c, dd int, x, y uint32) {
	v[a] = v[a] + v[b] + x
	v[dd] = bits.RotateLeft32(v[dd]^v[a], -16)
	v[c] = v[c] + v[dd]
	v[b] = bits.RotateLeft32(v[b]^v[c], -12)
	v[a] = v[a] + v[b] + y
	v[dd] = bits.RotateLeft32(v[dd]^v[a], -8)
	v[c] = v[c] + v[dd]
	v[b] = bits.RotateLeft32(v[b]^v[c], -7)
}
