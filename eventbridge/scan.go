package eventbridge

import (
	"fmt"
	"math"
	"sync"
	"unicode/utf8"
)

// MaxDepth is how deeply objects and arrays may nest in a body (the top-level object counts as
// one). Deeper bodies are rejected as malformed: no Genesys event comes close, and the limit keeps
// a hostile body from costing more than its length.
const MaxDepth = 64

// member is one "key": value pair of an object the scanner recorded. Offsets index the body; the
// key span excludes the quotes, the value span is the value's bytes without surrounding blanks.
type member struct {
	keyStart, keyEnd int32
	valStart, valEnd int32
	// parent is the index of the member whose object value holds this one, or -1 for the members
	// of the top-level object.
	parent int32
	// keyEscaped says the key holds a backslash escape, so it must be unescaped before comparing.
	keyEscaped bool
	// children says the members of this member's object value were recorded too.
	children bool
}

// scanner validates a whole JSON document in one pass (syntax, UTF-8, nesting depth) and, on the
// way, records the members of the top-level object and of the few second-level objects the
// decoders read (detail, metadata, eventBody). Values are never materialised: decoders slice
// what they need out of the body afterwards.
type scanner struct {
	buf     []byte
	pos     int
	members []member
	// subs are scanners of nested objects whose members were not recorded; released with s.
	subs []*scanner
	// strs builds the strings of the Event being decoded.
	strs strtab
}

// scannerPool recycles scanners so the member slice is allocated once per goroutine, not once per
// request. Nothing handed to callers points into a scanner.
var scannerPool = sync.Pool{New: func() any { return &scanner{members: make([]member, 0, 32)} }}

func getScanner() *scanner { return scannerPool.Get().(*scanner) }

func putScanner(s *scanner) {
	// A hostile body can grow the slice a lot; do not keep such a slice around.
	if cap(s.members) > 1024 {
		s.members = make([]member, 0, 32)
	}
	for _, sub := range s.subs {
		putScanner(sub)
	}
	clear(s.subs)
	s.subs = s.subs[:0]
	s.strs.reset()
	s.buf = nil
	s.members = s.members[:0]
	scannerPool.Put(s)
}

// recordChildren names the second-level objects whose members are recorded during the scan.
func recordChildren(key []byte) bool {
	switch string(key) {
	case "detail", "metadata", "eventBody":
		return true
	}
	return false
}

// Character classes for the hot loops.
var (
	// plainString marks bytes that may appear unescaped in a string and need no further look:
	// printable ASCII other than '"' and '\\'.
	plainString [256]bool
	// blank marks JSON whitespace.
	blank [256]bool
)

func init() {
	for c := 0x20; c < 0x80; c++ {
		plainString[c] = c != '"' && c != '\\'
	}
	blank[' '], blank['\t'], blank['\n'], blank['\r'] = true, true, true, true
}

// syntaxError builds the error for malformed input. It names the offset, never the bytes found
// there, so error answers cannot echo the body.
func syntaxError(what string, off int) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformed, what, off)
}

// scan validates buf as one JSON value and records members. It returns an error wrapping
// ErrMalformed when buf is not valid JSON, not valid UTF-8, or nests deeper than MaxDepth.
func (s *scanner) scan(buf []byte) error {
	if len(buf) > math.MaxInt32 {
		return fmt.Errorf("%w: body larger than 2 GiB", ErrMalformed)
	}
	s.buf = buf
	s.pos = 0
	s.members = s.members[:0]
	s.skipBlank()
	if s.pos == len(buf) {
		return fmt.Errorf("%w: empty body", ErrMalformed)
	}
	if err := s.value(1, true, -1); err != nil {
		return err
	}
	s.skipBlank()
	if s.pos != len(buf) {
		return syntaxError("data after the JSON value", s.pos)
	}
	return nil
}

func (s *scanner) skipBlank() {
	i := s.pos
	for i < len(s.buf) && blank[s.buf[i]] {
		i++
	}
	s.pos = i
}

// value scans the value at s.pos, which is not a blank. depth is the nesting depth a container
// starting here would have; record says to record the members if it is an object.
func (s *scanner) value(depth int, record bool, parent int32) error {
	if s.pos >= len(s.buf) {
		return syntaxError("unexpected end of input", s.pos)
	}
	switch c := s.buf[s.pos]; {
	case c == '{':
		return s.object(depth, record, parent)
	case c == '[':
		return s.array(depth)
	case c == '"':
		_, err := s.str()
		return err
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number()
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	default:
		return syntaxError("invalid character", s.pos)
	}
}

func (s *scanner) literal(lit string) error {
	if len(s.buf)-s.pos < len(lit) || string(s.buf[s.pos:s.pos+len(lit)]) != lit {
		return syntaxError("invalid literal", s.pos)
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) object(depth int, record bool, parent int32) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: nesting deeper than %d at offset %d", ErrMalformed, MaxDepth, s.pos)
	}
	s.pos++ // '{'
	s.skipBlank()
	if s.pos < len(s.buf) && s.buf[s.pos] == '}' {
		s.pos++
		return nil
	}
	for {
		if s.pos >= len(s.buf) {
			return syntaxError("unexpected end of input", s.pos)
		}
		if s.buf[s.pos] != '"' {
			return syntaxError("expected a string key", s.pos)
		}
		keyStart := s.pos + 1
		escaped, err := s.str()
		if err != nil {
			return err
		}
		keyEnd := s.pos - 1
		s.skipBlank()
		if s.pos >= len(s.buf) || s.buf[s.pos] != ':' {
			return syntaxError("expected ':' after object key", s.pos)
		}
		s.pos++
		s.skipBlank()
		if record {
			idx := int32(len(s.members))
			// Objects up to depth 2 record the members of their children named by
			// recordChildren (detail, detail.metadata, ...); escaped keys and deeper objects are
			// left to a rescan on demand.
			children := depth <= 2 && !escaped && s.pos < len(s.buf) && s.buf[s.pos] == '{' &&
				recordChildren(s.buf[keyStart:keyEnd])
			s.members = append(s.members, member{
				keyStart: int32(keyStart), keyEnd: int32(keyEnd),
				valStart: int32(s.pos), parent: parent, keyEscaped: escaped, children: children,
			})
			if err := s.value(depth+1, children, idx); err != nil {
				return err
			}
			s.members[idx].valEnd = int32(s.pos)
		} else if err := s.value(depth+1, false, -1); err != nil {
			return err
		}
		s.skipBlank()
		if s.pos >= len(s.buf) {
			return syntaxError("unexpected end of input", s.pos)
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.skipBlank()
		case '}':
			s.pos++
			return nil
		default:
			return syntaxError("expected ',' or '}' in object", s.pos)
		}
	}
}

func (s *scanner) array(depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("%w: nesting deeper than %d at offset %d", ErrMalformed, MaxDepth, s.pos)
	}
	s.pos++ // '['
	s.skipBlank()
	if s.pos < len(s.buf) && s.buf[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth+1, false, -1); err != nil {
			return err
		}
		s.skipBlank()
		if s.pos >= len(s.buf) {
			return syntaxError("unexpected end of input", s.pos)
		}
		switch s.buf[s.pos] {
		case ',':
			s.pos++
			s.skipBlank()
		case ']':
			s.pos++
			return nil
		default:
			return syntaxError("expected ',' or ']' in array", s.pos)
		}
	}
}

// str scans the string starting at s.pos (a '"') and reports whether it holds escapes.
func (s *scanner) str() (escaped bool, err error) {
	buf := s.buf
	i := s.pos + 1
	for {
		// Eight plain bytes at a time while they last: the common case for ids and text.
		for i+8 <= len(buf) && plainString[buf[i]] && plainString[buf[i+1]] && plainString[buf[i+2]] &&
			plainString[buf[i+3]] && plainString[buf[i+4]] && plainString[buf[i+5]] &&
			plainString[buf[i+6]] && plainString[buf[i+7]] {
			i += 8
		}
		for i < len(buf) && plainString[buf[i]] {
			i++
		}
		if i >= len(buf) {
			return false, syntaxError("unterminated string", s.pos)
		}
		switch c := buf[i]; {
		case c == '"':
			s.pos = i + 1
			return escaped, nil
		case c == '\\':
			escaped = true
			if i+1 >= len(buf) {
				return false, syntaxError("unterminated string", s.pos)
			}
			switch buf[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(buf) || !isHex(buf[i+2]) || !isHex(buf[i+3]) || !isHex(buf[i+4]) || !isHex(buf[i+5]) {
					return false, syntaxError("invalid \\u escape", i)
				}
				i += 6
			default:
				return false, syntaxError("invalid escape", i)
			}
		case c < 0x20:
			return false, syntaxError("control character in string", i)
		default:
			r, size := utf8.DecodeRune(buf[i:])
			if r == utf8.RuneError && size <= 1 {
				return false, syntaxError("invalid UTF-8", i)
			}
			i += size
		}
	}
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func (s *scanner) number() error {
	buf, i := s.buf, s.pos
	if buf[i] == '-' {
		i++
	}
	switch {
	case i >= len(buf):
		return syntaxError("invalid number", s.pos)
	case buf[i] == '0':
		i++
	case buf[i] >= '1' && buf[i] <= '9':
		for i < len(buf) && isDigit(buf[i]) {
			i++
		}
	default:
		return syntaxError("invalid number", s.pos)
	}
	if i < len(buf) && buf[i] == '.' {
		i++
		if i >= len(buf) || !isDigit(buf[i]) {
			return syntaxError("invalid number", s.pos)
		}
		for i < len(buf) && isDigit(buf[i]) {
			i++
		}
	}
	if i < len(buf) && (buf[i] == 'e' || buf[i] == 'E') {
		i++
		if i < len(buf) && (buf[i] == '+' || buf[i] == '-') {
			i++
		}
		if i >= len(buf) || !isDigit(buf[i]) {
			return syntaxError("invalid number", s.pos)
		}
		for i < len(buf) && isDigit(buf[i]) {
			i++
		}
	}
	s.pos = i
	return nil
}
