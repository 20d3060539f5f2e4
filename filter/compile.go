package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Limits on one event pattern. They keep compile time, memory and match time bounded whatever a
// pattern says; exceeding one is an ErrPatternTooComplex.
const (
	// MaxPatternBytes is the largest pattern source accepted.
	MaxPatternBytes = 64 << 10
	// MaxPatternDepth bounds the nesting of objects, arrays and $or in a pattern.
	MaxPatternDepth = 32
	// MaxPatternValues bounds the values and operators in one pattern, over all its fields.
	MaxPatternValues = 1000
	// MaxOrCombinations bounds the alternatives a pattern's $or operators expand to, multiplied
	// out (two $or of three objects each make nine).
	MaxOrCombinations = 1000
	// MaxExpandedFields bounds the fields of all those alternatives together: each alternative
	// holds its own fields and every field outside the $or, so beside two $or of three objects a
	// field counts nine times. Compile time, memory and match time grow with this number, not
	// with the two limits above, whose product would allow a million; 10,000 leaves each of the
	// MaxOrCombinations alternatives ten fields.
	MaxExpandedFields = 10000
	// MaxWildcardStars bounds the '*' in one wildcard value.
	MaxWildcardStars = 16
	// MaxWildcardValues bounds the wildcard values (plain or inside anything-but) in one pattern.
	MaxWildcardValues = 100
)

// orKeyword is the operator that joins alternative sub-patterns.
const orKeyword = "$or"

// reservedInOr are the names EventBridge refuses as field names inside a $or alternative, so
// that an operator written at the wrong level is reported rather than read as a field.
var reservedInOr = map[string]bool{
	"exactly": true, "equals-ignore-case": true, "prefix": true, "suffix": true,
	"anything-but": true, "exists": true, "wildcard": true, "numeric": true, "cidr": true,
	"=": true, "<": true, "<=": true, ">": true, ">=": true, "regex": true,
	"not-wildcard": true, "not-equals-ignore-case": true, "date-after": true,
	"date-on-or-after": true, "date-before": true, "date-on-or-before": true,
	"in-date-range": true, "ip-address-in-range": true, "ip-address-not-in-range": true,
}

// jsonNode is a parsed pattern: JSON with object members kept in order. No object repeats a
// key: parsePatternJSON refuses one that does.
type jsonNode struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 't', 'f', 'z' (null)
	str  string
	keys []string
	vals []*jsonNode
}

func parsePatternJSON(src []byte) (*jsonNode, error) {
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.UseNumber()
	n, err := readNode(dec, 0, nodeAt{})
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("", "", "has data after the top-level object")
	}
	return n, nil
}

// nodeAt is where a value lies in the pattern, for naming it in an error: segs are the field
// keys from the root, as the compiler joins them into a path; inValues is set inside a field's
// list of values, whose objects are operators, and or for the value of a $or.
type nodeAt struct {
	segs         []string
	inValues, or bool
}

// member returns where the value of the key k of an object at a lies.
func (a nodeAt) member(k string) nodeAt {
	switch {
	case a.inValues:
		return nodeAt{segs: a.segs, inValues: true}
	case k == orKeyword:
		return nodeAt{segs: a.segs, or: true}
	}
	return nodeAt{segs: append(a.segs[:len(a.segs):len(a.segs)], k)}
}

// element returns where an element of an array at a lies: an array under a field's key is its
// list of values, and the one under $or holds objects of fields.
func (a nodeAt) element() nodeAt {
	if a.or {
		return nodeAt{segs: a.segs}
	}
	return nodeAt{segs: a.segs, inValues: true}
}

// repeatedKey is the error for an object at a that gives the key k twice. Keeping the last value
// would drop the condition written first without a word, and merging two objects under one key
// would join conditions their author may have meant as alternatives, so the pattern is refused.
// The error names the path, never a value.
func repeatedKey(a nodeAt, k string) error {
	const reason = "is given twice in one object"
	if a.inValues || k == orKeyword {
		return invalid(strings.Join(a.segs, "."), k, reason)
	}
	return invalid(strings.Join(a.member(k).segs, "."), "", reason)
}

// repeats reports whether k is among keys, the keys read so far from one object, looking it up
// in *seen once the object has many, and recording it there.
func repeats(keys []string, seen *map[string]struct{}, k string) bool {
	const scan = 16
	if len(keys) < scan {
		return slices.Contains(keys, k)
	}
	if *seen == nil {
		*seen = make(map[string]struct{}, 2*scan)
		for _, x := range keys {
			(*seen)[x] = struct{}{}
		}
	}
	if _, ok := (*seen)[k]; ok {
		return true
	}
	(*seen)[k] = struct{}{}
	return false
}

func readNode(dec *json.Decoder, depth int, at nodeAt) (*jsonNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, invalid("", "", "is not valid JSON: "+jsonErrText(err))
	}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= MaxPatternDepth {
			return nil, tooComplex("", "", "is nested more than "+strconv.Itoa(MaxPatternDepth)+" levels deep")
		}
		switch t {
		case '{':
			n := &jsonNode{kind: 'o'}
			var seen map[string]struct{} // for objects of many keys, which a scan would make quadratic
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, invalid("", "", "is not valid JSON: "+jsonErrText(err))
				}
				k, _ := kt.(string)
				// The decoder has unescaped k, so "sourc\u0065" repeats "source".
				if repeats(n.keys, &seen, k) {
					return nil, repeatedKey(at, k)
				}
				v, err := readNode(dec, depth+1, at.member(k))
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, invalid("", "", "is not valid JSON: "+jsonErrText(err))
			}
			return n, nil
		case '[':
			n := &jsonNode{kind: 'a'}
			for dec.More() {
				v, err := readNode(dec, depth+1, at.element())
				if err != nil {
					return nil, err
				}
				n.vals = append(n.vals, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, invalid("", "", "is not valid JSON: "+jsonErrText(err))
			}
			return n, nil
		}
	case string:
		return &jsonNode{kind: 's', str: t}, nil
	case json.Number:
		return &jsonNode{kind: 'n', str: string(t)}, nil
	case bool:
		if t {
			return &jsonNode{kind: 't'}, nil
		}
		return &jsonNode{kind: 'f'}, nil
	case nil:
		return &jsonNode{kind: 'z'}, nil
	}
	return nil, invalid("", "", "is not valid JSON")
}

func jsonErrText(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "unexpected end of input"
	}
	return err.Error()
}

// fieldCond is one field of a branch while it is being built.
type fieldCond struct {
	path string
	c    *cond
}

type compiler struct {
	nvalues   int
	wildcards int
}

// compilePattern turns pattern source into branches: the pattern with every $or multiplied out,
// each branch a list of fields that must all match.
func compilePattern(src []byte) ([][]fieldCond, error) {
	if len(src) > MaxPatternBytes {
		return nil, tooComplex("", "", "is larger than "+strconv.Itoa(MaxPatternBytes)+" bytes")
	}
	root, err := parsePatternJSON(src)
	if err != nil {
		return nil, err
	}
	if root.kind != 'o' {
		return nil, invalid("", "", "must be a JSON object")
	}
	c := &compiler{}
	branches, err := c.object(root, nil, 0, false, [][]fieldCond{nil})
	if err != nil {
		return nil, err
	}
	return branches, nil
}

// segs are the object keys from the pattern's root down to the current object; a field's path is
// them and its key joined with ".".
func (c *compiler) object(n *jsonNode, segs []string, depth int, inOr bool, bs [][]fieldCond) ([][]fieldCond, error) {
	prefix := strings.Join(segs, ".")
	if len(n.keys) == 0 {
		return nil, invalid(prefix, "", "must not be an empty object")
	}
	if depth >= MaxPatternDepth {
		return nil, tooComplex(prefix, "", "is nested more than "+strconv.Itoa(MaxPatternDepth)+" levels deep")
	}
	for i, k := range n.keys {
		v := n.vals[i]
		if k == orKeyword {
			var err error
			if bs, err = c.or(v, segs, depth, bs); err != nil {
				return nil, err
			}
			continue
		}
		sub := append(segs[:len(segs):len(segs)], k)
		path := strings.Join(sub, ".")
		if inOr && reservedInOr[k] {
			return nil, invalid(path, k, "is an operator, not a field name; inside $or it must sit in a field's list of values")
		}
		switch v.kind {
		case 'o':
			var err error
			if bs, err = c.object(v, sub, depth+1, inOr, bs); err != nil {
				return nil, err
			}
		case 'a':
			cd, err := c.values(v, path)
			if err != nil {
				return nil, err
			}
			for j := range bs {
				bs[j] = setField(bs[j], path, cd)
			}
			if len(bs) > 1 {
				if err := checkExpanded(bs, path, ""); err != nil {
					return nil, err
				}
			}
		default:
			return nil, invalid(path, "", "must be an object or an array of values")
		}
	}
	return bs, nil
}

// setField puts cd at path in the branch, replacing an earlier condition on the same path (a
// later occurrence wins, as in EventBridge).
func setField(b []fieldCond, path string, cd *cond) []fieldCond {
	for i := range b {
		if b[i].path == path {
			b[i].c = cd
			return b
		}
	}
	return append(b, fieldCond{path: path, c: cd})
}

func (c *compiler) or(v *jsonNode, segs []string, depth int, bs [][]fieldCond) ([][]fieldCond, error) {
	prefix := strings.Join(segs, ".")
	if v.kind != 'a' {
		return nil, invalid(prefix, orKeyword, "wants an array of at least two objects")
	}
	if len(v.vals) < 2 {
		return nil, invalid(prefix, orKeyword, "wants at least two objects")
	}
	var out [][]fieldCond
	for _, alt := range v.vals {
		if alt.kind != 'o' {
			return nil, invalid(prefix, orKeyword, "wants only objects in its array")
		}
		copies := make([][]fieldCond, len(bs))
		for i, b := range bs {
			copies[i] = slices.Clone(b)
		}
		copies, err := c.object(alt, segs, depth+1, true, copies)
		if err != nil {
			return nil, err
		}
		out = append(out, copies...)
		if len(out) > MaxOrCombinations {
			return nil, tooComplex(prefix, orKeyword, "expands to more than "+strconv.Itoa(MaxOrCombinations)+" combinations")
		}
		if err := checkExpanded(out, prefix, orKeyword); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkExpanded refuses branches holding more than MaxExpandedFields fields in all. Checked as
// the branches grow, it also bounds the work of building them.
func checkExpanded(bs [][]fieldCond, path, op string) error {
	n := 0
	for _, b := range bs {
		n += len(b)
	}
	if n > MaxExpandedFields {
		return tooComplex(path, op, "brings the pattern over "+strconv.Itoa(MaxExpandedFields)+
			" fields, counting each field once for every $or combination it is part of")
	}
	return nil
}

func (c *compiler) count(path, op string) error {
	c.nvalues++
	if c.nvalues > MaxPatternValues {
		return tooComplex(path, op, "brings the pattern over "+strconv.Itoa(MaxPatternValues)+" values")
	}
	return nil
}

func (c *compiler) values(list *jsonNode, path string) (*cond, error) {
	if len(list.vals) == 0 {
		return nil, invalid(path, "", "must not be an empty array")
	}
	cd := &cond{}
	for _, v := range list.vals {
		if err := c.count(path, ""); err != nil {
			return nil, err
		}
		switch v.kind {
		case 's':
			m := valueMatcher{op: opExact, s: v.str}
			// The same rule as for event values, so that Pattern and Matcher agree: what is
			// an address there is one here.
			if a, ok := parseIP([]byte(v.str)); ok {
				m.ip = a
			}
			cd.ms = append(cd.ms, m)
		case 'n':
			num, ok := comparableNumber([]byte(v.str))
			cd.ms = append(cd.ms, valueMatcher{op: opNumber, s: v.str, num: num, numOK: ok})
		case 't':
			cd.ms = append(cd.ms, valueMatcher{op: opTrue})
		case 'f':
			cd.ms = append(cd.ms, valueMatcher{op: opFalse})
		case 'z':
			cd.ms = append(cd.ms, valueMatcher{op: opNull})
		case 'a':
			return nil, invalid(path, "", "has an array inside its list of values; values must be strings, numbers, true, false, null or operator objects")
		case 'o':
			if err := c.operator(v, path, cd); err != nil {
				return nil, err
			}
		}
	}
	cd.computeKey()
	return cd, nil
}

func (c *compiler) operator(n *jsonNode, path string, cd *cond) error {
	if len(n.keys) == 0 {
		return invalid(path, "", "has an empty operator object")
	}
	op := n.keys[0]
	if len(n.keys) > 1 {
		return invalid(path, op, "must be the only key in its operator object")
	}
	v := n.vals[0]
	switch op {
	case "prefix", "suffix":
		kind, foldKind := opPrefix, opPrefixFold
		if op == "suffix" {
			kind, foldKind = opSuffix, opSuffixFold
		}
		if v.kind == 'o' {
			if len(v.keys) != 1 || v.keys[0] != "equals-ignore-case" {
				return invalid(path, op, `wants a string or {"equals-ignore-case": "..."}`)
			}
			if v.vals[0].kind != 's' {
				return invalid(path, op, `wants a string inside "equals-ignore-case"`)
			}
			cd.ms = append(cd.ms, valueMatcher{op: foldKind, s: foldString(v.vals[0].str)})
			return nil
		}
		if v.kind != 's' {
			return invalid(path, op, "wants a string")
		}
		cd.ms = append(cd.ms, valueMatcher{op: kind, s: v.str})
	case "equals-ignore-case":
		if v.kind != 's' {
			return invalid(path, op, "wants a string")
		}
		cd.ms = append(cd.ms, valueMatcher{op: opEqualsFold, s: foldString(v.str)})
	case "wildcard":
		if v.kind != 's' {
			return invalid(path, op, "wants a string")
		}
		g, err := c.glob(path, op, v.str)
		if err != nil {
			return err
		}
		cd.ms = append(cd.ms, valueMatcher{op: opWildcard, glob: g})
	case "anything-but":
		but, err := c.anythingBut(v, path)
		if err != nil {
			return err
		}
		cd.ms = append(cd.ms, valueMatcher{op: opAnythingBut, but: but})
	case "numeric":
		m, err := numericRange(v, path)
		if err != nil {
			return err
		}
		cd.ms = append(cd.ms, m)
	case "exists":
		switch v.kind {
		case 't':
			cd.ms = append(cd.ms, valueMatcher{op: opExists})
		case 'f':
			cd.absentOK = true
		default:
			return invalid(path, op, "wants true or false")
		}
	case "cidr":
		if v.kind != 's' {
			return invalid(path, op, "wants a string")
		}
		p, err := parseCIDR(v.str)
		if err != nil {
			return invalid(path, op, "wants an IPv4 or IPv6 CIDR block such as \"10.0.0.0/24\"")
		}
		// EventBridge refuses these three; say what to write instead.
		if a, _, _ := strings.Cut(v.str, "/"); p.Addr().Is6() && strings.Contains(a, ".") {
			return invalid(path, op, "wants an IPv6 block written in hexadecimal, without an IPv4 part")
		}
		if p.Addr().Is4In6() {
			// EventBridge reads an IPv4-mapped address as the IPv4 address, and the mask bits
			// as an IPv4 mask.
			if p.Bits() >= 32 {
				return invalid(path, op, "takes an IPv4-mapped IPv6 address only with fewer than 32 mask bits, counted as an IPv4 mask; write the IPv4 block instead")
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits())
		}
		if p.Bits() == p.Addr().BitLen() {
			return invalid(path, op, "does not take a block of one address (/32 for IPv4, /128 for IPv6); match the address as an exact string instead")
		}
		cd.ms = append(cd.ms, valueMatcher{op: opCIDR, pfx: p.Masked()})
	default:
		return invalid(path, op, "is not a known operator")
	}
	return nil
}

func (c *compiler) glob(path, op, s string) (*glob, error) {
	c.wildcards++
	if c.wildcards > MaxWildcardValues {
		return nil, tooComplex(path, op, "brings the pattern over "+strconv.Itoa(MaxWildcardValues)+" wildcard values")
	}
	g, stars, problem := parseGlob(s)
	if problem != "" {
		return nil, invalid(path, op, problem)
	}
	if stars > MaxWildcardStars {
		return nil, tooComplex(path, op, "has more than "+strconv.Itoa(MaxWildcardStars)+" \"*\" in one value")
	}
	return g, nil
}

const numberRangeText = "numbers must lie between -5e11 and 5e11 and have at most six decimals"

// butInner are the operators anything-but accepts in an object.
var butInner = map[string]bool{"prefix": true, "suffix": true, "equals-ignore-case": true, "wildcard": true}

func (c *compiler) anythingBut(v *jsonNode, path string) (*anythingBut, error) {
	const op = "anything-but"
	switch v.kind {
	case 's':
		return &anythingBut{kind: butStrings, strs: []string{v.str}, set: map[string]struct{}{v.str: {}}}, nil
	case 'n':
		num, ok := comparableNumber([]byte(v.str))
		if !ok {
			return nil, invalid(path, op, numberRangeText)
		}
		return &anythingBut{kind: butNumbers, nums: map[int64]struct{}{num: {}}}, nil
	case 'a':
		var strs []string
		nums := map[int64]struct{}{}
		for _, e := range v.vals {
			if err := c.count(path, op); err != nil {
				return nil, err
			}
			switch e.kind {
			case 's':
				strs = append(strs, e.str)
			case 'n':
				num, ok := comparableNumber([]byte(e.str))
				if !ok {
					return nil, invalid(path, op, numberRangeText)
				}
				nums[num] = struct{}{}
			default:
				return nil, invalid(path, op, "wants a list of only strings or only numbers")
			}
		}
		switch {
		case len(strs) > 0 && len(nums) == 0:
			return stringBut(butStrings, strs), nil
		case len(strs) == 0 && len(nums) > 0:
			return &anythingBut{kind: butNumbers, nums: nums}, nil
		}
		return nil, invalid(path, op, "wants a list of only strings or only numbers")
	case 'o':
		if len(v.keys) != 1 {
			return nil, invalid(path, op, `wants one of "prefix", "suffix", "equals-ignore-case" or "wildcard" in its object`)
		}
		inner := v.keys[0]
		// Checked before the operand, as EventBridge does: an operand of the right type would
		// not make "numeric" or "exists" usable here.
		if !butInner[inner] {
			return nil, invalid(path, op, "does not support \""+inner+"\" in its object, only \"prefix\", \"suffix\", \"equals-ignore-case\" and \"wildcard\"")
		}
		var strs []string
		switch w := v.vals[0]; w.kind {
		case 's':
			strs = []string{w.str}
		case 'a':
			for _, e := range w.vals {
				if e.kind != 's' {
					return nil, invalid(path, op, "wants strings for \""+inner+"\"")
				}
				strs = append(strs, e.str)
			}
		default:
			return nil, invalid(path, op, "wants a string or a list of strings for \""+inner+"\"")
		}
		// An empty list would exclude nothing, so the operator would match every value.
		if len(strs) == 0 {
			return nil, invalid(path, op, "wants at least one string for \""+inner+"\"")
		}
		for range strs {
			if err := c.count(path, op); err != nil {
				return nil, err
			}
		}
		switch inner {
		case "prefix", "suffix":
			for _, s := range strs {
				if s == "" {
					return nil, invalid(path, op, "wants a non-empty \""+inner+"\"")
				}
			}
			if inner == "prefix" {
				return stringBut(butPrefix, strs), nil
			}
			return stringBut(butSuffix, strs), nil
		case "equals-ignore-case":
			for i, s := range strs {
				strs[i] = foldString(s)
			}
			return stringBut(butFold, strs), nil
		case "wildcard":
			a := &anythingBut{kind: butWildcard}
			for _, s := range strs {
				g, err := c.glob(path, op, s)
				if err != nil {
					return nil, err
				}
				a.globs = append(a.globs, g)
			}
			slices.SortFunc(a.globs, func(x, y *glob) int { return compareStrings(x.key(), y.key()) })
			return a, nil
		}
	}
	return nil, invalid(path, op, "wants a string, a number, a list of strings or of numbers, or an object")
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func stringBut(kind butKind, strs []string) *anythingBut {
	strs = slices.Clone(strs)
	slices.Sort(strs)
	strs = slices.Compact(strs)
	a := &anythingBut{kind: kind, strs: strs}
	if kind == butStrings || kind == butFold {
		a.set = make(map[string]struct{}, len(strs))
		for _, s := range strs {
			a.set[s] = struct{}{}
		}
	}
	return a
}

// numericRange compiles {"numeric": [op, n, (op, n)]} into a closed range of millionths.
func numericRange(v *jsonNode, path string) (valueMatcher, error) {
	const op = "numeric"
	m := valueMatcher{op: opNumeric, lo: math.MinInt64, hi: math.MaxInt64}
	if v.kind != 'a' {
		return m, invalid(path, op, "wants an array such as [\">\", 0, \"<=\", 5]")
	}
	num := func(i int) (int64, error) {
		if i >= len(v.vals) || v.vals[i].kind != 'n' {
			return 0, invalid(path, op, "wants a number after \""+v.vals[i-1].str+"\"")
		}
		n, ok := comparableNumber([]byte(v.vals[i].str))
		if !ok {
			return 0, invalid(path, op, numberRangeText)
		}
		return n, nil
	}
	if len(v.vals) == 0 || v.vals[0].kind != 's' {
		return m, invalid(path, op, "wants a comparison (\"=\", \"<\", \"<=\", \">\" or \">=\") first")
	}
	first := v.vals[0].str
	x, err := num(1)
	if err != nil {
		return m, err
	}
	switch first {
	case "=":
		m.lo, m.hi = x, x
	case "<":
		m.hi = x - 1
	case "<=":
		m.hi = x
	case ">":
		m.lo = x + 1
	case ">=":
		m.lo = x
	default:
		return m, invalid(path, op, "has an unknown comparison \""+first+"\"")
	}
	if len(v.vals) == 2 {
		return m, nil
	}
	if first != ">" && first != ">=" {
		return m, invalid(path, op, "allows a second comparison only after \">\" or \">=\"")
	}
	if len(v.vals) > 4 {
		return m, invalid(path, op, "has "+strconv.Itoa(len(v.vals))+" terms, where a lower bound and an upper one take four, such as [\">\", 0, \"<=\", 5]")
	}
	second := v.vals[2].str
	if v.vals[2].kind != 's' || second != "<" && second != "<=" {
		return m, invalid(path, op, "wants \"<\" or \"<=\" after the lower bound")
	}
	y, err := num(3)
	if err != nil {
		return m, err
	}
	m.hi = y
	if second == "<" {
		m.hi = y - 1
	}
	if x >= y {
		return m, invalid(path, op, "wants the lower bound below the upper bound")
	}
	return m, nil
}

// parseCIDR reads an address block as EventBridge does: the mask bits are read as a decimal
// integer, which may carry a sign or leading zeros ("10.0.0.0/08", "/+8", "/-0"), where
// netip.ParsePrefix wants plain digits.
func parseCIDR(s string) (netip.Prefix, error) {
	a, m, ok := strings.Cut(s, "/")
	if !ok {
		return netip.Prefix{}, errors.New("no mask")
	}
	addr, err := netip.ParseAddr(a)
	if err != nil {
		return netip.Prefix{}, err
	}
	bits, err := strconv.Atoi(m)
	switch {
	case err != nil:
		return netip.Prefix{}, err
	case addr.Zone() != "":
		return netip.Prefix{}, errors.New("a zone in a block")
	case bits < 0 || bits > addr.BitLen():
		return netip.Prefix{}, errors.New("mask out of range")
	}
	return netip.PrefixFrom(addr, bits), nil
}
