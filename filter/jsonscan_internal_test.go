package filter

import (
	"encoding/binary"
	"testing"
)

// TestSpecialIn8 checks the eight-byte test against the byte-by-byte one for every byte value at
// every position, among plain neighbours.
func TestSpecialIn8(t *testing.T) {
	special := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 }
	for pos := range 8 {
		for c := range 256 {
			var w [8]byte
			for i := range w {
				w[i] = 'a' + byte(i)
			}
			w[pos] = byte(c)
			got := specialIn8(binary.LittleEndian.Uint64(w[:]))
			if special(byte(c)) && !got {
				t.Fatalf("byte %#x at %d missed", c, pos)
			}
			if !special(byte(c)) && got {
				t.Fatalf("byte %#x at %d reported", c, pos)
			}
		}
	}
	// UTF-8 continuation and lead bytes are plain.
	if specialIn8(binary.LittleEndian.Uint64([]byte("é€😀x"))) {
		t.Fatal("multi-byte text reported as special")
	}
}
