package eventbridge

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// bidiControl agrees with Unicode's Bidi_Control property for every character.
func TestBidiControlIsUnicodes(t *testing.T) {
	for r := rune(0x80); r <= 0x10ffff; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		b := utf8.AppendRune(nil, r)
		if got, want := bidiControl(b), unicode.Is(unicode.Bidi_Control, r); got != want {
			t.Fatalf("%U: bidiControl %v, Bidi_Control %v", r, got, want)
		}
	}
}
