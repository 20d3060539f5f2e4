package filter_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// conformanceCase is one row of testdata/conformance.json: a pattern, the event it is tested on,
// the expected answer, and the documented EventBridge rule the row checks.
type conformanceCase struct {
	Name    string          `json:"name"`
	Rule    string          `json:"rule"`
	Event   string          `json:"event"`
	Match   bool            `json:"match"`
	Pattern json.RawMessage `json:"pattern"`
}

type conformanceTable struct {
	events map[string][]byte
	cases  []conformanceCase
}

// loadConformance reads the table. Events are kept as their exact bytes (a number written 3.0e2
// must stay so); an event given as a string names a sample file in testdata.
func loadConformance(t testing.TB) conformanceTable {
	t.Helper()
	src, err := os.ReadFile("testdata/conformance.json")
	require.NoError(t, err)
	var file struct {
		Events map[string]json.RawMessage `json:"events"`
		Cases  []conformanceCase          `json:"cases"`
	}
	require.NoError(t, json.Unmarshal(src, &file))
	tab := conformanceTable{events: map[string][]byte{}, cases: file.Cases}
	for name, raw := range file.Events {
		if raw[0] == '"' {
			var fn string
			require.NoError(t, json.Unmarshal(raw, &fn))
			b, err := os.ReadFile(filepath.Join("testdata", fn))
			require.NoError(t, err)
			tab.events[name] = b
			continue
		}
		tab.events[name] = raw
	}
	seen := map[string]bool{}
	for _, c := range tab.cases {
		require.False(t, seen[c.Name], "duplicate case name %q", c.Name)
		seen[c.Name] = true
		require.Contains(t, tab.events, c.Event, "case %q names an unknown event", c.Name)
		require.NotEmpty(t, c.Rule, "case %q must say which rule it checks", c.Name)
	}
	return tab
}

func TestConformanceTableSize(t *testing.T) {
	tab := loadConformance(t)
	assert.GreaterOrEqual(t, len(tab.cases), 150)
	matches, misses := 0, 0
	for _, c := range tab.cases {
		if c.Match {
			matches++
		} else {
			misses++
		}
	}
	// A table of only matches (or only misses) could not catch a matcher that always says so.
	assert.Greater(t, matches, 50)
	assert.Greater(t, misses, 50)
}

// TestConformancePattern runs every row through a single compiled Pattern, through the Test
// helper, and through Pattern.Match on an Event that carries the row's event as Raw.
func TestConformancePattern(t *testing.T) {
	tab := loadConformance(t)
	for _, c := range tab.cases {
		t.Run(c.Name, func(t *testing.T) {
			p, err := filter.ParsePattern(c.Pattern)
			require.NoError(t, err, "pattern %s", c.Pattern)
			ev := tab.events[c.Event]
			got, err := p.MatchRaw(ev)
			require.NoError(t, err)
			assert.Equal(t, c.Match, got, "rule: %s\npattern: %s", c.Rule, c.Pattern)

			got, err = filter.Test(c.Pattern, ev)
			require.NoError(t, err)
			assert.Equal(t, c.Match, got, "filter.Test")

			assert.Equal(t, c.Match, p.Match(&fanbridge.Event{Raw: ev}), "Pattern.Match")
		})
	}
}

// TestConformanceMatcher loads every row's pattern into one Matcher, named after the row, and
// checks the set of names it returns for each event: rows written for that event must match as
// the table says, and every other row must agree with its single Pattern.
func TestConformanceMatcher(t *testing.T) {
	tab := loadConformance(t)
	m := filter.NewMatcher()
	singles := map[string]*filter.Pattern{}
	for _, c := range tab.cases {
		require.NoError(t, m.Add(c.Name, c.Pattern))
		p, err := filter.ParsePattern(c.Pattern)
		require.NoError(t, err)
		singles[c.Name] = p
	}
	require.Equal(t, len(tab.cases), m.Len())

	eventNames := make([]string, 0, len(tab.events))
	for n := range tab.events {
		eventNames = append(eventNames, n)
	}
	sort.Strings(eventNames)
	var dst []string
	for _, evName := range eventNames {
		t.Run(evName, func(t *testing.T) {
			ev := tab.events[evName]
			var want []string
			for _, c := range tab.cases {
				var ok bool
				if c.Event == evName {
					ok = c.Match
				} else {
					var err error
					ok, err = singles[c.Name].MatchRaw(ev)
					require.NoError(t, err)
				}
				if ok {
					want = append(want, c.Name)
				}
			}
			sort.Strings(want)

			var err error
			dst, err = m.MatchRaw(ev, dst[:0])
			require.NoError(t, err)
			assert.Equal(t, want, nilIfEmpty(dst), "MatchRaw")
			assert.True(t, slices.IsSorted(dst), "names come in ascending order")

			dst = m.Match(&fanbridge.Event{Raw: ev}, dst[:0])
			assert.Equal(t, want, nilIfEmpty(dst), "Match")
		})
	}
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

type invalidCase struct {
	Name       string `json:"name"`
	Pattern    string `json:"pattern"`
	Path       string `json:"path"`
	Op         string `json:"op"`
	TooComplex bool   `json:"tooComplex"`
}

func invalidCases(t *testing.T) []invalidCase {
	src, err := os.ReadFile("testdata/invalid_patterns.json")
	require.NoError(t, err)
	var cases []invalidCase
	require.NoError(t, json.Unmarshal(src, &cases))
	// Some that are too big to keep in the file.
	cases = append(cases,
		invalidCase{Name: "too-large", Pattern: `{"a":["` + strings.Repeat("x", filter.MaxPatternBytes) + `"]}`, TooComplex: true},
		invalidCase{Name: "too-large-by-one-byte", Pattern: patternOfSize(filter.MaxPatternBytes + 1), TooComplex: true},
		invalidCase{Name: "too-many-values-total", Pattern: manyFields(filter.MaxPatternValues + 1), Path: "f1000", TooComplex: true},
		// 968 fields beside three $or of ten objects: 1,000 combinations of 971 fields each.
		invalidCase{Name: "too-many-expanded-fields-or-last", Pattern: fieldsAndOrs(968, 3, 10, false), Path: "o1", Op: "$or", TooComplex: true},
		invalidCase{Name: "too-many-expanded-fields-or-first", Pattern: fieldsAndOrs(968, 3, 10, true), Path: "f7", TooComplex: true},
		// 136 fields beside one $or of 73 objects of one field: 73 combinations of 137, 10,001.
		invalidCase{Name: "too-many-expanded-fields-by-one", Pattern: fieldsAndOrs(136, 1, 73, false), Path: "o0", Op: "$or", TooComplex: true},
	)
	return cases
}

// patternOfSize returns a pattern of exactly n bytes, one long string in one field.
func patternOfSize(n int) string {
	const frame = `{"a":[""]}`
	return `{"a":["` + strings.Repeat("x", n-len(frame)) + `"]}`
}

// TestPatternSizeLimit: a pattern of MaxPatternBytes compiles and matches (one byte more is
// among the invalid cases).
func TestPatternSizeLimit(t *testing.T) {
	src := patternOfSize(filter.MaxPatternBytes)
	require.Len(t, src, filter.MaxPatternBytes)
	p, err := filter.ParsePattern([]byte(src))
	require.NoError(t, err)
	value := src[len(`{"a":[`) : len(src)-len(`]}`)] // the long string, quoted
	ok, err := p.MatchRaw([]byte(`{"a":` + value + `}`))
	require.NoError(t, err)
	assert.True(t, ok)
}

// fieldsAndOrs returns a pattern with fields f0, f1 ... and ors $or operators of alts objects
// each (at o0, o1 ...), the $or before or after the fields.
func fieldsAndOrs(fields, ors, alts int, orFirst bool) string {
	var parts []string
	for i := range ors {
		var as []string
		for j := range alts {
			as = append(as, `{"x`+strconv.Itoa(j)+`":[1]}`)
		}
		parts = append(parts, `"o`+strconv.Itoa(i)+`":{"$or":[`+strings.Join(as, ",")+`]}`)
	}
	f := strings.TrimSuffix(strings.TrimPrefix(manyFields(fields), "{"), "}")
	if orFirst {
		return "{" + strings.Join(append(parts, f), ",") + "}"
	}
	return "{" + strings.Join(append([]string{f}, parts...), ",") + "}"
}

// TestExpandedFieldsLimit: a pattern whose $or combinations hold MaxExpandedFields fields in all
// compiles and matches, one field more is refused.
func TestExpandedFieldsLimit(t *testing.T) {
	// 1,000 combinations of three $or fields and seven others: 10,000.
	p, err := filter.ParsePattern([]byte(fieldsAndOrs(7, 3, 10, false)))
	require.NoError(t, err)
	event := `{"f0":1,"f1":1,"f2":1,"f3":1,"f4":1,"f5":1,"f6":1,"o0":{"x3":1},"o1":{"x9":1},"o2":{"x0":1}}`
	ok, err := p.MatchRaw([]byte(event))
	require.NoError(t, err)
	assert.True(t, ok)
	for _, orFirst := range []bool{false, true} {
		_, err = filter.ParsePattern([]byte(fieldsAndOrs(8, 3, 10, orFirst)))
		require.ErrorIs(t, err, filter.ErrPatternTooComplex)
		assert.Contains(t, err.Error(), "over 10000 fields")
	}
}

func manyFields(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"f` + strconv.Itoa(i) + `":[1]`)
	}
	b.WriteString("}")
	return b.String()
}

func TestInvalidPatterns(t *testing.T) {
	for _, c := range invalidCases(t) {
		t.Run(c.Name, func(t *testing.T) {
			p, err := filter.ParsePattern([]byte(c.Pattern))
			require.Error(t, err)
			assert.Nil(t, p)
			var pe *filter.PatternError
			require.True(t, errors.As(err, &pe), "error %v is a *PatternError", err)
			assert.Equal(t, c.Path, pe.Path, "path in %q", err)
			assert.Equal(t, c.Op, pe.Op, "operator in %q", err)
			if c.TooComplex {
				assert.ErrorIs(t, err, filter.ErrPatternTooComplex)
				assert.NotErrorIs(t, err, filter.ErrInvalidPattern)
			} else {
				assert.ErrorIs(t, err, filter.ErrInvalidPattern)
				assert.NotErrorIs(t, err, filter.ErrPatternTooComplex)
			}
			assert.True(t, strings.HasPrefix(err.Error(), "filter: pattern"), "%q", err)

			// A rejected rule leaves a Matcher as it was.
			m := filter.NewMatcher()
			require.NoError(t, m.Add("keep", []byte(`{"source":["aws.ec2"]}`)))
			require.Error(t, m.Add("keep", []byte(c.Pattern)))
			got, err := m.MatchRaw([]byte(`{"source":"aws.ec2"}`), nil)
			require.NoError(t, err)
			assert.Equal(t, []string{"keep"}, got)
		})
	}
}

// TestAnythingButEmptyOperandList: an empty list inside anything-but excludes nothing, so the
// operator would match every value; like the empty list of anything-but itself it is refused,
// and the message names the operator the list belongs to.
func TestAnythingButEmptyOperandList(t *testing.T) {
	for _, inner := range []string{"prefix", "suffix", "equals-ignore-case", "wildcard"} {
		t.Run(inner, func(t *testing.T) {
			_, err := filter.ParsePattern([]byte(`{"state":[{"anything-but":{"` + inner + `":[]}}]}`))
			require.ErrorIs(t, err, filter.ErrInvalidPattern)
			assert.Equal(t, `filter: pattern at "state": "anything-but" wants at least one string for "`+inner+`"`, err.Error())
		})
	}
	_, err := filter.ParsePattern([]byte(`{"state":[{"anything-but":{"prefix":["a"]}}]}`))
	assert.NoError(t, err, "a list of one is fine")
}

func TestPatternErrorMessage(t *testing.T) {
	_, err := filter.ParsePattern([]byte(`{"detail":{"eventBody":{"mediaType":[{"prefix":5}]}}}`))
	require.Error(t, err)
	assert.Equal(t, `filter: pattern at "detail.eventBody.mediaType": "prefix" wants a string`, err.Error())
}

// TestPatternErrorTexts: a message says what is wrong with the pattern, not what would be wrong
// with another one. Anything-but, here as in EventBridge, takes no "numeric", "exists" or
// "cidr" in its object, whatever their operand, where the message used to ask for strings as
// their operand; and a numeric range with terms beyond the upper bound was told it lacked one.
func TestPatternErrorTexts(t *testing.T) {
	const butOnly = `only "prefix", "suffix", "equals-ignore-case" and "wildcard"`
	for _, c := range []struct{ pattern, want string }{
		{`{"a":[{"anything-but":{"numeric":[">",5]}}]}`, `"anything-but" does not support "numeric" in its object, ` + butOnly},
		{`{"a":[{"anything-but":{"numeric":["a"]}}]}`, `"anything-but" does not support "numeric" in its object, ` + butOnly},
		{`{"a":[{"anything-but":{"exists":true}}]}`, `"anything-but" does not support "exists" in its object, ` + butOnly},
		{`{"a":[{"anything-but":{"cidr":"10.0.0.0/8"}}]}`, `"anything-but" does not support "cidr" in its object, ` + butOnly},
		{`{"a":[{"anything-but":{"prefix":[5]}}]}`, `"anything-but" wants strings for "prefix"`},
		{`{"a":[{"numeric":[">",0,"<",5,"<",6]}]}`, `"numeric" has 6 terms, where a lower bound and an upper one take four, such as [">", 0, "<=", 5]`},
		{`{"a":[{"numeric":[">",0,"<",5,6]}]}`, `"numeric" has 5 terms, where a lower bound and an upper one take four, such as [">", 0, "<=", 5]`},
		{`{"a":[{"numeric":[">",0,"<"]}]}`, `"numeric" wants a number after "<"`},
		{`{"a":[{"numeric":[">",0,5]}]}`, `"numeric" wants "<" or "<=" after the lower bound`},
		{`{"a":[{"numeric":[">",0,">",5]}]}`, `"numeric" wants "<" or "<=" after the lower bound`},
	} {
		t.Run(c.pattern, func(t *testing.T) {
			_, err := filter.ParsePattern([]byte(c.pattern))
			require.ErrorIs(t, err, filter.ErrInvalidPattern)
			assert.Equal(t, `filter: pattern at "a": `+c.want, err.Error())
		})
	}
}
