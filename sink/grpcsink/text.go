package grpcsink

// The checks of text that a call carries: proto3 string fields must be valid UTF-8, and plain gRPC
// metadata values printable ASCII. They run on every Send, and nearly all text is ASCII, so they
// read eight bytes at a time.

const (
	ones = 0x0101010101010101
	tops = 0x8080808080808080
)

// word returns the first eight bytes of s, which must have them, as one number.
func word(s string) uint64 {
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// printableASCII reports whether every byte of s is printable ASCII (0x20 to 0x7e), which plain
// gRPC metadata values must be.
func printableASCII(s string) bool {
	for len(s) >= 8 {
		x := word(s)
		// A byte gets its top bit set in x when it is 0x80 or more, in x+1 when it is 0x7f, and in
		// x-0x20 when it is below 0x20. A carry or borrow into the next byte only starts at a byte
		// that is caught itself, so it cannot hide one.
		if (x|(x+ones)|(x-0x20*ones))&tops != 0 {
			return false
		}
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// orBytes returns acc with every byte of s ORed into it, eight at a time: acc&tops is zero as long
// as all the text given so far is ASCII.
func orBytes(acc uint64, s string) uint64 {
	for len(s) >= 8 {
		acc |= word(s)
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		acc |= uint64(s[i])
	}
	return acc
}
