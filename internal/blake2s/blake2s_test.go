package blake2s

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
)

// TestVectors checks every record and every digest size of the golden
// blake2s section (produced by hashlib.blake2s(data, digest_size=n)).
func TestVectors(t *testing.T) {
	var recs []struct {
		DataHex string            `json:"data_hex"`
		Length  int               `json:"length"`
		Digests map[string]string `json:"digests"`
	}
	if err := json.Unmarshal(compat.Section(t, "blake2s"), &recs); err != nil {
		t.Fatal(err)
	}
	if len(recs) == 0 {
		t.Fatal("blake2s section is empty")
	}
	digests := 0
	for i, r := range recs {
		data, err := hex.DecodeString(r.DataHex)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if len(data) != r.Length {
			t.Fatalf("record %d: length %d, data has %d bytes", i, r.Length, len(data))
		}
		for sizeText, want := range r.Digests {
			size, err := strconv.Atoi(sizeText)
			if err != nil {
				t.Fatalf("record %d: digest size %q: %v", i, sizeText, err)
			}
			if got := hex.EncodeToString(Sum(data, size)); got != want {
				t.Errorf("record %d (len %d) size %d: Sum = %s, want %s", i, r.Length, size, got, want)
			}
			// Streaming in odd chunks must agree with the one-shot form.
			h, err := New(size)
			if err != nil {
				t.Fatal(err)
			}
			for rest := data; len(rest) > 0; {
				n := min(len(rest), 1+len(rest)%67)
				h.Write(rest[:n])
				rest = rest[n:]
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != want {
				t.Errorf("record %d (len %d) size %d: streamed = %s, want %s", i, r.Length, size, got, want)
			}
			digests++
		}
	}
	t.Logf("blake2s: checked %d records (%d digests)", len(recs), digests)
}

// TestCheckValues covers the spec's check value (§4.1), the RFC 7693
// Appendix B example, and digest sizes the golden data lacks (computed with
// CPython's hashlib.blake2s, the reference's implementation).
func TestCheckValues(t *testing.T) {
	seq := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return b
	}
	cases := []struct {
		data []byte
		size int
		want string
	}{
		{[]byte("my-model"), 16, "83fafb8ac0ed88eaaebd92414d983ae1"},
		{[]byte("abc"), 32, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982"},
		{nil, 1, "a1"},
		{nil, 20, "354c9c33f735962418bdacb9479873429c34916f"},
		{nil, 28, "1fa1291e65248b37b3433475b2a0dd63d54a11ecc4e3e034e7bc1ef4"},
		{nil, 31, "1f57c56334f1ba2d62275430fdc2d2301017ba6be19864dac5a5eca012da4d"},
		{[]byte("abc"), 1, "0d"},
		{[]byte("abc"), 20, "5ae3b99be29b01834c3b508521ede60438f8de17"},
		{[]byte("my-model"), 28, "3ba7b9c39fb8ad96910abcb0a5effe30a0f8c245d1c135438cefa3fd"},
		{[]byte("my-model"), 31, "dfa4e3f4feab76aaeebc1112ca7e7c021b9262e23075a27ee6f5081ed8e67a"},
		{seq(64), 1, "9b"},
		{seq(64), 20, "68c18b80dd398444aa9fd4272ecfa8e71b31ee8a"},
		{bytes.Repeat(seq(256), 3), 28, "938e105b53f60a744f99f0b9a072a8f5d0288b51bdef703f6b471433"},
		{bytes.Repeat(seq(256), 3), 31, "654011081a7f29ff20d48bc9a7afa41bc45dfe29523b84c747e6800a82fcb7"},
	}
	for _, c := range cases {
		if got := hex.EncodeToString(Sum(c.data, c.size)); got != c.want {
			t.Errorf("blake2s(len %d, size %d) = %s, want %s", len(c.data), c.size, got, c.want)
		}
	}
	// The length lives in the parameter block: not a truncated BLAKE2s-256.
	if got := hex.EncodeToString(Sum([]byte("my-model"), 32)[:16]); got != "1b9958168122736492b532c7f7da34ed" {
		t.Errorf("truncated BLAKE2s-256(my-model) = %s", got)
	}
}

func TestHashInterface(t *testing.T) {
	h, err := New(16)
	if err != nil {
		t.Fatal(err)
	}
	if h.Size() != 16 || h.BlockSize() != BlockSize {
		t.Fatalf("Size/BlockSize = %d/%d", h.Size(), h.BlockSize())
	}
	h.Write([]byte("my-"))
	mid := h.Sum([]byte("prefix"))
	if !bytes.Equal(mid[:6], []byte("prefix")) || !bytes.Equal(mid[6:], Sum([]byte("my-"), 16)) {
		t.Fatalf("Sum must append and must not finalize the state: %x", mid)
	}
	h.Write([]byte("model"))
	if got := hex.EncodeToString(h.Sum(nil)); got != "83fafb8ac0ed88eaaebd92414d983ae1" {
		t.Fatalf("after intermediate Sum: %s", got)
	}
	h.Reset()
	h.Write([]byte("my-model"))
	if got := hex.EncodeToString(h.Sum(nil)); got != "83fafb8ac0ed88eaaebd92414d983ae1" {
		t.Fatalf("after Reset: %s", got)
	}
	// Block boundaries: byte-at-a-time equals one-shot around 64 and 128.
	for _, n := range []int{63, 64, 65, 127, 128, 129} {
		data := bytes.Repeat([]byte{0xa5}, n)
		h, _ := New(32)
		for i := range data {
			h.Write(data[i : i+1])
		}
		if !bytes.Equal(h.Sum(nil), Sum(data, 32)) {
			t.Errorf("len %d: byte-wise writes disagree with Sum", n)
		}
	}
}

func TestInvalidSize(t *testing.T) {
	for _, size := range []int{-1, 0, 33, 64} {
		_, err := New(size)
		var se SizeError
		if !errors.As(err, &se) || !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("New(%d) = %v, want SizeError wrapping ErrInvalidParameter", size, err)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Sum(_, %d) did not panic", size)
				}
			}()
			Sum(nil, size)
		}()
	}
}

func BenchmarkSum16(b *testing.B) {
	for _, n := range []int{64, 1024, 1 << 20} {
		data := make([]byte, n)
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			b.SetBytes(int64(n))
			for b.Loop() {
				Sum(data, 16)
			}
		})
	}
}
