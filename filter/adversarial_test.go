package filter_test

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/filter"
)

// objects returns a JSON array of n copies of obj.
func objects(obj string, n int) string {
	return "[" + strings.TrimSuffix(strings.Repeat(obj+",", n), ",") + "]"
}

// objectsThen returns a JSON array of n copies of obj followed by last.
func objectsThen(obj string, n int, last string) string {
	return "[" + strings.Repeat(obj+",", n) + last + "]"
}

// assertLinearWork matches p and m (which holds p as its only rule of that outcome) against
// event(n) and event(2n), checks the outcome is want, and that neither's work more than about
// doubles with the event.
func assertLinearWork(t *testing.T, p *filter.Pattern, m *filter.Matcher, event func(int) string, n int, want bool) {
	t.Helper()
	var pw, mw [2]int
	for i, size := range []int{n, 2 * n} {
		ev := []byte(event(size))
		got, work, err := filter.PatternWork(p, ev)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		pw[i] = work
		names, work, err := filter.MatcherWork(m, ev)
		require.NoError(t, err)
		assert.Equal(t, want, len(names) == 1)
		mw[i] = work
	}
	t.Logf("Pattern work %d then %d, Matcher work %d then %d", pw[0], pw[1], mw[0], mw[1])
	assert.LessOrEqual(t, float64(pw[1]), 2.5*float64(pw[0]), "Pattern work grows faster than the event")
	assert.LessOrEqual(t, float64(mw[1]), 2.5*float64(mw[0]), "Matcher work grows faster than the event")
}

// TestAdversarialArrays feeds events built to make a naive array-consistent search explode:
// several independent arrays of many objects, where every combination of elements has to be
// ruled out. Matching must be correct and finish: a search that tries the combinations would need
// 3000^3 steps, hours, so a bound of seconds tells it apart however loaded the machine is, while a
// bound near the milliseconds the search takes would only measure the load.
func TestAdversarialArrays(t *testing.T) {
	const n = 3000
	event := []byte(`{"a":` + objects(`{"x":1,"w":1}`, n) + `,"b":` + objects(`{"y":1}`, n) +
		`,"c":` + objects(`{"z":1}`, n) + `,"d":` + objects(`{"p":[1,2,3],"q":{"r":[1,{"s":1}]}}`, n) + `}`)
	cases := []struct {
		pattern string
		want    bool
	}{
		{`{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[2]}}`, false},
		{`{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]}}`, true},
		{`{"a":{"x":[1],"w":[2]},"b":{"y":[1]}}`, false},
		{`{"a":{"x":[1],"w":[{"exists":false}]},"b":{"y":[{"exists":true}]}}`, false},
		{`{"a":{"w":[{"exists":false}],"x":[1]},"c":{"z":[1]}}`, false},
		{`{"d":{"p":[3],"q":{"r":[1],"s":[1]}},"b":{"y":[2]}}`, false},
		{`{"d":{"p":[{"numeric":[">",0]}],"q":{"r":{"s":[1]}}},"c":{"z":[1]}}`, true},
		{`{"d":{"p":[1],"q":{"r":[1]}},"a":{"x":[1],"w":[3]}}`, false},
	}
	m := filter.NewMatcher()
	for i, c := range cases {
		require.NoError(t, m.Add(string(rune('A'+i)), []byte(c.pattern)))
	}
	const bound = 20 * time.Second
	for i, c := range cases {
		p := filter.MustParsePattern(c.pattern)
		start := time.Now()
		got, err := p.MatchRaw(event)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, c.pattern)
		assert.Less(t, time.Since(start), bound, "Pattern %d took too long", i)
	}
	start := time.Now()
	got, err := m.MatchRaw(event, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"B", "G"}, got)
	assert.Less(t, time.Since(start), bound, "Matcher took too long")
}

// TestAdversarialNestedArraysLinear covers independent arrays of objects that share one element
// of an enclosing array: that element's position stays part of the search's state, and a search
// that only merged walks with no positions left would try every combination of elements. It
// also covers patterns testing two fields of one long array, where looking at every element's
// value for every element chosen would be quadratic. The work (steps tried plus values looked
// at, counted by the package) must grow linearly with the event: doubling the arrays may at most
// about double it, where a quadratic search would multiply it by four, and one trying
// combinations by eight or more.
func TestAdversarialNestedArraysLinear(t *testing.T) {
	four := func(n int) string {
		return `{"a":` + objects(`{"x":1}`, n) + `,"b":` + objects(`{"y":1}`, n) +
			`,"c":` + objects(`{"z":1}`, n) + `,"d":` + objects(`{"w":1}`, n) + `}`
	}
	cases := []struct {
		name    string
		pattern string
		event   func(n int) string
		want    bool
	}{
		{"one enclosing element", `{"o":{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]},"d":{"w":[2]}}}`,
			func(n int) string { return `{"o":[` + four(n) + `]}` }, false},
		{"one enclosing element, match", `{"o":{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]},"d":{"w":[1]}}}`,
			func(n int) string { return `{"o":[` + four(n) + `]}` }, true},
		{"several enclosing elements", `{"o":{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]},"d":{"w":[2]}}}`,
			func(n int) string { return `{"o":[` + four(n) + `,` + four(n) + `,{"a":[{"x":1}]}]}` }, false},
		{"two enclosing arrays", `{"p":{"o":{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]},"d":{"w":[2]}}}}`,
			func(n int) string { return `{"p":[{"o":[` + four(n) + `]},{"o":[` + four(n) + `]}]}` }, false},
		{"enclosing array tested too", `{"o":{"k":[1],"a":{"x":[1]},"b":{"y":[1]},"d":{"w":[2]}}}`,
			func(n int) string {
				return `{"o":[{"k":1,"a":` + objects(`{"x":1}`, n) + `,"b":` + objects(`{"y":1}`, n) + `,"d":` + objects(`{"w":1}`, n) + `}]}`
			}, false},
		{"two fields of one array", `{"a":{"w":[1],"x":[2]}}`,
			func(n int) string { return `{"a":` + objects(`{"w":1,"x":1}`, 4*n) + `}` }, false},
		{"two fields of one array, enclosed", `{"o":{"a":{"w":[1],"x":[2]}}}`,
			func(n int) string {
				return `{"o":[{"a":` + objects(`{"w":1,"x":1}`, 2*n) + `},{"a":` + objects(`{"w":1,"x":1}`, 2*n) + `}]}`
			}, false},
		{"absence after a field of the same array", `{"a":{"w":[1],"x":[{"exists":false}]}}`,
			func(n int) string { return `{"a":` + objects(`{"w":1,"x":1}`, 4*n) + `}` }, false},
		{"one path, an array and a dotted key", `{"a":{"w":[1],"x":[2]}}`,
			func(n int) string { return `{"a":` + objects(`{"w":1}`, 4*n) + `,"a.x":` + objects(`3`, 4*n) + `}` }, false},
		{"absence in the last array", `{"o":{"a":{"x":[1]},"b":{"y":[1]},"c":{"z":[1]},"d":{"w":[{"exists":false}]}}}`,
			func(n int) string { return `{"o":[` + four(n) + `]}` }, false},
		{"two fields of one array, five arrays deep", `{"a":{"k":[1],"w":[{"numeric":[">",5]}]}}`,
			func(n int) string { return `{"a":[[[[` + objects(`{"k":1,"w":1}`, 4*n) + `]]]]}` }, false},
		{"two fields of one array, nine arrays deep", `{"a":{"k":[1],"w":[{"numeric":[">",5]}]}}`,
			func(n int) string {
				return `{"a":[[[[[[[[` + objects(`{"k":1,"w":1}`, 4*n) + `,` + objects(`{"k":1,"w":6}`, 1) + `]]]]]]]]}`
			}, true},
		{"a key that prefixes another, with one between", `{"a":[{"numeric":[">",0]}],"a-b":[{"numeric":[">",0]}],"a.x":[5]}`,
			func(n int) string {
				return `{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"a-b":` + objects(`1`, 4*n) + `}`
			}, false},
		{"a key that prefixes another, as selective", `{"a":[{"numeric":[">",0]}],"a-b":[{"numeric":[">",0]}],"a.x":[{"numeric":[">",1]}]}`,
			func(n int) string {
				return `{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"a-b":` + objects(`1`, 4*n) + `}`
			}, false},
		{"a key that prefixes another, with absence", `{"a":[{"numeric":[">",0]}],"a-b":[{"numeric":[">",0]}],"a.x":[5],"z":[{"exists":false}]}`,
			func(n int) string {
				return `{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"a-b":` + objects(`1`, 4*n) + `}`
			}, false},
		{"an absence test between two keys that prefix each other", `{"a":[{"numeric":[">",0]}],"a-b":[{"exists":false}],"a.x":[5]}`,
			func(n int) string {
				return `{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"a-b":` + objects(`1`, 4*n) + `}`
			}, false},
		// The absence test splits a's fields; another key's more selective field must not come
		// between them while the walk holds a position in a's array.
		{"an absence test inside one key's fields, another key beside", `{"a":{"k":[1],"m":[{"exists":false}],"x":[{"numeric":[">",5]}]},"b":{"k":[1]}}`,
			func(n int) string {
				return `{"a":` + objects(`{"k":1,"x":1}`, 4*n) + `,"b":` + objects(`{"k":1}`, 4*n) + `}`
			}, false},
		// Below the top level too: the absence test elsewhere under t must not leave t.a's fields
		// apart with t.a-b between them.
		{"prefixing keys one level down, an absence test beside", `{"t":{"a":[{"numeric":[">",0]}],"a-b":[1],"a.x":[5],"m":[{"exists":false}]}}`,
			func(n int) string {
				return `{"t":{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"a-b":` + objects(`1`, 4*n) + `}}`
			}, false},
		{"an absence test between prefixing keys, another key beside", `{"a":[{"numeric":[">",0]}],"a-b":[{"exists":false}],"a.x":[{"numeric":[">",5]}],"b":{"k":[1]}}`,
			func(n int) string {
				return `{"a":[` + strings.Repeat(`[1],`, 4*n) + `{"x":1}],"b":` + objects(`{"k":1}`, 4*n) + `}`
			}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			const n = 24
			p := filter.MustParsePattern(c.pattern)
			m := filter.NewMatcher()
			require.NoError(t, m.Add("r", []byte(c.pattern)))
			assertLinearWork(t, p, m, c.event, n, c.want)
		})
	}
}

// TestAdversarialSiblingArraysLinear covers patterns that test two or more fields in each of
// several arrays of objects that lie side by side. Each field of an array must be taken from the
// element chosen for the array's other fields, so a walk that moved to the next array before
// finishing one would hold a position in every array at once: n^k states for k arrays of n
// objects, seconds and gigabytes for a 3 KB event. The work must grow linearly with the event, as
// in TestAdversarialNestedArraysLinear; sizes are small enough that a search trying the
// combinations ends too, within a second, so the test fails rather than hangs.
func TestAdversarialSiblingArraysLinear(t *testing.T) {
	const xw = `"x":[1],"w":[{"numeric":[">",5]}]`
	arrays := func(keys string, elem string) func(n int) string {
		return func(n int) string {
			var b strings.Builder
			for i, k := range keys {
				if i > 0 {
					b.WriteString(",")
				}
				b.WriteString(`"` + string(k) + `":` + objects(elem, n))
			}
			return "{" + b.String() + "}"
		}
	}
	pattern := func(keys string, fields string) string {
		var b strings.Builder
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			b.WriteString(`"` + string(k) + `":{` + fields + `}`)
		}
		return "{" + b.String() + "}"
	}
	cases := []struct {
		name    string
		n       int
		pattern string
		event   func(n int) string
		want    bool
	}{
		{"two arrays", 24, pattern("ab", xw), arrays("ab", `{"x":1,"w":0}`), false},
		{"three arrays", 24, pattern("abc", xw), arrays("abc", `{"x":1,"w":0}`), false},
		{"four arrays", 12, pattern("abcd", xw), arrays("abcd", `{"x":1,"w":0}`), false},
		{"four arrays, match in the last elements", 12, pattern("abcd", xw),
			func(n int) string {
				o := strings.TrimSuffix(objects(`{"x":1,"w":0}`, n), "]") + `,{"x":1,"w":6}]`
				return `{"a":` + o + `,"b":` + o + `,"c":` + o + `,"d":` + o + `}`
			}, true},
		{"three fields of each array", 12, pattern("abcd", `"x":[1],"y":[{"prefix":"v"}],"w":[{"numeric":[">",5]}]`),
			arrays("abcd", `{"x":1,"y":"v1","w":0}`), false},
		{"arrays under nested keys", 24, `{"p":{"a":{` + xw + `},"b":{` + xw + `}},"q":{"c":{` + xw + `}}}`,
			func(n int) string {
				o := objects(`{"x":1,"w":0}`, n)
				return `{"p":{"a":` + o + `,"b":` + o + `},"q":{"c":` + o + `}}`
			}, false},
		{"sibling arrays in an enclosing array", 12, `{"o":` + pattern("abc", xw) + `}`,
			func(n int) string { e := arrays("abc", `{"x":1,"w":0}`)(n); return `{"o":[` + e + `,` + e + `]}` }, false},
		{"sibling arrays of arrays", 12, pattern("abc", xw),
			func(n int) string {
				o := objects(`{"x":1,"w":0}`, n)
				return `{"a":[` + o + `,` + o + `],"b":[` + o + `,` + o + `],"c":[` + o + `,` + o + `]}`
			}, false},
		{"nested sibling arrays", 12, `{"a":{"x":[1],"w":[{"numeric":[">",5]}],"i":` + pattern("jk", xw) + `}}`,
			func(n int) string {
				inner := arrays("jk", `{"x":1,"w":0}`)(n)
				return `{"a":` + objects(`{"x":1,"w":0,"i":`+inner+`}`, 2) + `}`
			}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filter.MustParsePattern(c.pattern)
			m := filter.NewMatcher()
			require.NoError(t, m.Add("r", []byte(c.pattern)))
			require.NoError(t, m.Add("other", []byte(`{"source":["x"]}`)))
			assertLinearWork(t, p, m, c.event, c.n, c.want)
		})
	}
}

// TestAdversarialSharedStepsLinear covers rules that begin with the same step, so that the
// Matcher walks them together for a while, when one of them needs the array position that step
// chose and the others do not: a walk that kept the position for all of them would look at the
// other rules' fields once for each element of the array, n*n for two arrays of n objects.
func TestAdversarialSharedStepsLinear(t *testing.T) {
	const num = `{"numeric":[">",5]}`
	cases := []struct {
		name  string
		rules []string
		event func(n int) string
		want  []string
	}{
		{"sibling arrays",
			[]string{`{"a":{"x":[1],"w":[` + num + `]}}`, `{"a":{"x":[1]},"c":{"z":[1]}}`, `{"a":{"x":[1]},"d":{"z":[1]}}`},
			func(n int) string {
				return `{"a":` + objects(`{"x":1,"w":0}`, n) + `,"c":` + objectsThen(`{"z":0}`, n, `{"z":1}`) +
					`,"d":` + objectsThen(`{"z":0}`, n, `{"z":1}`) + `}`
			}, []string{"B", "C"}},
		{"a field of the enclosing array",
			[]string{`{"o":{"a":{"x":[1],"w":[` + num + `]}}}`, `{"o":{"a":{"x":[1]},"k":[1]}}`},
			func(n int) string {
				return `{"o":[{"a":` + objects(`{"x":1,"w":0}`, n) + `,"k":` + objects(`0`, n) + `}]}`
			}, nil},
		{"an array inside the enclosing array",
			[]string{`{"o":{"a":{"x":[1],"w":[` + num + `]}}}`, `{"o":{"a":{"x":[1]},"k":{"v":[1]}}}`},
			func(n int) string {
				return `{"o":[{"a":` + objects(`{"x":1,"w":0}`, n) + `,"k":` + objectsThen(`{"v":0}`, n, `{"v":1}`) + `}]}`
			}, []string{"B"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := filter.NewMatcher()
			for i, r := range c.rules {
				require.NoError(t, m.Add(string(rune('A'+i)), []byte(r)))
			}
			const n = 48
			var mw [2]int
			for i, size := range []int{n, 2 * n} {
				event := []byte(c.event(size))
				var want []string
				for i, r := range c.rules {
					ok, err := filter.MustParsePattern(r).MatchRaw(event)
					require.NoError(t, err)
					if ok {
						want = append(want, string(rune('A'+i)))
					}
				}
				require.Equal(t, c.want, want, "the case's expectation")
				names, work, err := filter.MatcherWork(m, event)
				require.NoError(t, err)
				assert.Equal(t, c.want, names)
				mw[i] = work
			}
			t.Logf("Matcher work %d then %d", mw[0], mw[1])
			assert.LessOrEqual(t, float64(mw[1]), 2.5*float64(mw[0]), "Matcher work grows faster than the event")
		})
	}
}

// The memory a match takes follows the event, not the number of paths the rules name. Many small
// arrays at a path one rule names used to cost a bitset of every named path per array: for
// 10,000 rules and a 260 KB body of empty arrays, 135 MB and 81 ms per match, and more for each
// match running at once. Here the same event is matched under 2 rules and under 4,000, each on
// a path of its own; the second may take little more memory than the first.
func TestMatchMemoryDoesNotGrowWithRules(t *testing.T) {
	for _, shape := range []struct{ name, elem string }{
		{"empty arrays", `[]`},
		{"arrays of objects", `[{"y":1}]`},
	} {
		t.Run(shape.name, func(t *testing.T) {
			ev := []byte(`{"detail":{"x":[` + strings.TrimSuffix(strings.Repeat(shape.elem+",", 50_000), ",") + `]}}`)
			perMatch := func(rules int) uint64 {
				m := filter.NewMatcher()
				for i := range rules {
					require.NoError(t, m.Add(fmt.Sprintf("r%05d", i), []byte(fmt.Sprintf(`{"detail":{"f%d":["v"]}}`, i))))
				}
				// Names the arrays' path, and their objects' field, without matching.
				require.NoError(t, m.Add("x", []byte(`{"detail":{"x":{"y":[2]}}}`)))
				got, err := m.MatchRaw(ev, nil) // builds the rules, warms the pools
				require.NoError(t, err)
				require.Empty(t, got)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range 3 {
					_, err = m.MatchRaw(ev, nil)
					require.NoError(t, err)
				}
				runtime.ReadMemStats(&after)
				return (after.TotalAlloc - before.TotalAlloc) / 3
			}
			few, many := perMatch(2), perMatch(4000)
			t.Logf("%d KB per match under 2 rules, %d KB under 4,000", few>>10, many>>10)
			assert.Less(t, many, 2*few+1<<20, "memory per match grows with the number of rules")
		})
	}
}

// TestAdversarialDeepArrays covers a field inside many nested arrays. A value's array positions
// are as many as the arrays around it, and a search that compared each of them with each
// position it holds, or looked a position up by scanning them, did work that grew with the
// square of the nesting depth for every value: 0.9 s for a 136 KB event inside 100 arrays, 7 ms
// inside one. Events of about the same size are matched inside 1, 30 and 60 arrays. Arrays of a
// single element cannot set two values apart, so wrapping the objects in them may add little
// work; when every array has two elements holding objects, each adds work for the values inside
// it, but doubling the depth may not much more than double it. The work counted includes the
// positions compared and looked up.
func TestAdversarialDeepArrays(t *testing.T) {
	const n = 1500
	const obj = `{"b":1,"c":3}`
	const pattern = `{"a":{"b":[1],"c":[2]}}`
	shapes := []struct {
		name  string
		event func(depth int) string
		// bound is how much more work the event inside 60 arrays may take than inside 30,
		// and, when inside1 is set, than inside one.
		bound   float64
		inside1 bool
	}{
		{"wrapped in arrays of one element", func(depth int) string {
			return `{"a":` + strings.Repeat("[", depth-1) + objects(obj, n) + strings.Repeat("]", depth-1) + `}`
		}, 1.5, true},
		{"every array holding two objects", func(depth int) string {
			s := objects(obj, n)
			for range depth - 1 {
				s = "[" + s + "," + obj + "]"
			}
			return `{"a":` + s + `}`
		}, 2.5, false},
	}
	for _, shape := range shapes {
		t.Run(shape.name, func(t *testing.T) {
			p := filter.MustParsePattern(pattern)
			m := filter.NewMatcher()
			require.NoError(t, m.Add("r", []byte(pattern)))
			pw, mw := map[int]int{}, map[int]int{}
			for _, depth := range []int{1, 30, 60} {
				ev := []byte(shape.event(depth))
				got, work, err := filter.PatternWork(p, ev)
				require.NoError(t, err)
				assert.False(t, got)
				pw[depth] = work
				names, work, err := filter.MatcherWork(m, ev)
				require.NoError(t, err)
				assert.Empty(t, names)
				mw[depth] = work
				t.Logf("%d arrays, %d KB: Pattern work %d, Matcher work %d", depth, len(ev)>>10, pw[depth], mw[depth])
			}
			assert.LessOrEqual(t, float64(pw[60]), shape.bound*float64(pw[30]), "Pattern work grows faster than the depth")
			assert.LessOrEqual(t, float64(mw[60]), shape.bound*float64(mw[30]), "Matcher work grows faster than the depth")
			if shape.inside1 {
				assert.LessOrEqual(t, float64(pw[60]), shape.bound*float64(pw[1]), "Pattern work grows with the depth")
				assert.LessOrEqual(t, float64(mw[60]), shape.bound*float64(mw[1]), "Matcher work grows with the depth")
			}
		})
	}
}

// TestDeepArraysCostFactor holds the package documentation to its figures for objects in nested
// arrays of two elements: the work counted with the objects of a 250 KB event 60 arrays deep is
// about 50 times the work with them in one array, and 120 arrays deep twice that. The factor
// follows the depth, not the size, so a -race build, slower by far, checks it on 1,500 objects.
func TestDeepArraysCostFactor(t *testing.T) {
	const obj = `{"b":1,"c":3}`
	const pattern = `{"a":{"b":[1],"c":[2]}}`
	n := 240_000 / len(obj)
	if raceEnabled {
		n = 1500
	}
	p := filter.MustParsePattern(pattern)
	m := filter.NewMatcher()
	require.NoError(t, m.Add("r", []byte(pattern)))
	pw, mw := map[int]float64{}, map[int]float64{}
	for _, depth := range []int{1, 60, 120} {
		s := objects(obj, n-depth)
		for range depth - 1 {
			s = "[" + s + "," + obj + "]"
		}
		ev := []byte(`{"a":` + s + `}`)
		got, work, err := filter.PatternWork(p, ev)
		require.NoError(t, err)
		require.False(t, got)
		pw[depth] = float64(work)
		names, work, err := filter.MatcherWork(m, ev)
		require.NoError(t, err)
		require.Empty(t, names)
		mw[depth] = float64(work)
		t.Logf("%d arrays, %d KB: Pattern work %.0f, Matcher work %.0f", depth, len(ev)>>10, pw[depth], mw[depth])
	}
	for _, w := range []map[int]float64{pw, mw} {
		assert.InDelta(t, 50, w[60]/w[1], 10, "60 arrays against one")
		assert.InDelta(t, 2, w[120]/w[60], 0.2, "120 arrays against 60")
	}
}

// allocated returns the bytes f allocates, starting from empty pools.
func allocated(f func()) uint64 {
	runtime.GC()
	runtime.GC() // a pooled scratch outlives one collection
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeepArraysMemory covers values inside many nested arrays of objects. Each value used to
// get a list of its positions, one per array around it, and an entry per array in the table of
// the leaves each array holds, and a search kept such a list for each state it had been in: one
// 250 KB event nesting 60 arrays, each holding an empty object beside the next, around 125,000
// values took 367 MB to match once, and a 200 KB event inside 400 arrays 2 GB. Positions are
// now read through the elements around a value, so the memory a match takes may not grow with
// the nesting: the same values are matched inside 300 such arrays and inside none.
func TestDeepArraysMemory(t *testing.T) {
	const n = 20_000
	values := strings.TrimSuffix(strings.Repeat("1,", n), ",")
	cases := []struct {
		name, pattern string
		event         func(depth int) string
	}{
		{"values of one object", `{"detail-type":[{"prefix":"v2.routing.queues."}],"detail":{"eventBody":{"routingStatus":["ALERTING"]}}}`,
			func(depth int) string {
				return `{"detail-type":"v2.routing.queues.{id}.conversations","detail":{"eventBody":` + strings.Repeat(`[{},`, depth) +
					`{"routingStatus":[` + values + `]}` + strings.Repeat(`]`, depth) + `}}`
			}},
		{"objects chosen by the search", `{"a":{"b":[1],"c":[2]}}`,
			func(depth int) string {
				s := objects(`{"b":1}`, n/4)
				for range depth {
					s = `[{"c":3},` + s + `]`
				}
				return `{"a":` + s + `}`
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filter.MustParsePattern(c.pattern)
			flat, deep := []byte(c.event(0)), []byte(c.event(300))
			pattern := func(ev []byte) uint64 {
				return allocated(func() {
					got, err := p.MatchRaw(ev)
					require.NoError(t, err)
					assert.False(t, got)
				})
			}
			matcher := func(ev []byte) uint64 {
				m := filter.NewMatcher()
				require.NoError(t, m.AddPattern("r", p))
				return allocated(func() {
					got, err := m.MatchRaw(ev, nil)
					require.NoError(t, err)
					assert.Empty(t, got)
				})
			}
			pf, pd := pattern(flat), pattern(deep)
			mf, md := matcher(flat), matcher(deep)
			t.Logf("%d KB, then %d KB inside 300 arrays: Pattern %d KB then %d KB, Matcher %d KB then %d KB",
				len(flat)>>10, len(deep)>>10, pf>>10, pd>>10, mf>>10, md>>10)
			assert.LessOrEqual(t, pd, pf+pf/4, "Pattern's memory grows with the nesting")
			assert.LessOrEqual(t, md, mf+mf/4, "Matcher's memory grows with the nesting")
		})
	}
}

// TestOrPatternCostsWhatTheMatcherDoes covers a pattern whose $or alternatives multiply out into
// many branches. A Pattern searched them one by one, each looking again at the values its first
// step reads: three $or of 10 alternatives make 1,000 branches, and on a 240 KB event with
// 80,000 values at the first path tested the Pattern did 80,001,000 units of work to the
// 80,001 of a Matcher holding the same pattern. The Pattern may now do about what the Matcher
// does, whether the event matches or not.
func TestOrPatternCostsWhatTheMatcherDoes(t *testing.T) {
	or := func(key string) string {
		alts := make([]string, 10)
		for i := range alts {
			alts[i] = fmt.Sprintf(`{%q:[%d]}`, key, i)
		}
		return `{"$or":[` + strings.Join(alts, ",") + `]}`
	}
	p := filter.MustParsePattern(`{"detail":{"a":` + or("x") + `,"c":` + or("x") + `,"d":` + or("x") + `,"z":["q"]}}`)
	m := filter.NewMatcher()
	require.NoError(t, m.AddPattern("r", p))
	many := strings.TrimSuffix(strings.Repeat("-1,", 80_000), ",")
	for _, c := range []struct {
		name, event string
		want        bool
	}{
		{"no match", `{"detail":{"a":{"x":[` + many + `]}}}`, false},
		{"a match", `{"detail":{"a":{"x":[` + many + `,7]},"c":{"x":[` + many + `,3]},"d":{"x":2},"z":"q"}}`, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, pw, err := filter.PatternWork(p, []byte(c.event))
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
			names, mw, err := filter.MatcherWork(m, []byte(c.event))
			require.NoError(t, err)
			assert.Equal(t, c.want, len(names) == 1)
			t.Logf("%d KB: Pattern work %d, Matcher work %d", len(c.event)>>10, pw, mw)
			assert.LessOrEqual(t, pw, mw+mw/10, "the Pattern does more work than a Matcher holding it")
		})
	}
	t.Run("first matches at once", func(t *testing.T) {
		// The automaton is built by the first match; under -race, matches that start together
		// show that building it is safe.
		p := filter.MustParsePattern(`{"detail":{"a":` + or("x") + `,"z":["q"]}}`)
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				got, err := p.MatchRaw([]byte(fmt.Sprintf(`{"detail":{"a":{"x":%d},"z":"q"}}`, i)))
				assert.NoError(t, err)
				assert.Equal(t, i < 10, got)
			})
		}
		wg.Wait()
	})
}

// TestRulesSharingAPathLookTheirStringsUp covers many rules that reach, each by a node of its own,
// a path with many values: 100 routes by queue, each also asking for one routing status, on an
// event that lists the 100 queues. Each rule's queue step comes first, so the automaton has one
// node per queue, and each of the 100 nodes looked at every routing status: on a 216 KB event,
// 100 times the work of one rule. Their strings are now looked up among the values, so 100 rules
// may cost little more than one, whether the values lie in no array element or in one element of
// an array of objects, whose other elements the search must keep apart.
func TestRulesSharingAPathLookTheirStringsUp(t *testing.T) {
	const n = 100
	rule := func(i int) string {
		return fmt.Sprintf(`{"detail":{"eventBody":{"participants":{"queueId":["queue-%04d"],"routingStatus":["ALERTING"]}}}}`, i)
	}
	one, many := filter.NewMatcher(), filter.NewMatcher()
	require.NoError(t, one.Add("r0000", []byte(rule(0))))
	ids := make([]string, n)
	var all []string
	for i := range n {
		name := fmt.Sprintf("r%04d", i)
		require.NoError(t, many.Add(name, []byte(rule(i))))
		ids[i] = fmt.Sprintf(`"queue-%04d"`, i)
		all = append(all, name)
	}
	statuses := strings.TrimSuffix(strings.Repeat(`"OFFERING",`, 20_000), ",")
	big := `{"queueId":[` + strings.Join(ids, ",") + `],"routingStatus":[` + statuses
	for _, c := range []struct {
		name, participants string
		one, many          []string
	}{
		{"no element, no match", big + `]}`, nil, nil},
		{"no element, every rule matches", big + `,"ALERTING"]}`, []string{"r0000"}, all},
		{"one element of many, one rule matches", `[` + big + `]},{"queueId":"queue-0000","routingStatus":"ALERTING"}]`,
			[]string{"r0000"}, []string{"r0000"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ev := []byte(`{"detail":{"eventBody":{"participants":` + c.participants + `}}}`)
			got, ow, err := filter.MatcherWork(one, ev)
			require.NoError(t, err)
			assert.Equal(t, c.one, got)
			got, mw, err := filter.MatcherWork(many, ev)
			require.NoError(t, err)
			assert.Equal(t, c.many, got)
			t.Logf("%d KB: %d rules work %d, one rule %d", len(ev)>>10, n, mw, ow)
			assert.LessOrEqual(t, mw, 3*ow, "%d rules cost %d times what one does", n, mw/ow)
		})
	}
}
