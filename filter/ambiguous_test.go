package filter_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// repeatedArrays returns an object with n members named key, each an array of two copies of obj.
func repeatedArrays(key string, n int, obj string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = `"` + key + `":[` + obj + `,` + obj + `]`
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// assertRefused checks that every way of matching pattern against event refuses the event: the
// errors wrap ErrInvalidEvent, MatchRaw leaves dst as it was, and Match matches nothing.
func assertRefused(t *testing.T, pattern, event string) {
	t.Helper()
	p := filter.MustParsePattern(pattern)
	ok, err := p.MatchRaw([]byte(event))
	require.ErrorIs(t, err, filter.ErrInvalidEvent, "Pattern.MatchRaw")
	assert.False(t, ok)
	assert.Contains(t, err.Error(), "repeats a key, or spells a path two ways")
	ok, err = filter.Test([]byte(pattern), []byte(event))
	require.ErrorIs(t, err, filter.ErrInvalidEvent, "Test")
	assert.False(t, ok)
	ok, _, err = filter.PatternWork(p, []byte(event))
	require.ErrorIs(t, err, filter.ErrInvalidEvent)
	assert.False(t, ok)

	m := filter.NewMatcher()
	require.NoError(t, m.AddPattern("rule", p))
	require.NoError(t, m.Add("everything", []byte(`{"$or":[{"nothere":[{"exists":false}]},{"nothere":[1]}]}`)))
	dst := []string{"kept"}
	got, err := m.MatchRaw([]byte(event), dst)
	require.ErrorIs(t, err, filter.ErrInvalidEvent, "Matcher.MatchRaw")
	assert.Equal(t, []string{"kept"}, got)
	assert.Empty(t, m.Match(&fanbridge.Event{Raw: []byte(event)}, nil), "Matcher.Match")
	assert.False(t, p.Match(&fanbridge.Event{Raw: []byte(event)}), "Pattern.Match")
}

// assertAccepted checks that pattern and a Matcher holding it answer want for event, without
// an error.
func assertAccepted(t *testing.T, pattern, event string, want bool) {
	t.Helper()
	p := filter.MustParsePattern(pattern)
	ok, err := p.MatchRaw([]byte(event))
	require.NoError(t, err, "Pattern.MatchRaw")
	assert.Equal(t, want, ok, "Pattern.MatchRaw")
	assert.Equal(t, want, p.Match(&fanbridge.Event{Raw: []byte(event)}), "Pattern.Match")
	m := filter.NewMatcher()
	require.NoError(t, m.AddPattern("rule", p))
	got, err := m.MatchRaw([]byte(event), nil)
	require.NoError(t, err, "Matcher.MatchRaw")
	assert.Equal(t, want, len(got) == 1, "Matcher.MatchRaw")
}

// TestAmbiguousEventsRefused covers events that repeat a key, or spell one path two ways, at a
// path a rule reads. EventBridge reads every copy; here the event is refused, since copies of an
// array at one path would let a search combine any element of one copy with any element of
// another, at a cost that grows with a power of the event.
func TestAmbiguousEventsRefused(t *testing.T) {
	cases := []struct{ name, pattern, event string }{
		{"a repeated key", `{"a":[1]}`, `{"a":1,"a":2}`},
		{"a repeated key, one escaped", `{"a":[1]}`, `{"a":1,"\u0061":2}`},
		{"a repeated key leading to the path", `{"d":{"a":[2]}}`, `{"d":{"x":1},"d":{"a":2}}`},
		{"a repeated key, a leaf once an object", `{"a":[5]}`, `{"a":{"z":1},"a":5}`},
		{"a repeated key in an array element", `{"l":{"a":[2]}}`, `{"l":[{"a":0},{"a":1,"a":2}]}`},
		{"a dotted key after the nested spelling", `{"d":{"a":[2]}}`, `{"d":{"a":1},"d.a":2}`},
		{"a dotted key before the nested spelling", `{"d":{"a":[2]}}`, `{"d.a":2,"d":{"a":1}}`},
		{"a dotted key reaching a path that leads on", `{"d":{"a":{"b":[1]}}}`, `{"d.a":{"b":1},"d":{"a":{"c":2}}}`},
		{"a dotted key beside an array holding the nested spelling", `{"d":{"a":[2]}}`, `{"d":[{"a":1}],"d.a":2}`},
		{"the array after the dotted key", `{"d":{"a":[2]}}`, `{"d.a":2,"d":[{"a":1},{"a":3}]}`},
		{"both spellings in one array element", `{"x":{"d":{"a":[2]}}}`, `{"x":[{"d":{"a":9}},{"d":[{"a":1}],"d.a":2}]}`},
		{"the spellings in nested elements of one element", `{"x":{"d":{"a":[2]}}}`, `{"x":[{"d.a":2,"y":0,"d":[[{"a":1}],[{"a":3}]]}]}`},
		{"an empty key and a key starting with a dot", `{".x":[2]}`, `{"":{"x":1},".x":2}`},
		// Each reach lies in the only element of a different array: not different elements of
		// one array, so the copies of the array under the path never conflict.
		{"spellings in elements of two sibling arrays", `{"x":{"d":{"a":[2]}}}`, `{"x":[{"d.a":2}],"x.d":[{"a":1}]}`},
		{"three spellings in elements of three arrays", `{"x":{"d":{"e":{"a":[2]}}}}`, `{"x":[{"d.e.a":2}],"x.d":[{"e.a":1}],"x.d.e":[{"a":3}]}`},
		{"sibling arrays under one element", `{"l":{"x":{"d":{"a":[2]}}}}`, `{"l":[{"x":[{"d.a":2}],"x.d":[{"a":1}]}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assertRefused(t, c.pattern, c.event) })
	}
}

// TestAmbiguousEventsRefusedAtOnce replays events that made matching take seconds, and would
// have taken hours at the largest bodies an intake accepts: a pattern testing several fields of
// an array whose path the event repeats (the work grew with the 16th power of the size per
// doubling for four fields), or spells twice (quadratic). They are refused while being read.
func TestAmbiguousEventsRefusedAtOnce(t *testing.T) {
	arr := objects(`{"b":"1","c":"1","z":5}`, 1000)
	cases := []struct {
		name, pattern, event string
		second               string // the key at which the event is refused: its second occurrence
	}{
		{"a repeated key, four fields", `{"a":{"b":["1"],"c":["1"],"d":["1"],"z":[{"numeric":["<",0]}]}}`,
			repeatedArrays("a", 80, `{"b":"1","c":"1","d":"1","z":5}`), `"a":`},
		{"a repeated key, three fields", `{"a":{"b":["1"],"c":["1"],"z":[{"numeric":["<",0]}]}}`,
			repeatedArrays("a", 320, `{"b":"1","c":"1","z":5}`), `"a":`},
		{"two spellings", `{"d":{"a":{"b":["1"],"c":["1"],"z":[{"numeric":["<",0]}]}}}`,
			`{"d":{"a":` + arr + `},"d.a":` + arr + `}`, `"d.a":`},
		{"two spellings, one through an array", `{"d":{"a":{"b":["1"],"c":["1"],"z":[{"numeric":["<",0]}]}}}`,
			`{"d":[{"a":` + arr + `}],"d.a":` + arr + `}`, `"d.a":`},
		{"three spellings in sibling arrays", `{"x":{"d":{"e":{"a":{"b":["1"],"c":["1"],"z":[{"numeric":["<",0]}]}}}}}`,
			`{"x":[{"d.e.a":` + arr + `}],"x.d":[{"e.a":` + arr + `}],"x.d.e":[{"a":` + arr + `}]}`, `"e.a":`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assertRefused(t, c.pattern, c.event)
			// The event is refused at the second copy's key, before any search.
			at := strings.Index(c.event, c.second)
			if c.second == `"a":` {
				at += 1 + strings.Index(c.event[at+1:], c.second)
			}
			_, err := filter.MustParsePattern(c.pattern).MatchRaw([]byte(c.event))
			assert.Contains(t, err.Error(), fmt.Sprintf("the key at offset %d ", at))
		})
	}
}

// TestUnambiguousEventsAccepted covers the shapes an event without repeated keys or a path
// spelled two ways may take around the paths a rule reads, which must be matched as before: a
// path reached once in each element of an array, at any depth, is not reached twice.
func TestUnambiguousEventsAccepted(t *testing.T) {
	many := objects(`{"b":1,"c":1}`, 2000)
	cases := []struct {
		name, pattern, event string
		want                 bool
	}{
		{"an array of many objects", `{"a":{"b":[2],"c":[3]}}`,
			`{"a":` + strings.TrimSuffix(many, "]") + `,{"b":2,"c":3}]}`, true},
		{"an array of many objects, no element with both", `{"a":{"b":[2],"c":[3]}}`,
			`{"a":` + strings.TrimSuffix(many, "]") + `,{"b":2,"c":1},{"b":1,"c":3}]}`, false},
		{"arrays of objects in arrays of objects", `{"a":{"x":{"b":[2],"c":[3]}}}`,
			`{"a":[{"x":[{"b":2},{"c":3}]},{"x":[{"b":1},{"b":2,"c":3}]}]}`, true},
		{"nested arrays", `{"a":{"b":[3],"c":[4]}}`, `{"a":[[{"b":1},{"b":2}],[[{"b":3,"c":4}]]]}`, true},
		{"nested arrays, no element with both", `{"a":{"b":[3],"c":[4]}}`, `{"a":[[{"b":3},{"c":4}],[{"b":4,"c":3}]]}`, false},
		{"an array of scalars", `{"a":{"b":[3]}}`, `{"a":{"b":[1,2,3,3,3]}}`, true},
		{"arrays of scalars in an array", `{"a":{"b":[3]}}`, `{"a":[{"b":[1,2]},{"b":[3,3]}]}`, true},
		{"a dotted key alone", `{"d":{"a":[2]}}`, `{"d.a":2}`, true},
		{"a dotted key beside another path under its first key", `{"d":{"a":[1],"b":[2]}}`, `{"d.a":1,"d":{"b":2}}`, true},
		{"a dotted key holding an array of objects", `{"d":{"a":{"b":[2],"c":[3]}}}`, `{"d.a":[{"b":2,"c":1},{"b":1,"c":3}],"d":{"x":1}}`, false},
		{"the two spellings in different elements", `{"l":{"d":{"a":[2]}}}`, `{"l":[{"d.a":1},{"d":{"a":2}}]}`, true},
		{"the two spellings in different elements, the other way", `{"l":{"d":{"a":[2]}}}`, `{"l":[{"d":{"a":1}},{"d.a":2}]}`, true},
		{"the two spellings in elements of different elements", `{"l":{"d":{"a":[2]}}}`, `{"l":[[{"d":[{"a":1}]}],[{"d.a":2}]]}`, true},
		{"an empty key alone", `{".x":[2]}`, `{"":{"x":2}}`, true},
		{"a key starting with a dot alone", `{".x":[2]}`, `{".x":2}`, true},
		{"repeated keys no rule reads", `{"a":[5]}`, `{"x":1,"x":2,"y":{"q":1,"q":2},"a":5}`, true},
		{"repeated keys no rule reads beside the path", `{"y":{"r":[3]}}`, `{"y":{"q":1,"q":2,"r":3,"s":[{"q":0}],"s":{}}}`, true},
		{"a repeated key under a path's leaf", `{"a":[{"exists":true}],"b":[1]}`, `{"a":[{"z":1,"z":2}],"a.z":0,"b":1}`, false},
		{"a repeated key under a path's leaf, a value beside", `{"a":[{"exists":true}],"b":[1]}`, `{"a":[{"z":1,"z":2},7],"b":1}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { assertAccepted(t, c.pattern, c.event, c.want) })
	}
}

// TestAmbiguousEventRefusedForEveryRule shows that a Matcher refuses an event that repeats a key
// one of its rules reads, for all of them, while a rule alone that does not read it matches.
func TestAmbiguousEventRefusedForEveryRule(t *testing.T) {
	event := []byte(`{"detail-type":"x","detail":{"n":1,"n":2}}`)
	m := filter.NewMatcher()
	require.NoError(t, m.Add("type", []byte(`{"detail-type":["x"]}`)))
	require.NoError(t, m.Add("n", []byte(`{"detail":{"n":[1]}}`)))
	got, err := m.MatchRaw(event, nil)
	require.ErrorIs(t, err, filter.ErrInvalidEvent)
	assert.Empty(t, got)
	assert.Contains(t, err.Error(), `"detail.n"`, "the error names the rule's path")

	ok, err := filter.MustParsePattern(`{"detail-type":["x"]}`).MatchRaw(event)
	require.NoError(t, err)
	assert.True(t, ok)
	require.True(t, m.Remove("n"))
	got, err = m.MatchRaw(event, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"type"}, got)
}
