package fsx

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
)

// tmpAlphabet is the reference's temp-name alphabet (on-disk contract §2).
const tmpAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789_"

func randName(n int) (string, error) {
	var buf [32]byte
	if n > len(buf) {
		return "", fmt.Errorf("randName: %d too long", n)
	}
	if _, err := rand.Read(buf[:n]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	out := make([]byte, n)
	// 37 symbols: modulo bias is irrelevant for uniqueness, O_EXCL catches collisions.
	for i := range out {
		out[i] = tmpAlphabet[int(buf[i])%len(tmpAlphabet)]
	}
	return string(out), nil
}

// HexToken returns 16 random lower-case hex characters, the <token> of partial
// and corrupt-blob names (download.md §3 rule 1).
func HexToken() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// AtomicTempName returns ".<final>.<rand8>.tmp" for the base name final.
func AtomicTempName(final string) (string, error) {
	r, err := randName(8)
	if err != nil {
		return "", err
	}
	return "." + final + "." + r + ".tmp", nil
}

// ParseAtomicTempName recognises a WriteFileAtomic (or reference) temp name
// ".<final>.<rand8>.tmp" and returns <final>. GC uses it to sweep leftovers.
func ParseAtomicTempName(name string) (final string, ok bool) {
	const suffix = ".tmp"
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix) {
		return "", false
	}
	core := strings.TrimSuffix(name[1:], suffix) // "<final>.<rand8>"
	if len(core) < 10 || core[len(core)-9] != '.' {
		return "", false
	}
	for _, c := range core[len(core)-8:] {
		if !strings.ContainsRune(tmpAlphabet, c) {
			return "", false
		}
	}
	return core[:len(core)-9], true
}
