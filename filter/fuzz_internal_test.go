package filter

import (
	"encoding/json"
	"errors"
	"math/big"
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
	for _, s := range []string{"0", "-0", "5", "5.0", "3.0e2", "1e-7", "0.000001", "500000000000", "-500000000000.000001", "1E+3", "123456789012345678901", "0.10000000", "7e-400", "1e400"} {
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

// FuzzMatchOracle holds a Pattern to the oracle of the randomized tests on any pattern and any
// event: the same events refused as ambiguous, the same answer on the others.
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
	}
	for _, s := range seeds {
		f.Add([]byte(s.pattern), []byte(s.event))
	}
	f.Fuzz(func(t *testing.T, src, event []byte) {
		p, err := ParsePattern(src)
		if err != nil {
			return
		}
		ok, err := p.MatchRaw(event)
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
			t.Fatalf("pattern %s on %s: error %v, oracle refuses %v", src, event, err, refused)
		}
		if !refused && ok != oracleMatch(p, oracleLeaves(root)) {
			t.Fatalf("pattern %s on %s: %v, oracle %v", src, event, ok, !ok)
		}
	})
}
