package textsafe

import (
	"bytes"
	"testing"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"acme-ws/parcel-detector/7": "acme-ws/parcel-detector/7",
		"naïve ✓ 模型":                "naïve ✓ 模型",
		"rfdetr\x1b]0;pwned\x07":    `rfdetr\x1b]0;pwned\x07`,
		"a\nb\tc\rd":                `a\nb\tc\rd`,
		"\x9b31m":                   `\x9b31m`,
		"\u009b31m":                 `\u009b31m`,
		"abc\u202eexe.txt":          `abc\u202eexe.txt`,
		"bad\xffbyte":               `bad\xffbyte`,
		"del\x7f":                   `del\x7f`,
	} {
		if got := String(in); got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWriterKeepsLayout(t *testing.T) {
	var b bytes.Buffer
	w := Writer(&b)
	in := "model\tacme\x1b[2J\nnext line\n"
	n, err := w.Write([]byte(in))
	if err != nil || n != len(in) {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if got, want := b.String(), "model\tacme\\x1b[2J\nnext line\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if bytes.IndexByte(b.Bytes(), 0x1b) >= 0 {
		t.Fatal("ESC reached the terminal")
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", "\x1b[31m", "\u202e", "\xff\xfe", "\x9b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := String(s)
		if !isClean(out, false) {
			t.Fatalf("String(%q) = %q still holds control characters", s, out)
		}
		var b bytes.Buffer
		Writer(&b).Write([]byte(s))
		if !isClean(b.String(), true) {
			t.Fatalf("Writer passed control characters: %q", b.String())
		}
	})
}
