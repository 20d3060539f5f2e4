package filter

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var long = flag.Bool("long", false, "run the long variants of the randomized tests")

// The randomized tests generate events and patterns from a small vocabulary, so that values,
// paths and array shapes collide often, and hold three implementations to one another:
//
//   - the Matcher, with every pattern loaded at once;
//   - each Pattern on its own (the reference search in evalSteps over the flattener's fields,
//     which a Pattern with several branches leaves to the automaton, and which is then run
//     on its own too);
//   - an oracle that decodes the event with encoding/json, enumerates its leaves with their
//     array positions (no array is left out), and searches the branches itself.

var (
	genKeys    = []string{"a", "b", "c", "a.b", ".c"}
	genStrings = []string{`"x"`, `"y"`, `"xy"`, `"X"`, `""`, `"10.0.0.1"`, `"2001:db8::1"`, `"a*b"`, `"é"`, `"\u0078"`, `"x\"y"`}
	genNumbers = []string{"0", "1", "1.5", "-2", "5.0", "3e2", "300", "1e-7", "6e11", "12345678901234567890", "0.000001"}
)

// gen draws events and patterns. With nest set, values are also wrapped in runs of nested
// arrays, of one element or with a scalar or a small object beside the value, so that fields lie
// in many arrays, only some of which can set two values apart. With spell set, an object may hold
// both "a" and "a.b", spelling the paths under a.b two ways, which the package refuses when a
// rule reads them; without it, the two keys meet only in different objects.
type gen struct {
	r     *rand.Rand
	nest  bool
	spell bool
	strs  bool // patterns test mostly exact strings
}

func (g gen) pick(s []string) string { return s[g.r.IntN(len(s))] }

func (g gen) scalar() string {
	switch g.r.IntN(10) {
	case 0, 1, 2, 3:
		return g.pick(genStrings)
	case 4, 5, 6:
		return g.pick(genNumbers)
	case 7:
		return "true"
	case 8:
		return "false"
	default:
		return "null"
	}
}

func (g gen) value(depth int) string {
	if g.nest && g.r.IntN(4) == 0 {
		v := g.value(depth)
		for range 1 + g.r.IntN(6) {
			switch g.r.IntN(4) {
			case 0, 1:
				v = "[" + v + "]"
			case 2:
				v = "[" + v + "," + g.scalar() + "]"
			default:
				v = "[" + g.object(3) + "," + v + "]"
			}
		}
		return v
	}
	r := g.r.IntN(10)
	switch {
	case depth < 3 && r < 3:
		return g.object(depth + 1)
	case depth < 3 && r < 5:
		n := g.r.IntN(4)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = g.value(depth + 1)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	return g.scalar()
}

func (g gen) object(depth int) string {
	keys := slices.Clone(genKeys)
	g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	keys = keys[:1+g.r.IntN(len(keys))]
	if !g.spell && slices.Contains(keys, "a") && slices.Contains(keys, "a.b") {
		keys = slices.DeleteFunc(keys, func(k string) bool { return k == "a.b" })
	}
	if g.spell && g.r.IntN(4) == 0 {
		keys = append(keys, g.pick(keys)) // a repeated key
	}
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		if k == "a" && g.r.IntN(4) == 0 {
			b.WriteString(`"\u0061"`) // an escaped key
		} else {
			b.WriteString(`"` + k + `"`)
		}
		b.WriteString(":" + g.value(depth))
	}
	b.WriteString("}")
	return b.String()
}

func (g gen) path() []string {
	n := 1 + g.r.IntN(3)
	p := make([]string, n)
	for i := range p {
		p[i] = g.pick(genKeys[:3])
		if g.r.IntN(8) == 0 {
			p[i] = "" // meets event keys starting with '.', such as ".c"
		}
	}
	return p
}

func (g gen) operand() any {
	num := func() json.Number {
		return json.Number(g.pick([]string{"0", "1", "1.5", "-2", "5", "300", "0.000001"}))
	}
	str := func() string { return g.pick([]string{"x", "y", "xy", "X", "", "a", "é"}) }
	nonEmpty := func() string { return g.pick([]string{"x", "y", "X", "a", "é"}) }
	if g.strs {
		switch g.r.IntN(10) {
		case 8:
			return map[string]any{"exists": false}
		case 9:
		default:
			return str()
		}
	}
	switch g.r.IntN(22) {
	case 0, 1:
		var s string
		_ = json.Unmarshal([]byte(g.pick(genStrings)), &s)
		return s
	case 2, 3:
		return json.Number(g.pick(genNumbers))
	case 4:
		return g.r.IntN(2) == 0
	case 5:
		return nil
	case 6:
		return map[string]any{"prefix": str()}
	case 7:
		return map[string]any{"suffix": str()}
	case 8:
		return map[string]any{"equals-ignore-case": str()}
	case 9:
		return map[string]any{g.pick([]string{"prefix", "suffix"}): map[string]any{"equals-ignore-case": str()}}
	case 10:
		return map[string]any{"wildcard": g.pick([]string{"x*", "*y", "*", "x*y", `a\*b`, "*.*", "x", "*x*", "*x*y"})}
	case 11:
		return map[string]any{"anything-but": str()}
	case 12:
		return map[string]any{"anything-but": []any{str(), str()}}
	case 13:
		return map[string]any{"anything-but": num()}
	case 14:
		return map[string]any{"anything-but": []any{num(), num()}}
	case 15:
		inner := g.pick([]string{"prefix", "suffix", "equals-ignore-case", "wildcard"})
		v := nonEmpty()
		if inner == "wildcard" {
			v += "*"
		}
		return map[string]any{"anything-but": map[string]any{inner: v}}
	case 16, 17:
		ops := [][]any{{">", num()}, {">=", num()}, {"<", num()}, {"<=", num()}, {"=", num()}, {">", json.Number("-3"), "<=", json.Number("2")}, {">=", json.Number("0"), "<", json.Number("400")}}
		return map[string]any{"numeric": ops[g.r.IntN(len(ops))]}
	case 18, 19:
		return map[string]any{"exists": g.r.IntN(2) == 0}
	default:
		return map[string]any{"cidr": g.pick([]string{"10.0.0.0/8", "2001:db8::/32", "0.0.0.0/0"})}
	}
}

// fields builds an object pattern with one to three fields.
func (g gen) fields(into map[string]any) {
	for range 1 + g.r.IntN(3) {
		p := g.path()
		m := into
		ok := true
		for _, k := range p[:len(p)-1] {
			next, exists := m[k]
			if !exists {
				nm := map[string]any{}
				m[k] = nm
				m = nm
				continue
			}
			nm, isMap := next.(map[string]any)
			if !isMap {
				ok = false
				break
			}
			m = nm
		}
		last := p[len(p)-1]
		if _, exists := m[last]; !ok || exists {
			continue
		}
		vals := make([]any, 1+g.r.IntN(3))
		for i := range vals {
			vals[i] = g.operand()
		}
		m[last] = vals
	}
}

func (g gen) pattern() []byte {
	p := map[string]any{}
	g.fields(p)
	if g.r.IntN(4) == 0 {
		alts := make([]any, 2+g.r.IntN(2))
		for i := range alts {
			a := map[string]any{}
			g.fields(a)
			alts[i] = a
		}
		p["$or"] = alts
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(p)
	return bytes.TrimSpace(buf.Bytes())
}

// oracle

// oelem is an element of an array: the array's number in document order and the index.
type oelem struct{ arr, idx int32 }

type oleaf struct {
	path string
	v    value
	mem  []oelem
}

// onode is a JSON value with its object members in order, duplicate keys kept.
type onode struct {
	v    any // a leaf value as encoding/json decodes it (numbers as json.Number), or nil
	obj  bool
	arr  bool
	keys []string
	kids []*onode
}

func oracleDecode(t testing.TB, raw []byte) *onode {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var read func() *onode
	read = func() *onode {
		tok, err := dec.Token()
		require.NoError(t, err)
		switch tok {
		case json.Delim('{'):
			n := &onode{obj: true}
			for dec.More() {
				k, err := dec.Token()
				require.NoError(t, err)
				n.keys = append(n.keys, k.(string))
				n.kids = append(n.kids, read())
			}
			_, err := dec.Token()
			require.NoError(t, err)
			return n
		case json.Delim('['):
			n := &onode{arr: true}
			for dec.More() {
				n.kids = append(n.kids, read())
			}
			_, err := dec.Token()
			require.NoError(t, err)
			return n
		}
		return &onode{v: tok}
	}
	return read()
}

// oracleLeaves lists the event's leaf values with their array positions, reading every copy of
// a repeated key.
func oracleLeaves(root *onode) []oleaf {
	var out []oleaf
	arrays := int32(0)
	var walk func(x *onode, path *string, mem []oelem)
	walk = func(x *onode, path *string, mem []oelem) {
		switch {
		case x.obj:
			for i, k := range x.keys {
				p := k
				if path != nil {
					p = *path + "." + k
				}
				walk(x.kids[i], &p, mem)
			}
		case x.arr:
			id := arrays
			arrays++
			for i, e := range x.kids {
				if e.obj || e.arr {
					walk(e, path, append(slices.Clip(mem), oelem{arr: id, idx: int32(i)}))
				} else {
					walk(e, path, mem) // a value that is an element has no position
				}
			}
		default:
			switch v := x.v.(type) {
			case string:
				out = append(out, oleaf{path: *path, v: value{kind: kindString, text: []byte(v)}, mem: mem})
			case json.Number:
				n, ok := comparableNumber([]byte(v))
				out = append(out, oleaf{path: *path, v: value{kind: kindNumber, text: []byte(v), num: n, numOK: ok}, mem: mem})
			case bool:
				k := kindFalse
				if v {
					k = kindTrue
				}
				out = append(out, oleaf{path: *path, v: value{kind: k}, mem: mem})
			case nil:
				out = append(out, oleaf{path: *path, v: value{kind: kindNull}, mem: mem})
			}
		}
	}
	walk(root, nil, nil)
	return out
}

// oracleAmbiguous lists the paths, as segments, that the event reaches through object keys twice
// where neither reach lies in an element of an array that the other is outside of, that is,
// where the array elements around one reach (every array, outermost first) begin with those
// around the other.
func oracleAmbiguous(root *onode) [][]string {
	type reached struct {
		segs  []string
		elems []oelem
	}
	byPath := map[string][]reached{}
	arrays := int32(0)
	var walk func(x *onode, segs []string, elems []oelem)
	walk = func(x *onode, segs []string, elems []oelem) {
		switch {
		case x.obj:
			for i, k := range x.keys {
				next := append(slices.Clip(segs), strings.Split(k, ".")...)
				key := strings.Join(next, ".")
				byPath[key] = append(byPath[key], reached{next, elems})
				walk(x.kids[i], next, elems)
			}
		case x.arr:
			id := arrays
			arrays++
			for i, e := range x.kids {
				walk(e, segs, append(slices.Clip(elems), oelem{arr: id, idx: int32(i)}))
			}
		}
	}
	walk(root, nil, nil)
	var out [][]string
	for _, rs := range byPath {
	pairs:
		for i, a := range rs {
			for _, b := range rs[:i] {
				n := min(len(a.elems), len(b.elems))
				k := 0
				for k < n && a.elems[k] == b.elems[k] {
					k++
				}
				if k == n || a.elems[k].arr != b.elems[k].arr {
					out = append(out, a.segs)
					break pairs
				}
			}
		}
	}
	return out
}

// oracleRefuses reports whether a rule reading paths refuses an event with the ambiguous paths
// amb: when one of them is a rule's path or leads to one.
func oracleRefuses(amb [][]string, paths []string) bool {
	for _, p := range paths {
		l := strings.Split(p, ".")
		for _, a := range amb {
			if len(a) <= len(l) && slices.Equal(a, l[:len(a)]) {
				return true
			}
		}
	}
	return false
}

func oracleConsistent(chosen, mem []oelem) bool {
	for _, e := range mem {
		for _, c := range chosen {
			if c.arr == e.arr && c.idx != e.idx {
				return false
			}
		}
	}
	return true
}

func oracleMatch(p *Pattern, leaves []oleaf) bool {
	var fold []byte
	var search func(steps []step, chosen []oelem) bool
	search = func(steps []step, chosen []oelem) bool {
		if len(steps) == 0 {
			return true
		}
		st := steps[0]
		seen := false
		for i := range leaves {
			l := &leaves[i]
			if l.path != st.path || !oracleConsistent(chosen, l.mem) {
				continue
			}
			seen = true
			v := l.v
			v.fold = &fold
			if st.c.matches(&v) && search(steps[1:], append(slices.Clip(chosen), l.mem...)) {
				return true
			}
		}
		return st.c.absentOK && !seen && search(steps[1:], chosen)
	}
	for _, b := range p.branches {
		// The oracle takes the fields in path order, as EventBridge does, not in the order
		// Pattern and Matcher take them.
		steps := slices.Clone(b.steps)
		slices.SortStableFunc(steps, func(x, y step) int { return strings.Compare(x.path, y.path) })
		if search(steps, nil) {
			return true
		}
	}
	return false
}

func TestDifferentialMatcherPatternOracle(t *testing.T) {
	seeds, nPatterns, nEvents := 3, 300, 150
	if *long {
		seeds, nPatterns, nEvents = 40, 500, 400
	}
	// The second round narrows the fields at every step (options), which only events with
	// large arrays would otherwise exercise. The third round wraps values in runs of nested
	// arrays. The fourth lets an object repeat a key or spell the paths under a.b two ways,
	// which the package refuses when a rule reads them: the Matcher, holding rules on nearly
	// every path, refuses many events, for all its rules, and that round checks that all three
	// refuse the same events while the single patterns, each reading fewer paths, still match
	// the rest. The fifth is the third with the arrays' leaves worked out from the path table
	// (holdAll), as for an event whose arrays and paths outgrow holdMax. The sixth is the
	// second and third with patterns testing mostly exact strings, and the Matcher looking them
	// up in the value index wherever it can, which only events with many values at one path
	// would otherwise make it do.
	for round, low := range []int{0, lowNarrow, lowNarrow, 0, lowNarrow | lowHold, lowNarrow | lowKeyed} {
		lim := lowLimits(low)
		for seed := range seeds {
			t.Run(fmt.Sprintf("round%d/seed%d", round, seed), func(t *testing.T) {
				g := gen{r: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), nest: round == 2 || round >= 4, spell: round == 3, strs: round == 5}
				differentialRound(t, g, nPatterns, nEvents, lim)
			})
		}
	}
}

func differentialRound(t *testing.T, g gen, nPatterns, nEvents int, lim limits) {
	m := NewMatcher()
	var names []string
	pats := map[string]*Pattern{}
	srcs := map[string][]byte{}
	for i := 0; len(names) < nPatterns && i < nPatterns*3; i++ {
		src := g.pattern()
		p, err := ParsePattern(src)
		if err != nil {
			continue // the generator can produce, say, an empty $or alternative
		}
		name := fmt.Sprintf("p%03d", len(names))
		require.NoError(t, m.AddPattern(name, p))
		names = append(names, name)
		pats[name] = p
		srcs[name] = src
	}
	require.Greater(t, len(names), nPatterns/2)
	matchedSomething, refusedSomewhere, refusedByMatcher := 0, 0, 0
	for range nEvents {
		ev := []byte(g.object(0))
		root := oracleDecode(t, ev)
		leaves := oracleLeaves(root)
		amb := oracleAmbiguous(root)
		got, err := m.current().matchRaw(ev, nil, lim)
		var want []string
		refused := false
		for _, n := range names {
			p := pats[n]
			single, err := p.matchRaw(ev, lim)
			if oracleRefuses(amb, p.table.paths) {
				require.ErrorIs(t, err, ErrInvalidEvent, "Pattern vs oracle: refused\npattern %s\nevent   %s", srcs[n], ev)
				require.False(t, single)
				refused = true
				continue
			}
			require.NoError(t, err, "Pattern vs oracle: accepted\npattern %s\nevent   %s", srcs[n], ev)
			oracle := oracleMatch(p, leaves)
			if len(p.branches) > 1 {
				require.Equal(t, oracle, searchBranches(t, p, ev, lim), "branch by branch vs oracle\npattern %s\nevent   %s", srcs[n], ev)
			}
			require.Equal(t, oracle, single, "Pattern vs oracle\npattern %s\nevent   %s", srcs[n], ev)
			if single {
				want = append(want, n)
			}
		}
		if refused {
			// The Matcher reads every rule's paths, so it refuses the event for all of them.
			require.ErrorIs(t, err, ErrInvalidEvent, "event %s", ev)
			require.Empty(t, got)
			refusedByMatcher++
			if len(want) > 0 {
				refusedSomewhere++
			}
			continue
		}
		require.NoError(t, err, "event %s", ev)
		require.Equal(t, want, got, "Matcher vs Patterns on event %s", ev)
		if len(want) > 0 {
			matchedSomething++
		}
	}
	// The vocabulary is small on purpose: most events must match some pattern, or the
	// comparison would prove little.
	t.Logf("%d events refused by the Matcher, %d of them matched by some rule alone; %d accepted and matched", refusedByMatcher, refusedSomewhere, matchedSomething)
	if g.spell {
		require.Greater(t, refusedSomewhere, nEvents/4, "events the Matcher refuses and some rule alone matches")
		require.Greater(t, matchedSomething, nEvents/4)
	} else {
		require.Zero(t, refusedByMatcher)
		require.Greater(t, matchedSomething, nEvents/2)
	}
}

// searchBranches matches p against ev branch by branch (evalSteps), as MatchRaw does for a
// pattern of one branch.
func searchBranches(t *testing.T, p *Pattern, ev []byte, lim limits) bool {
	ok, err := p.searchRaw(ev, lim)
	require.NoError(t, err)
	return ok
}

// The limits tests lower, so that small events take the means a match keeps for large ones.
const (
	lowNarrow     = 1 << iota // options narrows the fields at every step
	lowHold                   // the arrays' leaves are worked out from the path table (holdAll)
	lowKeyed                  // exact strings are looked up in the value index from one value on
	lowKeyedRatio             // ... or from as many values as strings on, when lowKeyed is not set
)

// lowLimits returns defaultLimits lowered as the bits of low say.
func lowLimits(low int) limits {
	lim := defaultLimits
	if low&lowNarrow != 0 {
		lim.optionsMin = 1
	}
	if low&lowHold != 0 {
		lim.holdFloor = -1 << 30 // below any event's half, on 32 bits too
	}
	switch {
	case low&lowKeyed != 0:
		lim.keyedMin, lim.keyedRatio = 1, 0
	case low&lowKeyedRatio != 0:
		lim.keyedMin, lim.keyedRatio = 1, 1
	}
	return lim
}

// TestMattersByPath holds the answer matters works out from the path table, when an event's
// arrays and the leaves in them outgrow holdMax, to the one holdLeaves gives, for every array
// where consistency applies, in random events with nested arrays, and random sets of leaves.
func TestMattersByPath(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(11, 11)), nest: true}
	seen := map[string]bool{}
	var paths []string
	for range 100 {
		p, err := ParsePattern(g.pattern())
		if err != nil {
			continue
		}
		for _, path := range p.table.paths {
			if !seen[path] {
				seen[path] = true
				paths = append(paths, path)
			}
		}
	}
	table := newPathTable(paths)
	words := (len(paths) + 63) / 64
	fe := new(flatEvent)
	checked, held := 0, 0
	for range 300 {
		ev := []byte(g.object(0))
		if fe.flatten(table, ev, defaultLimits) != nil {
			continue
		}
		require.False(t, fe.holdAll)
		fe.markOwnHeld(table)
		leaves := make([]uint64, words)
		for a := range int32(len(fe.arrays)) {
			if !fe.arrays[a] {
				continue
			}
			for range 8 {
				for w := range leaves {
					leaves[w] = g.r.Uint64() & g.r.Uint64()
				}
				want := fe.matters(a, leaves)
				require.Equal(t, want, fe.mattersByPath(a, leaves), "array %d of %s", a, ev)
				checked++
				if want {
					held++
				}
			}
		}
	}
	t.Logf("%d checked, %d holding a leaf", checked, held)
	require.Greater(t, held, checked/10)
	require.Greater(t, checked-held, checked/10)
}

// TestDifferentialMatcherChanges checks that Add, replace and Remove are seen by the next match.
func TestDifferentialMatcherChanges(t *testing.T) {
	g := gen{r: rand.New(rand.NewPCG(7, 7))}
	m := NewMatcher()
	live := map[string]*Pattern{}
	for step := range 400 {
		name := fmt.Sprintf("r%d", g.r.IntN(40))
		if g.r.IntN(3) == 0 {
			_, had := live[name]
			require.Equal(t, had, m.Remove(name))
			delete(live, name)
		} else if p, err := ParsePattern(g.pattern()); err == nil {
			require.NoError(t, m.AddPattern(name, p))
			live[name] = p
		}
		ev := []byte(g.object(0))
		got, err := m.MatchRaw(ev, nil)
		require.NoError(t, err)
		var want []string
		for n, p := range live {
			if ok, _ := p.MatchRaw(ev); ok {
				want = append(want, n)
			}
		}
		slices.Sort(want)
		require.Equal(t, want, got, "step %d", step)
		require.Equal(t, len(live), m.Len())
	}
}
