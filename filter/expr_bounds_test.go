package filter_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// The time limit is looked at between the iterations of a comprehension, not only once the
// evaluation has ended: a walk over 120,000 numbers that charges nothing stops near its limit.
func TestExprTimeLimitStopsAWalkMidway(t *testing.T) {
	e := &fanbridge.Event{ID: "evt-t", Data: []byte(`{"ids":[` + numberList(120_000, "0") + `]}`)}
	x := filter.MustExpr(`data.ids.exists_one(i, false)`, filter.WithTimeLimit(20*time.Millisecond))
	ok, took, err := evalWithin(t, time.Minute, x, e)
	assert.False(t, ok)
	require.Error(t, err)
	assert.Equal(t, "the time limit was exceeded", reasonOf(t, err))
	assert.Less(t, took, time.Second, "stopped near its time limit, not at the end of the walk")
}

// A cost limit raised above the default lets comparisons up to it run, and charges them in full.
func TestExprRaisedCostLimitComparisons(t *testing.T) {
	big := numberList(150_000, "0")
	e := &fanbridge.Event{ID: "evt-r", Data: []byte(`{"items":[1,2,3,4,5,6,7],"a":[[` + big + `]],"b":[[` + big + `]]}`)}
	ok, _, err := evalWithin(t, time.Minute, filter.MustExpr(`data.a == data.b`, filter.WithCostLimit(1_000_000)), e)
	require.NoError(t, err, "150,000 values fit a limit of 1,000,000")
	assert.True(t, ok)
	ok, _, err = evalWithin(t, time.Minute, filter.MustExpr(`data.items.exists(i, data.a != data.b)`, filter.WithCostLimit(1_000_000)), e)
	assert.False(t, ok)
	require.Error(t, err, "7 comparisons of 150,000 values each exceed 1,000,000")
	assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))
}

// A cost limit below an expression's worst case is enforced, also where the default limit would
// not need to track the evaluation.
func TestExprLowCostLimitIsTracked(t *testing.T) {
	src := `[` + numberList(64, "7") + `].exists(v, v == 8) || true`
	ok, err := filter.MustExpr(src).Eval(&fanbridge.Event{Data: []byte(`{}`)})
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = filter.MustExpr(src, filter.WithCostLimit(10)).Eval(&fanbridge.Event{Data: []byte(`{}`)})
	assert.False(t, ok)
	require.Error(t, err)
	assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))
}

// A body of 512 levels of objects is read, one of 513 refused, as for arrays.
func TestExprObjectDepth(t *testing.T) {
	nested := func(levels int) []byte {
		return []byte(strings.Repeat(`{"a":`, levels-1) + `{}` + strings.Repeat(`}`, levels-1))
	}
	x := filter.MustExpr(`has(data.a)`)
	ok, err := x.Eval(&fanbridge.Event{Data: nested(512)})
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = x.Eval(&fanbridge.Event{Data: nested(513)})
	assert.False(t, ok)
	assert.Equal(t, "the event body is nested too deep", reasonOf(t, err))
	assert.ErrorIs(t, err, filter.ErrInvalidEvent)
}

// An integer too large for an int reads as a double.
func TestExprHugeIntegerIsADouble(t *testing.T) {
	for _, n := range []string{"18446744073709551616", "-9223372036854775809", "1" + strings.Repeat("0", 300)} {
		ok, err := filter.MustExpr(`type(data.x) == double && (data.x > 1e18 || data.x < -1e18)`).Eval(&fanbridge.Event{Data: []byte(`{"x":` + n + `}`)})
		require.NoError(t, err, n)
		assert.True(t, ok, n)
	}
}

// Text after the body's JSON value makes it "not JSON"; blanks around it do not.
func TestExprTrailingData(t *testing.T) {
	for _, body := range []string{`{"x":1} {"x":2}`, `{"x":1}}`, `{"x":1},`} {
		ok, err := filter.MustExpr(`data.x == 1`).Eval(&fanbridge.Event{Data: []byte(body)})
		assert.False(t, ok, body)
		assert.Equal(t, "the event body is not JSON", reasonOf(t, err), body)
	}
	ok, err := filter.MustExpr(`data.x == 1`).Eval(&fanbridge.Event{Data: []byte(" {\"x\":1} \n")})
	require.NoError(t, err)
	assert.True(t, ok)
}

// The size limit counts code points, 4,096 by default, and WithMaxExprSize raises or lowers it.
func TestExprSizeLimitInCodePoints(t *testing.T) {
	sized := func(n int, pad string) string {
		// `'<pad...>' != ''` is n code points long
		return `'` + strings.Repeat(pad, n-8) + `' != ''`
	}
	for _, pad := range []string{"a", "é", "日"} {
		_, err := filter.Expr(sized(4096, pad))
		require.NoError(t, err, "4,096 code points of %q", pad)
		_, err = filter.Expr(sized(4097, pad))
		assert.ErrorIs(t, err, filter.ErrInvalidExpression, "4,097 code points of %q", pad)
	}
	_, err := filter.Expr(sized(6000, "a"), filter.WithMaxExprSize(8192))
	require.NoError(t, err, "a raised limit is honoured")
	_, err = filter.Expr(sized(101, "a"), filter.WithMaxExprSize(100))
	assert.ErrorIs(t, err, filter.ErrInvalidExpression)
	_, err = filter.Expr(sized(100, "a"), filter.WithMaxExprSize(100))
	require.NoError(t, err)
}

// Comparisons are charged what they may walk: nothing below the top level between lists of
// different sizes, and the smaller side when one is large.
func TestExprComparisonChargesWhatItWalks(t *testing.T) {
	z := numberList(1000, "0")
	e := &fanbridge.Event{ID: "evt-s", Data: []byte(`{"a":[[` + z + `]],"c":[[` + z + `],0],"small":[[` + numberList(300, "0") + `]],"big":[[` + numberList(10_000, "0") + `]]}`)}
	for src, want := range map[string]bool{
		`data.a == data.c`: false, `data.small == data.big`: false, `data.big != data.small && data.a != data.c`: true,
	} {
		ok, err := filter.MustExpr(src, filter.WithCostLimit(500)).Eval(e)
		require.NoError(t, err, src)
		assert.Equal(t, want, ok, src)
	}
}

// A modulus by zero has the reason EvalError documents.
func TestExprModulusByZeroReason(t *testing.T) {
	_, err := filter.MustExpr(`data.n % 0 == 1`).Eval(&fanbridge.Event{Data: []byte(`{"n":7}`)})
	assert.Equal(t, "division by zero", reasonOf(t, err))
}

// An event without metadata has an empty map, and a key looked up in it is missing.
func TestExprWithoutMetadata(t *testing.T) {
	ok, err := filter.MustExpr(`size(event.metadata) == 0 && event.metadata == {} && !('k' in event.metadata)`).Eval(&fanbridge.Event{})
	require.NoError(t, err)
	assert.True(t, ok)
	_, err = filter.MustExpr(`event.metadata['k'] == 'v'`).Eval(&fanbridge.Event{})
	assert.Equal(t, "a field or key is missing", reasonOf(t, err))
}
