package fsx

import (
	"errors"
	"io"
)

// ReadAllSized reads r to its end into one buffer sized for the size the
// caller expects (an fstat's), so that a file read as it was stat'ed takes
// one read call and one allocation; more than limit bytes is a
// *TooLargeError.
func ReadAllSized(r io.Reader, size, limit int64) ([]byte, error) {
	if size < 0 || size > limit {
		size = 0
	}
	b := make([]byte, 0, size+1) // +1: the read that sees EOF needs room
	for {
		if int64(len(b)) > limit {
			return nil, &TooLargeError{Size: int64(len(b)), Limit: limit}
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if errors.Is(err, io.EOF) {
			if int64(len(b)) > limit {
				return nil, &TooLargeError{Size: int64(len(b)), Limit: limit}
			}
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}
