package filter

import (
	"bytes"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"unsafe"
)

// valueKind is the JSON type of an event's leaf value.
type valueKind uint8

const (
	kindString valueKind = iota + 1
	kindNumber
	kindTrue
	kindFalse
	kindNull
)

// value is one leaf value of an event, as the matchers see it.
type value struct {
	kind  valueKind
	text  []byte // string content (unescaped), or the literal text of a number
	num   int64  // millionths, when numOK
	numOK bool

	// folded caches the case-folded text; fold points at the buffer it is built in.
	folded    []byte
	hasFolded bool
	fold      *[]byte
}

func (v *value) foldedText() []byte {
	if !v.hasFolded {
		buf := (*v.fold)[:0]
		buf = foldAppend(buf, v.text)
		*v.fold = buf
		v.folded, v.hasFolded = buf, true
	}
	return v.folded
}

// opKind names what one value in a pattern's list tests.
type opKind uint8

const (
	opExact       opKind = iota + 1 // a string, compared exactly (and as an IP address when it is one)
	opNumber                        // a number: numerically when comparable, else by its text
	opTrue                          // true
	opFalse                         // false
	opNull                          // null
	opPrefix                        // {"prefix": s}
	opSuffix                        // {"suffix": s}
	opEqualsFold                    // {"equals-ignore-case": s}
	opPrefixFold                    // {"prefix": {"equals-ignore-case": s}}
	opSuffixFold                    // {"suffix": {"equals-ignore-case": s}}
	opWildcard                      // {"wildcard": s}
	opNumeric                       // {"numeric": [...]}
	opCIDR                          // {"cidr": s}
	opExists                        // {"exists": true}
	opAnythingBut                   // {"anything-but": ...}
)

// valueMatcher is one entry of a pattern field's list of values.
type valueMatcher struct {
	op    opKind
	s     string // the literal, prefix, suffix or folded text
	num   int64  // opNumber: millionths when numOK
	numOK bool
	lo    int64 // opNumeric: closed range [lo, hi] in millionths
	hi    int64
	ip    netip.Addr // opExact: the address when s is an IP address literal
	pfx   netip.Prefix
	glob  *glob
	but   *anythingBut
}

func (m *valueMatcher) match(v *value) bool {
	switch m.op {
	case opExact:
		if v.kind != kindString {
			return false
		}
		if string(v.text) == m.s {
			return true
		}
		if m.ip.IsValid() {
			a, ok := parseIP(v.text)
			return ok && a == m.ip
		}
		return false
	case opNumber:
		if v.kind != kindNumber {
			return false
		}
		return (m.numOK && v.numOK && m.num == v.num) || string(v.text) == m.s
	case opTrue:
		return v.kind == kindTrue
	case opFalse:
		return v.kind == kindFalse
	case opNull:
		return v.kind == kindNull
	case opPrefix:
		return v.kind == kindString && bytes.HasPrefix(v.text, []byte(m.s))
	case opSuffix:
		return v.kind == kindString && bytes.HasSuffix(v.text, []byte(m.s))
	case opEqualsFold:
		return v.kind == kindString && string(v.foldedText()) == m.s
	case opPrefixFold:
		return v.kind == kindString && bytes.HasPrefix(v.foldedText(), []byte(m.s))
	case opSuffixFold:
		return v.kind == kindString && bytes.HasSuffix(v.foldedText(), []byte(m.s))
	case opWildcard:
		return v.kind == kindString && m.glob.match(v.text)
	case opNumeric:
		return v.kind == kindNumber && v.numOK && m.lo <= v.num && v.num <= m.hi
	case opCIDR:
		if v.kind != kindString {
			return false
		}
		a, ok := parseIP(v.text)
		return ok && m.pfx.Contains(a)
	case opExists:
		return true
	case opAnythingBut:
		return !m.but.excludes(v)
	}
	return false
}

// key returns text that identifies the matcher exactly; equal keys mean equal behaviour.
func (m *valueMatcher) key() string {
	var b strings.Builder
	b.WriteByte(byte('A' + m.op))
	switch m.op {
	case opExact, opPrefix, opSuffix, opEqualsFold, opPrefixFold, opSuffixFold:
		b.WriteString(strconv.Quote(m.s))
	case opNumber:
		b.WriteString(strconv.Quote(m.s))
		if m.numOK {
			b.WriteString("=" + strconv.FormatInt(m.num, 10))
		}
	case opWildcard:
		b.WriteString(m.glob.key())
	case opNumeric:
		b.WriteString(strconv.FormatInt(m.lo, 10) + ":" + strconv.FormatInt(m.hi, 10))
	case opCIDR:
		b.WriteString(m.pfx.String())
	case opAnythingBut:
		b.WriteString(m.but.key())
	}
	return b.String()
}

// butKind says what an anything-but excludes.
type butKind uint8

const (
	butStrings butKind = iota + 1
	butNumbers
	butPrefix
	butSuffix
	butFold
	butWildcard
)

// anythingBut matches every leaf value, of any type, except those its operand describes.
type anythingBut struct {
	kind  butKind
	strs  []string // sorted: the strings, prefixes, suffixes or folded strings
	set   map[string]struct{}
	nums  map[int64]struct{}
	globs []*glob
}

func (a *anythingBut) excludes(v *value) bool {
	switch a.kind {
	case butStrings:
		if v.kind != kindString {
			return false
		}
		_, ok := a.set[string(v.text)]
		return ok
	case butNumbers:
		if v.kind != kindNumber || !v.numOK {
			return false
		}
		_, ok := a.nums[v.num]
		return ok
	case butPrefix:
		if v.kind != kindString {
			return false
		}
		for _, s := range a.strs {
			if bytes.HasPrefix(v.text, []byte(s)) {
				return true
			}
		}
	case butSuffix:
		if v.kind != kindString {
			return false
		}
		for _, s := range a.strs {
			if bytes.HasSuffix(v.text, []byte(s)) {
				return true
			}
		}
	case butFold:
		if v.kind != kindString {
			return false
		}
		_, ok := a.set[string(v.foldedText())]
		return ok
	case butWildcard:
		if v.kind != kindString {
			return false
		}
		for _, g := range a.globs {
			if g.match(v.text) {
				return true
			}
		}
	}
	return false
}

func (a *anythingBut) key() string {
	var b strings.Builder
	b.WriteByte(byte('0' + a.kind))
	switch a.kind {
	case butNumbers:
		nums := make([]int64, 0, len(a.nums))
		for n := range a.nums {
			nums = append(nums, n)
		}
		slices.Sort(nums)
		for _, n := range nums {
			b.WriteString(strconv.FormatInt(n, 10) + ",")
		}
	case butWildcard:
		for _, g := range a.globs {
			b.WriteString(g.key() + ",")
		}
	default:
		for _, s := range a.strs {
			b.WriteString(strconv.Quote(s) + ",")
		}
	}
	return b.String()
}

// cond is what one field of a pattern branch demands: a value matching any of ms, or, when
// absentOK ({"exists": false} is in the list), no value at all.
type cond struct {
	ms       []valueMatcher
	absentOK bool
	key      string
}

func (c *cond) matches(v *value) bool {
	for i := range c.ms {
		if c.ms[i].match(v) {
			return true
		}
	}
	return false
}

func (c *cond) computeKey() {
	keys := make([]string, len(c.ms))
	for i := range c.ms {
		keys[i] = c.ms[i].key()
	}
	slices.Sort(keys)
	k := strings.Join(keys, "\x00")
	if c.absentOK {
		k = "absent\x00" + k
	}
	c.key = k
}

// parseIP parses an IPv4 or IPv6 address without a zone. It does not allocate.
func parseIP(b []byte) (netip.Addr, bool) {
	if len(b) < 2 || len(b) > 45 {
		return netip.Addr{}, false
	}
	colon, dot := false, false
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
		case c == ':':
			colon = true
		case c == '.':
			dot = true
		default:
			return netip.Addr{}, false
		}
	}
	if colon && dot {
		// EventBridge does not take an IPv6 address with an IPv4 part ("::ffff:10.0.0.1") for
		// an address: such a string is text.
		return netip.Addr{}, false
	}
	// The string only lives for the call: ParseAddr keeps no reference to it when there is no
	// zone, and the check above rules zones out.
	a, err := netip.ParseAddr(unsafe.String(&b[0], len(b)))
	// An IPv4-mapped IPv6 address ("::ffff:a00:1") is the IPv4 address, as EventBridge reads it.
	return a.Unmap(), err == nil
}
