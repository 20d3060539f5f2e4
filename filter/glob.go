package filter

import (
	"bytes"
	"strconv"
	"strings"
)

// glob is a compiled "wildcard" value: literal parts with a '*' between each two of them. A '*'
// matches any run of characters, including none.
type glob struct {
	parts []string
}

// parseGlob compiles a wildcard value. A backslash escapes '*' or another backslash; any other
// escape, and two '*' in a row, are errors (as in EventBridge).
func parseGlob(s string) (*glob, int, string) {
	var parts []string
	var cur strings.Builder
	stars := 0
	prevStar := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return nil, 0, `has a backslash that escapes neither "*" nor "\"`
			}
			cur.WriteByte(s[i+1])
			i++
			prevStar = false
		case '*':
			if prevStar {
				return nil, 0, `has two "*" in a row`
			}
			parts = append(parts, cur.String())
			cur.Reset()
			stars++
			prevStar = true
		default:
			cur.WriteByte(c)
			prevStar = false
		}
	}
	parts = append(parts, cur.String())
	return &glob{parts: parts}, stars, ""
}

func (g *glob) match(s []byte) bool {
	first := g.parts[0]
	if len(g.parts) == 1 {
		return string(s) == first
	}
	last := g.parts[len(g.parts)-1]
	if len(s) < len(first)+len(last) || !bytes.HasPrefix(s, []byte(first)) || !bytes.HasSuffix(s, []byte(last)) {
		return false
	}
	// With only '*' as a metacharacter, taking each middle part at its leftmost place is never
	// worse than any other choice, so one left-to-right pass decides.
	mid := s[len(first) : len(s)-len(last)]
	for _, p := range g.parts[1 : len(g.parts)-1] {
		j := bytes.Index(mid, []byte(p))
		if j < 0 {
			return false
		}
		mid = mid[j+len(p):]
	}
	return true
}

// literalPrefix and literalSuffix are the fixed text a match must start and end with.
func (g *glob) literalPrefix() string { return g.parts[0] }
func (g *glob) literalSuffix() string { return g.parts[len(g.parts)-1] }

func (g *glob) key() string {
	var b strings.Builder
	for i, p := range g.parts {
		if i > 0 {
			b.WriteByte('*')
		}
		b.WriteString(strconv.Quote(p))
	}
	return b.String()
}
