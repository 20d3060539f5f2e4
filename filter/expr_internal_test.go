package filter

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestExprTracking: cost is tracked for expressions whose worst case could exceed the cost limit,
// == and != between list or map literals holding values of the body among them, and for no
// other: comparisons with constants, `in` on a list of constants or on a map, and lookups run
// without a tracker. Of the tracked, only those holding a comprehension run under a timer: the
// time limit is looked at nowhere else, so a timer elsewhere could never stop anything.
func TestExprTracking(t *testing.T) {
	for _, tt := range []struct {
		src            string
		tracked, timed bool
	}{
		{`data.mediaType == 'CHAT' && data.interactingDurationMs > 120000`, false, false},
		{`data.x == 1 || data.x != 'a'`, false, false},
		{`data.x in ['a', 'b']`, false, false},
		{`data.x in ['a', 1, 2.5]`, false, false},
		{`data.x in {'a': data.y}`, false, false},
		{`'a' in [data.y]`, false, false},
		{`[data.x] == ['a'] && {'a': data.x} != {'a': [1, 2]}`, false, false},
		{`{data.o: 1} == {}`, false, false},
		{`event.type in ['a', 'b'] && event.metadata == {'a': 'b'}`, false, false},
		{`has(data.o.a) && data.o.b[0].c.size() > 2`, false, false},

		{`data.x == data.y`, true, false},
		{`data.x in data.y`, true, false},
		{`data.ids.exists(i, i == 1)`, true, true},
		{`[data.x] == [data.y]`, true, false},
		{`[data.x, 1] != [data.y, 1]`, true, false},
		{`{'a': data.x} == {'a': data.y}`, true, false},
		{`data.entity == {'id': data.userId, 'name': 'John Doe'}`, true, false},
		{`data.x in [data.y]`, true, false},
		{`data.x in [[data.y]]`, true, false},
		{`dyn([data.x]) == dyn([data.y])`, true, false},
		{`(true ? [data.x] : []) == [data.y]`, true, false},
		{`'q1' in data.activeQueueIds`, true, false},
		{`data.k.map(i, data.x) == data.k.map(i, data.x)`, true, true},
		{`[1, 2].exists(i, data.a == data.b)`, true, true},
	} {
		t.Run(tt.src, func(t *testing.T) {
			x := MustExpr(tt.src)
			assert.Equal(t, tt.tracked, x.tracked, "tracked")
			assert.Equal(t, tt.timed, x.timeLimit != 0, "timed")
		})
	}
}
