package filter_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

const chatEnd = `{"detail-type":"v2.detail.events.conversation.{id}.customer.end","detail":{"eventBody":{"mediaType":"CHAT","interactingDurationMs":60000}}}`

func TestMatcherAddReplaceRemove(t *testing.T) {
	var m filter.Matcher // the zero value is ready to use
	got, err := m.MatchRaw([]byte(chatEnd), nil)
	require.NoError(t, err)
	assert.Empty(t, got)

	require.NoError(t, m.Add("chat", []byte(`{"detail":{"eventBody":{"mediaType":["CHAT"]}}}`)))
	require.NoError(t, m.Add("voice", []byte(`{"detail":{"eventBody":{"mediaType":["VOICE"]}}}`)))
	got, err = m.MatchRaw([]byte(chatEnd), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"chat"}, got)

	// Add under an existing name replaces the rule.
	require.NoError(t, m.Add("voice", []byte(`{"detail":{"eventBody":{"interactingDurationMs":[{"numeric":["<",120000]}]}}}`)))
	got, _ = m.MatchRaw([]byte(chatEnd), nil)
	assert.Equal(t, []string{"chat", "voice"}, got)
	assert.Equal(t, 2, m.Len())
	assert.Equal(t, []string{"chat", "voice"}, m.Names())

	assert.True(t, m.Remove("chat"))
	assert.False(t, m.Remove("chat"))
	got, _ = m.MatchRaw([]byte(chatEnd), nil)
	assert.Equal(t, []string{"voice"}, got)

	assert.True(t, m.Remove("voice"))
	assert.Equal(t, 0, m.Len())
	got = m.Match(&fanbridge.Event{Raw: []byte(chatEnd)}, nil)
	assert.Empty(t, got)
}

func TestMatcherBadInput(t *testing.T) {
	m := filter.NewMatcher()
	require.NoError(t, m.Add("chat", []byte(`{"detail":{"eventBody":{"mediaType":["CHAT"]}}}`)))

	assert.ErrorIs(t, m.Add("", []byte(`{"a":[1]}`)), filter.ErrInvalidName)
	assert.ErrorIs(t, m.AddPattern("", filter.MustParsePattern(`{"a":[1]}`)), filter.ErrInvalidName)
	assert.ErrorIs(t, m.AddPattern("x", nil), filter.ErrInvalidName)
	// A zero Pattern could never match: it is refused, not stored, and does not replace a rule.
	err := m.AddPattern("chat", &filter.Pattern{})
	assert.ErrorIs(t, err, filter.ErrInvalidPattern)
	assert.ErrorContains(t, err, "ParsePattern")
	assert.ErrorIs(t, m.Add("chat", []byte(`{"a":`)), filter.ErrInvalidPattern)
	assert.Equal(t, []string{"chat"}, m.Names(), "failed changes leave the rules alone")

	// The whole event is checked, not only the fields a rule reads: damage beside the rule's
	// field is refused too. An event may nest 512 levels, the outer object being the first.
	const chat = `{"detail":{"eventBody":{"mediaType":"CHAT"}}`
	beside := func(v string) string { return chat + `,"b":` + v + `}` }
	objects := func(n int) string { return strings.Repeat(`{"c":`, n) + `1` + strings.Repeat(`}`, n) }
	arrays := func(n int) string { return strings.Repeat(`[`, n) + strings.Repeat(`]`, n) }
	around := func(n int) string { // the rule's field in n arrays, under three objects
		return `{"detail":{"eventBody":{"mediaType":` + strings.Repeat(`[`, n) + `"CHAT"` + strings.Repeat(`]`, n) + `}}}`
	}
	p := filter.MustParsePattern(`{"detail":{"eventBody":{"mediaType":["CHAT"]}}}`)

	dst := []string{"kept"}
	for _, ev := range []string{
		``, `null`, `[]`, `"x"`, `{"a":1`, `{"a":1}x`, `{"a":tru}`, `{"detail":{"eventBody":{"mediaType":"CHAT",}}}`,
		beside(`"\uZZZZ"`), beside("\"a\x1fb\""), beside(`1.`), beside(`1.e5`), beside(`nuxx`), beside(`trux`),
		beside(objects(512)), beside(arrays(512)), around(510),
	} {
		got, err := m.MatchRaw([]byte(ev), dst)
		assert.ErrorIs(t, err, filter.ErrInvalidEvent, "event %.80q", ev)
		assert.Equal(t, []string{"kept"}, got, "dst unchanged for %.80q", ev)
		assert.Equal(t, []string{"kept"}, m.Match(&fanbridge.Event{Raw: []byte(ev)}, dst))
		ok, err := p.MatchRaw([]byte(ev))
		assert.ErrorIs(t, err, filter.ErrInvalidEvent, "Pattern on %.80q", ev)
		assert.False(t, ok)
	}
	assert.Equal(t, []string{"kept"}, m.Match(nil, dst))

	for _, ev := range []string{
		chat + `}`, beside(`"\u00e9\t"`), beside(`1.5e-3`), beside(`null`), beside(`true`),
		beside(objects(511)), beside(arrays(511)), around(509),
	} {
		got, err := m.MatchRaw([]byte(ev), dst)
		require.NoError(t, err, "event %.80q", ev)
		assert.Equal(t, []string{"kept", "chat"}, got, "event %.80q", ev)
		ok, err := p.MatchRaw([]byte(ev))
		require.NoError(t, err, "Pattern on %.80q", ev)
		assert.True(t, ok)
	}
}

func TestMatcherAppendsToDst(t *testing.T) {
	m := filter.NewMatcher()
	for i := range 5 {
		require.NoError(t, m.Add(fmt.Sprintf("r%d", i), []byte(`{"detail":{"eventBody":{"mediaType":["CHAT"]}}}`)))
	}
	dst := make([]string, 1, 8)
	dst[0] = "before"
	dst = m.Match(&fanbridge.Event{Raw: []byte(chatEnd)}, dst)
	assert.Equal(t, []string{"before", "r0", "r1", "r2", "r3", "r4"}, dst)
}

// TestMatcherManyRulesAtOnce loads a generated Genesys rule set and checks the Matcher's answer
// for a real event against every rule on its own.
func TestMatcherManyRulesAtOnce(t *testing.T) {
	rules := genesysRules(10000, 1)
	m := filter.NewMatcher()
	singles := make([]*filter.Pattern, len(rules))
	for i, r := range rules {
		require.NoError(t, m.Add(r.name, r.src), "%s", r.src)
		singles[i] = filter.MustParsePattern(string(r.src))
	}
	for _, ev := range benchEvents(t) {
		var want []string
		for i, p := range singles {
			ok, err := p.MatchRaw(ev)
			require.NoError(t, err)
			if ok {
				want = append(want, rules[i].name)
			}
		}
		got, err := m.MatchRaw(ev, nil)
		require.NoError(t, err)
		assert.Equal(t, want, got)
		assert.NotEmpty(t, want, "the generated rules include some that match each sample")
		assert.Less(t, len(want), len(rules)/100, "and most do not")
	}
}

// TestMatcherConcurrent matches from several goroutines while rules are added and removed; run
// with -race it checks the snapshot hand-over.
func TestMatcherConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m := filter.NewMatcher()
	require.NoError(t, m.Add("always", []byte(`{"detail":{"eventBody":{"mediaType":["CHAT"]}}}`)))
	raw := []byte(chatEnd)

	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var dst []string
			for {
				select {
				case <-stop:
					return
				default:
				}
				dst = m.Match(&fanbridge.Event{Raw: raw}, dst[:0])
				found := false
				for _, n := range dst {
					found = found || n == "always"
				}
				if !found {
					errs <- fmt.Errorf("a rule present all along was missing from %v", dst)
					return
				}
			}
		}()
	}
	for i := range 300 {
		if ctx.Err() != nil {
			break
		}
		name := fmt.Sprintf("r%d", i%17)
		if i%3 == 0 {
			m.Remove(name)
		} else {
			require.NoError(t, m.Add(name, []byte(fmt.Sprintf(`{"detail":{"eventBody":{"interactingDurationMs":[{"numeric":[">",%d]}]}}}`, i*100))))
		}
		// Once Add has returned, the next match sees the rule.
		got, err := m.MatchRaw(raw, nil)
		require.NoError(t, err)
		if i%3 != 0 {
			assert.Equal(t, i*100 < 60000, contains(got, name), "rule %s after change %d", name, i)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

func TestMatcherZeroAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items, so allocations are counted without it")
	}
	rules := genesysRules(1000, 2)
	m := filter.NewMatcher()
	for _, r := range rules {
		require.NoError(t, m.Add(r.name, r.src))
	}
	e := &fanbridge.Event{Raw: benchEvents(t)[0]}
	dst := make([]string, 0, 64)
	dst = m.Match(e, dst[:0]) // warm up: builds the snapshot and fills the pool
	require.NotEmpty(t, dst)
	allocs := testing.AllocsPerRun(200, func() { dst = m.Match(e, dst[:0]) })
	assert.Zero(t, allocs, "allocations per Match after warm-up")

	p := filter.MustParsePattern(string(rules[0].src))
	allocs = testing.AllocsPerRun(200, func() { p.Match(e) })
	assert.Zero(t, allocs, "allocations per Pattern.Match")

	field := filter.All(filter.Type("v2.detail.events.conversation.{id}.customer.end"), filter.Field("queueId").Eq("x"))
	ev := benchEvent(t)
	allocs = testing.AllocsPerRun(200, func() { field.Match(ev) })
	assert.Zero(t, allocs, "allocations per field predicate")

	// Deeply nested arrays make the search keep ranges of fields to skip for each array it
	// holds a position in; that scratch must be reused too.
	deep := `{"a":{"k":[1],"w":[{"numeric":[">",5]}]}}`
	dm := filter.NewMatcher()
	require.NoError(t, dm.Add("deep", []byte(deep)))
	dp := filter.MustParsePattern(deep)
	de := &fanbridge.Event{Raw: []byte(`{"a":[[[[[[[[` + objects(`{"k":1,"w":1}`, 64) + `,[{"k":1,"w":6}]]]]]]]]]}`)}
	dst = dm.Match(de, dst[:0])
	require.Equal(t, []string{"deep"}, dst)
	require.True(t, dp.Match(de))
	allocs = testing.AllocsPerRun(200, func() { dst = dm.Match(de, dst[:0]) })
	assert.Zero(t, allocs, "allocations per Match on nested arrays")
	allocs = testing.AllocsPerRun(200, func() { dp.Match(de) })
	assert.Zero(t, allocs, "allocations per Pattern.Match on nested arrays")
}
