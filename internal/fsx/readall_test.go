package fsx

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
)

func TestReadAllSized(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 100)
	for _, hint := range []int64{-1, 0, 1, 999, 1000, 1001, 5000} {
		got, err := ReadAllSized(iotest.HalfReader(bytes.NewReader(data)), hint, 1000)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("hint %d: %d bytes, %v", hint, len(got), err)
		}
	}
	var tl *TooLargeError
	if _, err := ReadAllSized(bytes.NewReader(data), 1000, 999); !errors.As(err, &tl) {
		t.Fatalf("over the limit: %v", err)
	}
	boom := errors.New("boom")
	if _, err := ReadAllSized(iotest.ErrReader(boom), 10, 100); !errors.Is(err, boom) {
		t.Fatalf("read error: %v", err)
	}
	p := filepath.Join(t.TempDir(), "f")
	os.WriteFile(p, data, 0o644)
	if got, err := ReadFileNoFollow(p, 1000); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadFileNoFollow: %v", err)
	}
	if _, err := ReadFileNoFollow(p, 10); !errors.As(err, &tl) || tl.Path != p {
		t.Fatalf("ReadFileNoFollow over the limit: %v", err)
	}
	os.Symlink(p, p+".link")
	if _, err := ReadFileNoFollow(p+".link", 1000); !errors.Is(err, ErrSymlink) {
		t.Fatalf("through a symlink: %v", err)
	}
}
