package layout

import (
	"encoding/hex"
	"unicode/utf8"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/blake2s"
)

const (
	slugVersion     = "v2-"
	slugMaxPrefix   = 48
	slugEmptyPrefix = "special-char-only-model-id"
	slugDigestSize  = 16 // BLAKE2s-128 with the length in the parameter block
)

// Slug returns the directory name of a model's cache root (§4.1):
// "v2-" + Prefix(modelID) + "-" + hex(BLAKE2s-128(modelID)).
//
// Any valid UTF-8 string is accepted (the reference slugs blank ids, NUL and
// path syntax alike); the result always matches ^v2-[A-Za-z0-9_-]+-[0-9a-f]{32}$,
// so it is a single safe path element. Invalid UTF-8 cannot come from the
// reference (a Python str) and is rejected with an error wrapping
// errdefs.ErrInvalidParameter.
func Slug(modelID string) (string, error) {
	prefix, err := Prefix(modelID)
	if err != nil {
		return "", err
	}
	sum := blake2s.Sum([]byte(modelID), slugDigestSize)
	return slugVersion + prefix + "-" + hex.EncodeToString(sum), nil
}

// Prefix returns the readable part of the slug: every maximal run of
// characters outside ASCII [A-Za-z0-9_-] becomes one "-", every run of two
// or more characters from {_, -} becomes one "-", the empty id becomes
// "special-char-only-model-id", and the result is cut to 48 characters.
func Prefix(modelID string) (string, error) {
	if !utf8.ValidString(modelID) {
		return "", newError(errdefs.ErrInvalidParameter, "model id", modelID, "is not valid UTF-8")
	}
	if modelID == "" {
		return slugEmptyPrefix, nil
	}
	// Pass 1: runs of disallowed characters -> "-". Every byte of a multi-byte
	// UTF-8 sequence is >= 0x80, so a byte-wise scan sees the same runs as a
	// per-character one.
	pass1 := make([]byte, 0, len(modelID))
	for i := 0; i < len(modelID); i++ {
		c := modelID[i]
		if slugChar(c) {
			pass1 = append(pass1, c)
		} else if i == 0 || slugChar(modelID[i-1]) {
			pass1 = append(pass1, '-')
		}
	}
	// Pass 2: runs of 2+ characters from {_, -} -> "-"; a lone "_" stays.
	out := make([]byte, 0, len(pass1))
	for i := 0; i < len(pass1); {
		j := i
		for j < len(pass1) && (pass1[j] == '_' || pass1[j] == '-') {
			j++
		}
		switch {
		case j-i >= 2:
			out = append(out, '-')
		case j-i == 1:
			out = append(out, pass1[i])
		default:
			out = append(out, pass1[i])
			j = i + 1
		}
		i = j
	}
	if len(out) > slugMaxPrefix {
		out = out[:slugMaxPrefix]
	}
	return string(out), nil
}

func slugChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
