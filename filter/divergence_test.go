package filter_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// TestDocumentedDivergences holds the package to what its documentation says under
// "Divergences from EventBridge".
func TestDocumentedDivergences(t *testing.T) {
	folds := []struct{ event, pattern string }{
		{"\u212a", "k"}, // Kelvin sign
		{"ſ", "s"},
		{"ς", "σ"},
	}
	for _, c := range folds {
		ok, err := filter.Test([]byte(`{"a":[{"equals-ignore-case":"`+c.pattern+`"}]}`), []byte(`{"a":"`+c.event+`"}`))
		require.NoError(t, err)
		assert.True(t, ok, "%q against %q", c.event, c.pattern)
	}
	ok, err := filter.Test([]byte(`{"a":[{"equals-ignore-case":"SS"}]}`), []byte(`{"a":"ß"}`))
	require.NoError(t, err)
	assert.False(t, ok)

	ok, err = filter.Test([]byte(`{"a":[{"cidr":"10.0.0.33/24"}]}`), []byte(`{"a":"10.0.0.1"}`))
	require.NoError(t, err)
	assert.True(t, ok, "a block with host bits set stands for its network")

	for _, c := range []struct{ pattern, event string }{
		{`"\ud800"`, `"\ufffd"`},
		{`"\ufffd"`, `"\udfff"`},
		{`"\ud800"`, "\"\uFFFD\""},
	} {
		ok, err = filter.Test([]byte(`{"a":[`+c.pattern+`]}`), []byte(`{"a":`+c.event+`}`))
		require.NoError(t, err)
		assert.True(t, ok, "a lone surrogate reads as U+FFFD: pattern %s, event %s", c.pattern, c.event)
	}

	for _, ev := range []string{`{"a":1,"a":2}`, `{"a.b":2,"a":{"b":1}}`, `{"a":[{"b":1}],"a.b":2}`} {
		ok, err = filter.Test([]byte(`{"a":[{"exists":true}],"a.b":[2]}`), []byte(ev))
		require.ErrorIs(t, err, filter.ErrInvalidEvent, "an ambiguous event is refused: %s", ev)
		assert.False(t, ok)
	}
	ok, err = filter.Test([]byte(`{"a":{"b":[2]}}`), []byte(`{"x":1,"x":2,"a":{"b":2}}`))
	require.NoError(t, err, "keys no rule reads may repeat")
	assert.True(t, ok)
	ok, err = filter.Test([]byte(`{"a":{"a":{"b":[2]}}}`), []byte(`{"a":[{"a":{"b":1}},{"a.b":2}]}`))
	require.NoError(t, err, "each element of an array may spell a path its own way")
	assert.True(t, ok)

	e := &fanbridge.Event{Data: []byte(`{"n":9007199254740992}`)}
	assert.True(t, filter.Field("n").Eq(int64(9007199254740993)).Match(e), "Eq compares as float64")
	ok, err = filter.Test([]byte(`{"n":[9007199254740993]}`), []byte(`{"n":9007199254740992}`))
	require.NoError(t, err)
	assert.False(t, ok, "patterns compare large numbers by their text")
}
