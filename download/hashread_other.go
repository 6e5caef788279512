//go:build !linux

package download

import (
	"hash"
	"os"
)

func hashRange(f *os.File, h hash.Hash, from, to int64, buf []byte) (int64, error) {
	return hashRangeRead(f, h, from, to, buf)
}
