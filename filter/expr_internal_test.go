package filter

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExprTracking: cost is tracked, and evaluations timed, for expressions whose worst case
// could exceed the cost limit, == and != between list or map literals holding values of the body
// among them, and for no other: comparisons with constants, `in` on a list of constants or on a
// map, and lookups run without a tracker or a timer.
func TestExprTracking(t *testing.T) {
	for _, tt := range []struct {
		src     string
		tracked bool
	}{
		{`data.mediaType == 'CHAT' && data.interactingDurationMs > 120000`, false},
		{`data.x == 1 || data.x != 'a'`, false},
		{`data.x in ['a', 'b']`, false},
		{`data.x in ['a', 1, 2.5]`, false},
		{`data.x in {'a': data.y}`, false},
		{`'a' in [data.y]`, false},
		{`[data.x] == ['a'] && {'a': data.x} != {'a': [1, 2]}`, false},
		{`{data.o: 1} == {}`, false},
		{`event.type in ['a', 'b'] && event.metadata == {'a': 'b'}`, false},
		{`has(data.o.a) && data.o.b[0].c.size() > 2`, false},

		{`data.x == data.y`, true},
		{`data.x in data.y`, true},
		{`data.ids.exists(i, i == 1)`, true},
		{`[data.x] == [data.y]`, true},
		{`[data.x, 1] != [data.y, 1]`, true},
		{`{'a': data.x} == {'a': data.y}`, true},
		{`data.entity == {'id': data.userId, 'name': 'John Doe'}`, true},
		{`data.x in [data.y]`, true},
		{`data.x in [[data.y]]`, true},
		{`dyn([data.x]) == dyn([data.y])`, true},
		{`(true ? [data.x] : []) == [data.y]`, true},
	} {
		t.Run(tt.src, func(t *testing.T) {
			x := MustExpr(tt.src)
			assert.Equal(t, tt.tracked, x.timeLimit != 0)
		})
	}
}
