package eventbridge

import (
	"testing"
	"unicode"
	"unicode/utf8"
)

// bidiControl agrees with Unicode's Bidi_Control property, and unsafeText refuses exactly the
// control characters and those, for every character.
func TestUnsafeTextIsUnicodes(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		b := utf8.AppendRune([]byte("a"), r)
		b = append(b, 'z')
		bidi := unicode.Is(unicode.Bidi_Control, r)
		if got := bidiControl(b[1:]); got != bidi {
			t.Fatalf("%U: bidiControl %v, Bidi_Control %v", r, got, bidi)
		}
		if got, want := unsafeText(b) != "", unicode.IsControl(r) || bidi; got != want {
			t.Fatalf("%U: unsafeText %q, want refused %v", r, unsafeText(b), want)
		}
	}
}
