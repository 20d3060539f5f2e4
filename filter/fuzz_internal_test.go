package filter

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
)

// FuzzFieldPath: any path on any body never panics, and for valid JSON the raw-bytes lookup
// finds a value exactly when a decoded tree (encoding/json, duplicate keys kept) has one.
func FuzzFieldPath(f *testing.F) {
	f.Add("propertyChanges.newValues", []byte(`{"propertyChanges":[{"newValues":["Available"]},{"oldValues":[]}]}`))
	f.Add(`a\.b`, []byte(`{"a.b":1,"a":{"b":2}}`))
	f.Add("", []byte(`[]`))
	f.Add("x", []byte(`{"x":[[],[{}]],"x":null}`))
	f.Add("k", []byte(`{"\u006b":"v"}`))
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		ref := Field(path)
		e := &fanbridge.Event{Data: body}
		got := ref.Exists().Match(e)
		gotX := ref.Eq("x").Match(e)
		if !utf8.Valid(body) || !utf8.ValidString(path) {
			return
		}
		root, err := parsePatternJSON(body)
		if err != nil {
			return // not JSON, or deeper than the reference parser goes
		}
		var want, wantX bool
		var visit func(n *jsonNode, p []string)
		visit = func(n *jsonNode, p []string) {
			if n.kind == 'a' {
				for _, c := range n.vals {
					visit(c, p)
				}
				return
			}
			if len(p) == 0 {
				want = true
				wantX = wantX || (n.kind == 's' && n.str == "x")
				return
			}
			if n.kind == 'o' {
				for i, k := range n.keys {
					if k == p[0] {
						visit(n.vals[i], p[1:])
					}
				}
			}
		}
		visit(root, parseFieldPath(path))
		if got != want || gotX != wantX {
			t.Fatalf("path %q on %s: Exists %v want %v, Eq(x) %v want %v", path, body, got, want, gotX, wantX)
		}
	})
}

// FuzzComparableNumber holds the exact-decimal conversion to math/big.
func FuzzComparableNumber(f *testing.F) {
	for _, s := range []string{
		"0", "-0", "5", "5.0", "3.0e2", "1e-7", "0.000001", "500000000000", "-500000000000.000001", "1E+3",
		"123456789012345678901", "0.10000000", "7e-400", "1e400",
		// zero with more than six zero decimals is still zero; 9.3e12 in millionths overflows an int64
		"0.0000000", "0e-7", "-0.000e+3", "9300000000000", "500000000000.000001", "499999999999.999999",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := []byte(s)
		if end, err := scanNumber(b, 0); err != nil || end != len(b) {
			return
		}
		if i := strings.IndexAny(s, "eE"); i >= 0 && len(strings.TrimLeft(s[i+1:], "+-0")) > 4 {
			return // an exponent big.Rat would take too long over
		}
		got, ok := comparableNumber(b)
		r, valid := new(big.Rat).SetString(s)
		if !valid {
			return // big refuses huge exponents; nothing to compare with
		}
		micro := new(big.Rat).Mul(r, big.NewRat(1_000_000, 1))
		limit := big.NewRat(numLimitMicro, 1)
		wantOK := micro.IsInt() && micro.Cmp(limit) <= 0 && micro.Cmp(new(big.Rat).Neg(limit)) >= 0
		if ok != wantOK {
			t.Fatalf("%s: ok %v, want %v", s, ok, wantOK)
		}
		if ok && micro.Num().Int64() != got {
			t.Fatalf("%s: %d millionths, want %s", s, got, micro.Num())
		}
	})
}

// FuzzMatchOracle holds a Pattern, and a Matcher holding it, to the oracle of the randomized
// tests on any pattern and any event: the same events refused as ambiguous, the same answer on the
// others. The last argument lowers, bit by bit (see lowLimits), the sizes from which a match turns
// to the means it keeps for large events, which the small events a fuzzer makes would never reach
// otherwise: narrowing the options at each step, working the arrays' leaves out from the path
// table, and looking strings up in the value index. The limits are the call's own, so inputs run
// in parallel do not disturb one another.
func FuzzMatchOracle(f *testing.F) {
	seeds := []struct{ pattern, event string }{
		{`{"a":{"b":[1],"c":[2]}}`, `{"a":[{"b":1,"c":1},{"b":1,"c":2}]}`},
		{`{"a":{"b":[1]}}`, `{"a":{"b":1},"a.b":1}`},
		{`{"a":{"b":[1]}}`, `{"a":[{"b":1}],"a.b":2}`},
		{`{"a":{"b":[1]}}`, `{"a.b":2,"a":[{"b":1},{"b":3}]}`},
		{`{"a":{"b":[1]}}`, `{"a":[{"b":1},{"a.b":2}],"x":1,"x":2}`},
		{`{"a":{"b":[1]}}`, `{"a":1,"\u0061":{"b":1}}`},
		{`{"x":{"d":{"a":[2]}}}`, `{"x":[{"d":{"a":9}},{"d":[[{"a":1}],[{"a":2}]],"d.a":2}]}`},
		{`{".x":[2],"":{"y":[{"exists":false}]}}`, `{"":{"x":1},".x":2}`},
		{`{"a":{"b":[{"exists":false}],"c":[1]}}`, `{"a":[{"c":1},{"b":2,"c":1}]}`},
		{`{"a":[{"numeric":[">",1]}],"a.x":[5]}`, `{"a":[[1,{"x":5}],[2,{"x":6}]]}`},
	}
	// $or: events that match one alternative only, and events that satisfy every field of an
	// alternative but one, each field in turn, so that an alternative that lost a step, or took
	// another's, is seen.
	ors := []struct {
		pattern string
		events  []string
	}{
		{`{"employees":{"$or":[{"firstName":["Anna"],"lastName":["Jones"]},{"firstName":["Peter"],"lastName":["Jones"]}]}}`, []string{
			`{"employees":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"Peter","lastName":"Jones"}]}`,
			`{"employees":[{"firstName":"Peter","lastName":"Smith"},{"firstName":"Anna","lastName":"Jones"}]}`,
			`{"employees":[{"firstName":"Peter","lastName":"Smith"},{"firstName":"John","lastName":"Jones"}]}`,
			`{"employees":[{"firstName":"Anna","lastName":"Smith"},{"firstName":"Peter","lastName":"Doe"}]}`,
		}},
		{`{"$or":[{"source":["aws.s3"]},{"detail":{"state":["running"],"c-count":[5]}}]}`, []string{
			`{"source":"aws.ec2","detail":{"state":"running","c-count":5}}`,
			`{"source":"aws.ec2","detail":{"state":"running","c-count":6}}`,
			`{"source":"aws.ec2","detail":{"state":"stopped","c-count":5}}`,
			`{"source":"aws.s3","detail":{"state":"stopped"}}`,
		}},
		{`{"source":["aws.ec2"],"$or":[{"region":["eu-west-1"],"account":["1"]},{"region":["us-east-1"],"account":["2"]}]}`, []string{
			`{"source":"aws.ec2","region":"us-east-1","account":"2"}`,
			`{"source":"aws.ec2","region":"us-east-1","account":"1"}`,
			`{"source":"aws.ec2","region":"eu-west-1","account":"2"}`,
			`{"source":"aws.s3","region":"us-east-1","account":"2"}`,
		}},
		{`{"d":{"$or":[{"q":["a"],"s":["x"]},{"q":["b"],"s":["y"]},{"q":["c"],"s":["z"]}]}}`, []string{
			`{"d":[{"q":["a","b"],"s":["y","w"]},{"q":"c","s":"x"}]}`,
			`{"d":[{"q":["a","b"],"s":["w","v"]},{"q":"c","s":"x"}]}`,
			`{"d":[{"q":["c","b"],"s":["x","w"]},{"q":"a","s":"z"}]}`,
			`{"d":[{"q":"a","s":"x"},{"q":"b","s":"y"}],"e":1}`,
			// One string in several elements: the one that matches comes first, or last.
			`{"d":[{"q":"a","s":"z"},{"q":"b","s":"y"},{"q":"c","s":"y"}]}`,
			`{"d":[{"q":"a","s":"y"},{"q":"b","s":"w"},{"q":"b","s":"y"}]}`,
		}},
		// A value at a's own path has a position in the outer array only: with a.x tested
		// first, the search must keep that position for a.
		{`{"$or":[{"b":["z"]},{"a":[{"numeric":[">",1]}],"a.x":[5]}]}`, []string{
			`{"a":[[1,{"x":5}],[2,{"x":6}]]}`,
			`{"a":[[1,{"x":6}],[2,{"x":5}]]}`,
		}},
		{`{"a":{"$or":[{"b":[1]},{"c":[2],"d":[{"exists":false}]}]}}`, []string{
			`{"a":[{"c":2},{"c":3,"d":1}]}`,
			`{"a":[{"c":2,"d":1},{"c":3}]}`,
			`{"a":[{"b":2,"c":2,"d":null},{"b":[[1],{"z":0}]}]}`,
		}},
		{`{"x":{"$or":[{"a":["p"],"b":[{"prefix":"q"}]},{"a":["r"],"b":[{"numeric":[">",3]}]},{"a":["s"],"b":[{"anything-but":"t"}]}]}}`, []string{
			`{"x":[{"a":["p","r"],"b":[[4],{"c":1}]},{"a":"s","b":"t"}]}`,
			`{"x":[{"a":["p","r"],"b":[[3],{"c":1}]},{"a":"s","b":"t"}]}`,
			`{"x":[{"a":["s","r"],"b":[[3,"qq"],{"c":1}]},{"a":"p","b":"u"}]}`,
		}},
	}
	for _, o := range ors {
		for _, ev := range o.events {
			seeds = append(seeds, struct{ pattern, event string }{o.pattern, ev})
		}
	}
	for _, c := range conformanceOrCases(f) {
		seeds = append(seeds, c)
	}
	for _, s := range seeds {
		for _, low := range []int{0, lowNarrow | lowHold | lowKeyed, lowNarrow | lowKeyedRatio} {
			f.Add([]byte(s.pattern), []byte(s.event), byte(low))
		}
	}
	f.Fuzz(func(t *testing.T, src, event []byte, low byte) {
		p, err := ParsePattern(src)
		if err != nil {
			return
		}
		lim := lowLimits(int(low))
		ok, err := p.matchRaw(event, lim)
		if err != nil && !errors.Is(err, errEventAmbiguous) {
			return // not JSON, or nested too deep
		}
		if !utf8.Valid(event) || !json.Valid(event) {
			// encoding/json would read other strings than the bytes hold; or the event was
			// refused as ambiguous before the walk reached its malformed part.
			return
		}
		root := oracleDecode(t, event)
		refused := oracleRefuses(oracleAmbiguous(root), p.table.paths)
		if refused != (err != nil) {
			t.Fatalf("pattern %s on %s (limits %+v): error %v, oracle refuses %v", src, event, lim, err, refused)
		}
		m := NewMatcher()
		if err := m.AddPattern("p", p); err != nil {
			t.Fatal(err)
		}
		got, merr := m.current().matchRaw(event, nil, lim)
		if (merr != nil) != refused {
			t.Fatalf("pattern %s on %s (limits %+v): Matcher error %v, oracle refuses %v", src, event, lim, merr, refused)
		}
		if refused {
			return
		}
		want := oracleMatch(p, oracleLeaves(root))
		if ok != want {
			t.Fatalf("pattern %s on %s (limits %+v): %v, oracle %v", src, event, lim, ok, want)
		}
		if (len(got) == 1) != want {
			t.Fatalf("pattern %s on %s (limits %+v): Matcher %v, oracle %v", src, event, lim, got, want)
		}
		if len(p.branches) > 1 {
			if b, err := p.searchRaw(event, lim); err != nil || b != want {
				t.Fatalf("pattern %s on %s (limits %+v): branch by branch %v (%v), oracle %v", src, event, lim, b, err, want)
			}
		}
	})
}

// conformanceOrCases returns the patterns with $or of testdata/conformance.json, each with the
// event its case tests it on.
func conformanceOrCases(f *testing.F) []struct{ pattern, event string } {
	src, err := os.ReadFile(filepath.Join("testdata", "conformance.json"))
	if err != nil {
		f.Fatal(err)
	}
	var tab struct {
		Events map[string]json.RawMessage `json:"events"`
		Cases  []struct {
			Event   string          `json:"event"`
			Pattern json.RawMessage `json:"pattern"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(src, &tab); err != nil {
		f.Fatal(err)
	}
	var out []struct{ pattern, event string }
	for _, c := range tab.Cases {
		if !bytes.Contains(c.Pattern, []byte(`"$or"`)) {
			continue
		}
		ev := tab.Events[c.Event]
		if ev[0] == '"' { // the name of a sample file
			var name string
			if err := json.Unmarshal(ev, &name); err != nil {
				f.Fatal(err)
			}
			if ev, err = os.ReadFile(filepath.Join("testdata", name)); err != nil {
				f.Fatal(err)
			}
		}
		out = append(out, struct{ pattern, event string }{string(c.Pattern), string(ev)})
	}
	if len(out) == 0 {
		f.Fatal("the conformance table has no $or case")
	}
	return out
}
