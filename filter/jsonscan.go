package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The event side of the package reads JSON with these few functions instead of encoding/json, so
// that matching can look at the fields a pattern names and step over everything else without
// decoding it or allocating.

// maxEventDepth bounds the nesting of objects and arrays in an event the package will walk.
const maxEventDepth = 512

// errEventSyntax is the cause behind every ErrInvalidEvent about malformed JSON.
var errEventSyntax = errors.New("malformed JSON")

func syntaxErr(i int, what string) error {
	return fmt.Errorf("%w: %w at offset %d: %s", ErrInvalidEvent, errEventSyntax, i, what)
}

// errEventAmbiguous is the cause behind every ErrInvalidEvent about an event that repeats a key,
// or spells a path two ways, at a path some rule reads.
var errEventAmbiguous = errors.New("ambiguous event")

// ambiguousErr says that the key at offset i reaches the path at a second time. The path is the
// table's (a rule's), so the message quotes nothing the event alone holds.
func ambiguousErr(i int, at string) error {
	return fmt.Errorf("%w: %w: the key at offset %d repeats a key, or spells a path two ways, at %q, which a rule reads",
		ErrInvalidEvent, errEventAmbiguous, i, at)
}

func skipWS(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanString reads the string starting at b[i] (which must be '"'). It returns the offset just
// after the closing quote and whether the string contains escapes.
func scanString(b []byte, i int) (end int, escaped bool, err error) {
	if i >= len(b) || b[i] != '"' {
		return i, false, syntaxErr(i, "expected string")
	}
	i++
	for i < len(b) {
		// Skip eight plain bytes at a time: none a quote, a backslash or a control character.
		for i+8 <= len(b) && !specialIn8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(b) {
				return i, false, syntaxErr(i, "unterminated escape")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return i, false, syntaxErr(i, "short \\u escape")
				}
				for _, h := range b[i+2 : i+6] {
					if hexVal(h) < 0 {
						return i, false, syntaxErr(i, "bad \\u escape")
					}
				}
				i += 6
			default:
				return i, false, syntaxErr(i, "bad escape")
			}
		case c < 0x20:
			return i, false, syntaxErr(i, "control character in string")
		default:
			i++
		}
	}
	return i, false, syntaxErr(i, "unterminated string")
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// specialIn8 reports whether any of the eight bytes in x is '"', '\\' or below 0x20. It may
// report true for a plain byte that follows a special one, never false for a special one.
func specialIn8(x uint64) bool {
	quote := x ^ (lsb * '"')
	bslash := x ^ (lsb * '\\')
	z := (quote - lsb) &^ quote
	z |= (bslash - lsb) &^ bslash
	z |= (x - lsb*0x20) &^ x
	return z&msb != 0
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanNumber reads the JSON number starting at b[i] and returns the offset after it.
func scanNumber(b []byte, i int) (int, error) {
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return start, syntaxErr(start, "bad number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return start, syntaxErr(start, "bad number fraction")
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		d := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		if i == d {
			return start, syntaxErr(start, "bad number exponent")
		}
	}
	return i, nil
}

func scanLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, syntaxErr(i, "bad literal")
	}
	return i + len(lit), nil
}

// skipValue checks and steps over the value starting at b[i] (after whitespace), returning the
// offset just after it.
func skipValue(b []byte, i, depth int) (int, error) {
	i = skipWS(b, i)
	if i >= len(b) {
		return i, syntaxErr(i, "unexpected end")
	}
	switch c := b[i]; c {
	case '"':
		end, _, err := scanString(b, i)
		return end, err
	case '{':
		if depth >= maxEventDepth {
			return i, syntaxErr(i, "nesting too deep")
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			end, _, err := scanString(b, i)
			if err != nil {
				return end, err
			}
			i = skipWS(b, end)
			if i >= len(b) || b[i] != ':' {
				return i, syntaxErr(i, "expected ':'")
			}
			if i, err = skipValue(b, i+1, depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipWS(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			return i, syntaxErr(i, "expected ',' or '}'")
		}
	case '[':
		if depth >= maxEventDepth {
			return i, syntaxErr(i, "nesting too deep")
		}
		i = skipWS(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = skipValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipWS(b, i)
			if i < len(b) && b[i] == ',' {
				i++
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			return i, syntaxErr(i, "expected ',' or ']'")
		}
	case 't':
		return scanLiteral(b, i, "true")
	case 'f':
		return scanLiteral(b, i, "false")
	case 'n':
		return scanLiteral(b, i, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return scanNumber(b, i)
		}
		return i, syntaxErr(i, "unexpected character")
	}
}

// checkTrailing reports an error unless only whitespace follows offset i.
func checkTrailing(b []byte, i int) error {
	if i = skipWS(b, i); i != len(b) {
		return syntaxErr(i, "data after the top-level value")
	}
	return nil
}
