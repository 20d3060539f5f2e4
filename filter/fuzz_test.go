package filter_test

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// fuzzSeeds returns the conformance table's patterns and events (in the order of the events'
// names, so that FuzzMatch pairs them the same way each time), and the invalid patterns.
func fuzzSeeds(f *testing.F) (patterns, events [][]byte) {
	tab := loadConformance(f)
	for _, c := range tab.cases {
		patterns = append(patterns, c.Pattern)
	}
	for _, name := range slices.Sorted(maps.Keys(tab.events)) {
		events = append(events, tab.events[name])
	}
	src, err := os.ReadFile(filepath.Join("testdata", "invalid_patterns.json"))
	if err != nil {
		f.Fatal(err)
	}
	var bad []struct {
		Pattern string `json:"pattern"`
	}
	if err := json.Unmarshal(src, &bad); err != nil {
		f.Fatal(err)
	}
	for _, b := range bad {
		if len(b.Pattern) < 4096 {
			patterns = append(patterns, []byte(b.Pattern))
		}
	}
	return patterns, events
}

// FuzzParsePattern: the compiler never panics; what it rejects is a *PatternError wrapping one of
// the two sentinels; what it accepts repeats no key in any object, and matches or not, the same
// alone and inside a Matcher, and, for a pattern with $or, which both match through one
// automaton, the same as the search that tries its alternatives one by one.
func FuzzParsePattern(f *testing.F) {
	patterns, events := fuzzSeeds(f)
	for _, p := range patterns {
		f.Add(p)
	}
	for _, p := range []string{
		`{"source":["a"],"source":["b"]}`,
		`{"detail":{"mediaType":["VOICE"]},"detail":{"direction":["INBOUND"]}}`,
		`{"source":["a"],"sourc\u0065":["b"]}`,
		`{"$or":[{"a":[1],"a":[2]},{"b":[1]}]}`,
		`{"a":[{"anything-but":{"prefix":"x","prefix":"y"}}]}`,
	} {
		f.Add([]byte(p))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		p, err := filter.ParsePattern(src)
		if err != nil {
			var pe *filter.PatternError
			if !errors.As(err, &pe) || !(errors.Is(err, filter.ErrInvalidPattern) || errors.Is(err, filter.ErrPatternTooComplex)) {
				t.Fatalf("error %v is not a classified *PatternError", err)
			}
			return
		}
		if repeatsKey(src) {
			t.Fatalf("pattern %s repeats a key, and compiled", src)
		}
		if p.String() != string(src) {
			t.Fatalf("String() = %q", p.String())
		}
		m := filter.NewMatcher()
		if err := m.AddPattern("p", p); err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			single, err := p.MatchRaw(ev)
			if err != nil {
				t.Fatalf("sample event rejected: %v", err)
			}
			got, err := m.MatchRaw(ev, nil)
			if err != nil {
				t.Fatal(err)
			}
			if single != (len(got) == 1) {
				t.Fatalf("pattern %s: single %v, matcher %v on %s", src, single, got, ev)
			}
			if filter.Branches(p) > 1 {
				if want, err := filter.SearchBranches(p, ev); err != nil || single != want {
					t.Fatalf("pattern %s: %v, branch by branch %v (%v) on %s", src, single, want, err, ev)
				}
			}
		}
	})
}

// FuzzMatch: for any pattern and any bytes as the event, nothing panics, the Pattern and a
// Matcher holding it agree on the answer and on whether the event is valid, and an event they
// accept is valid JSON. Both match a pattern with $or through one automaton, so such a pattern is
// also held to the search that tries its alternatives one by one.
func FuzzMatch(f *testing.F) {
	patterns, events := fuzzSeeds(f)
	for i, p := range patterns {
		f.Add(p, events[i%len(events)])
	}
	f.Add([]byte(`{"a":{"b":[{"exists":false}],"c":[1]}}`), []byte(`{"a":[{"c":1},{"b":2,"c":1}]}`))
	f.Add([]byte(`{"k":["\u00e9"]}`), []byte(`{"\u006b":"\u00e9"}`))
	// $or: events that satisfy every field of the second alternative but one.
	employees := `{"employees":{"$or":[{"firstName":["Anna"],"lastName":["Jones"]},{"firstName":["Peter"],"lastName":["Jones"]}]}}`
	f.Add([]byte(employees), []byte(`{"employees":[{"firstName":"Peter","lastName":"Smith"},{"firstName":"Anna","lastName":"Doe"}]}`))
	f.Add([]byte(employees), []byte(`{"employees":[{"firstName":"John","lastName":"Jones"},{"firstName":"Anna","lastName":"Doe"}]}`))
	state := `{"$or":[{"source":["aws.s3"]},{"detail":{"state":["running"],"c-count":[5]}}]}`
	f.Add([]byte(state), []byte(`{"source":"aws.ec2","detail":{"state":"running","c-count":6}}`))
	f.Add([]byte(state), []byte(`{"source":"aws.ec2","detail":{"state":"stopped","c-count":5}}`))
	// Events that repeat a key, or spell a path two ways, where the pattern reads it.
	f.Add([]byte(`{"a":{"b":[1]}}`), []byte(`{"a":{"b":1},"a.b":1}`))
	f.Add([]byte(`{"a":{"b":[1]}}`), []byte(`{"a":[{"b":1}],"a.b":2}`))
	f.Add([]byte(`{"a":{"b":[1]}}`), []byte(`{"\u0061":{"b":1},"a":{"c":1}}`))
	// Two fields in each of four arrays of objects: a walk that took the arrays' fields in turn
	// across the arrays held a position in all four at once.
	xw := `{"x":[1],"w":[{"numeric":[">",5]}]}`
	arr := "[" + strings.TrimSuffix(strings.Repeat(`{"x":1,"w":0},`, 16), ",") + "]"
	f.Add([]byte(`{"a":`+xw+`,"b":`+xw+`,"c":`+xw+`,"d":`+xw+`}`),
		[]byte(`{"a":`+arr+`,"b":`+arr+`,"c":`+arr+`,"d":`+arr+`}`))
	f.Fuzz(func(t *testing.T, src, event []byte) {
		p, err := filter.ParsePattern(src)
		if err != nil {
			return
		}
		single, err1 := p.MatchRaw(event)
		m := filter.NewMatcher()
		if err := m.AddPattern("p", p); err != nil {
			t.Fatal(err)
		}
		got, err2 := m.MatchRaw(event, nil)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("pattern error %v, matcher error %v", err1, err2)
		}
		if err1 != nil {
			if !errors.Is(err1, filter.ErrInvalidEvent) {
				t.Fatalf("event error %v does not wrap ErrInvalidEvent", err1)
			}
			if single || len(got) != 0 {
				t.Fatal("an invalid event matched")
			}
			return
		}
		if !json.Valid(event) {
			t.Fatalf("accepted invalid JSON %q", event)
		}
		if single != (len(got) == 1) {
			t.Fatalf("pattern %s on %s: single %v, matcher %v", src, event, single, got)
		}
		if filter.Branches(p) > 1 {
			want, err := filter.SearchBranches(p, event)
			if err != nil || single != want {
				t.Fatalf("pattern %s on %s: %v, branch by branch %v (%v)", src, event, single, want, err)
			}
		}
		if p.Match(&fanbridge.Event{Raw: event}) != single {
			t.Fatal("Match and MatchRaw disagree")
		}
	})
}

// FuzzExpr: compiling any source never panics, and a compiled expression evaluates on sample
// events without panicking, Match agreeing with Eval.
func FuzzExpr(f *testing.F) {
	for _, s := range []string{
		"data.mediaType == 'CHAT' && data.interactingDurationMs > 120000",
		"event.type.startsWith('v2.users.') && has(data.presenceDefinition)",
		"data.propertyChanges.exists(c, c.newValues.exists(v, v == 'Available'))",
		"event.time > timestamp('2020-01-01T00:00:00Z')",
		"data.x", "1 +", "size(data) > 2", "[1,2,3].map(x, x * 2)[0] == 2",
		"event.metadata['correlation-id'] != ''", "data.a.b.c == null",
	} {
		f.Add(s)
	}
	body := []byte(`{"mediaType":"CHAT","interactingDurationMs":130000,"propertyChanges":[{"newValues":["Available"]}],"a":{"b":{"c":null}}}`)
	evs := []*fanbridge.Event{
		{ID: "1", Type: "v2.users.{id}.presence", Data: body, Metadata: map[string]string{"correlation-id": "c"}},
		{ID: "2", Data: []byte(`[1,2`)},
		{},
	}
	f.Fuzz(func(t *testing.T, src string) {
		x, err := filter.Expr(src)
		if err != nil {
			if !errors.Is(err, filter.ErrInvalidExpression) {
				t.Fatalf("error %v does not wrap ErrInvalidExpression", err)
			}
			return
		}
		for _, e := range evs {
			ok, _ := x.Eval(e)
			if x.Match(e) != ok {
				t.Fatal("Match and Eval disagree")
			}
		}
	})
}
