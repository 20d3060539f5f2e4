package filter_test

import (
	"strings"
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
