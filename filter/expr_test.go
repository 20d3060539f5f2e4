package filter_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/filter"
)

func chatEvent() *fanbridge.Event {
	return &fanbridge.Event{
		ID:       "evt-1",
		Type:     "v2.detail.events.conversation.{id}.customer.end",
		Topic:    "v2.detail.events.conversation.c1.customer.end",
		Source:   "aws.partner/genesys.com/cloud/org/prod",
		Time:     time.Date(2022, 6, 14, 16, 12, 11, 0, time.UTC),
		Metadata: map[string]string{fanbridge.MetaCorrelationID: "corr-1"},
		Data: []byte(`{"mediaType":"CHAT","interactingDurationMs":185000,"score":4.5,"secret":"s3cr3t-body",
			"propertyChanges":[{"property":"PRESENCE","newValues":["Available"]}],"none":null,"tags":["vip","web"]}`),
	}
}

func TestExprEvaluates(t *testing.T) {
	e := chatEvent()
	tests := []struct {
		src  string
		want bool
	}{
		{`data.mediaType == 'CHAT' && data.interactingDurationMs > 120000`, true},
		{`data.mediaType == 'VOICE'`, false},
		{`data.interactingDurationMs > 120000.5`, true},
		{`data.score > 4`, true},
		{`data.score == 4.5`, true},
		{`data.interactingDurationMs == 185000.0`, true},
		{`data.propertyChanges.exists(c, 'Available' in c.newValues)`, true},
		{`'vip' in data.tags`, true},
		{`data.none == null`, true},
		{`has(data.mediaType) && !has(data.wrapupCode)`, true},
		{`event.id == 'evt-1'`, true},
		{`event.type.endsWith('.customer.end')`, true},
		{`event.topic.contains('.c1.')`, true},
		{`event.source.startsWith('aws.partner/genesys.com/')`, true},
		{`event.time == timestamp('2022-06-14T16:12:11Z')`, true},
		{`event.metadata['correlation-id'] == 'corr-1'`, true},
		{`event.type == 'v2.users.{id}.presence'`, false},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			x, err := filter.Expr(tt.src)
			require.NoError(t, err)
			got, err := x.Eval(e)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.want, x.Match(e))
			assert.Equal(t, tt.src, x.String())
		})
	}

	// An event without a time shows the Unix epoch, as the documentation says.
	x, err := filter.Expr(`event.time == timestamp(0)`)
	require.NoError(t, err)
	timeless := *e
	timeless.Time = time.Time{}
	assert.True(t, x.Match(&timeless))
	assert.False(t, x.Match(e))
}

func TestExprCompileErrors(t *testing.T) {
	for _, src := range []string{
		``,
		`data.(`,
		`1 + 1`,
		`'text'`,
		`unknown == 1`,
		`data.x == 1 &&`,
		`event.type + 1 == 2`,
		strings.Repeat(`data.x == 1 || `, 400) + `true`,
	} {
		t.Run(src[:min(len(src), 30)], func(t *testing.T) {
			x, err := filter.Expr(src)
			assert.Nil(t, x)
			assert.ErrorIs(t, err, filter.ErrInvalidExpression)
		})
	}
	_, err := filter.Expr(`true`, filter.WithMaxExprSize(0))
	assert.ErrorIs(t, err, filter.ErrInvalidExpression)
	_, err = filter.Expr(`data.mediaType == 'CHAT'`, filter.WithMaxExprSize(10))
	assert.ErrorIs(t, err, filter.ErrInvalidExpression, "longer than the configured size")
	_, err = filter.Expr(`data.mediaType == 'CHAT'`, filter.WithMaxExprSize(100))
	assert.NoError(t, err)
	assert.Panics(t, func() { filter.MustExpr(`1`) })
}

func TestExprEvaluationErrorsDoNotMatch(t *testing.T) {
	e := chatEvent()
	for _, tt := range []struct {
		name string
		src  string
		e    *fanbridge.Event
	}{
		{"missing-field", `data.wrapupCode == 'Sale'`, e},
		{"wrong-type", `data.mediaType > 5`, e},
		{"dyn-result-not-bool", `data.mediaType`, e},
		{"body-not-json", `data.mediaType == 'CHAT'`, &fanbridge.Event{Data: []byte(`{"mediaType":`)}},
		{"no-body", `data.mediaType == 'CHAT'`, &fanbridge.Event{}},
		{"nil-event", `data.mediaType == 'CHAT'`, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			x := filter.MustExpr(tt.src)
			ok, err := x.Eval(tt.e)
			assert.False(t, ok)
			assert.Error(t, err)
			assert.False(t, x.Match(tt.e))
		})
	}
	// event alone never needs the body, so a broken body does not hurt it
	x := filter.MustExpr(`event.id == 'x'`)
	ok, err := x.Eval(&fanbridge.Event{ID: "x", Data: []byte(`{{{`)})
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestExprCostLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"xs":[`)
	for i := range 300 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("1")
	}
	b.WriteString(`]}`)
	e := &fanbridge.Event{Data: []byte(b.String())}
	const quadratic = `data.xs.all(x, data.xs.all(y, x + y == 2))`

	// The time limit is raised for the test to be about the cost limit alone: under the race
	// detector, tracking slows these steps down past the default time limit.
	x := filter.MustExpr(quadratic, filter.WithTimeLimit(time.Minute))
	ok, err := x.Eval(e)
	assert.False(t, ok)
	require.Error(t, err, "90,000 steps exceed the default limit")
	assert.Contains(t, err.Error(), "cost")

	// Tracking slows the 90,000 steps down to more than the default time limit.
	x = filter.MustExpr(quadratic, filter.WithCostLimit(10_000_000), filter.WithTimeLimit(time.Minute))
	ok, err = x.Eval(e)
	require.NoError(t, err)
	assert.True(t, ok)
}

func TestExprLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	x := filter.MustExpr(`data.wrapupCode == 'Sale'`, filter.WithExprLogger(l))
	assert.False(t, x.Match(chatEvent()))
	out := buf.String()
	assert.Contains(t, out, "event_id=evt-1")
	assert.Contains(t, out, "wrapupCode")
	assert.NotContains(t, out, "s3cr3t-body", "the body never reaches the log")

	buf.Reset()
	assert.True(t, filter.MustExpr(`data.mediaType == 'CHAT'`, filter.WithExprLogger(l)).Match(chatEvent()))
	assert.Empty(t, buf.String(), "nothing is logged for a clean evaluation")
}

// TestExprErrorsKeepTheBodyOut: CEL's messages quote values from the body (a key looked up by a
// value, a string that is no timestamp or regular expression); neither the log record nor the
// error Eval returns may carry them.
func TestExprErrorsKeepTheBodyOut(t *testing.T) {
	const secret = "s3cr3t-7f3a("
	e := &fanbridge.Event{ID: "evt-9", Data: []byte(`{"token":"` + secret + `","obj":{"k":1},"list":[1],"n":7,"big":1e300}`)}
	for _, tt := range []struct {
		src    string
		reason string
	}{
		{`timestamp(data.token) > timestamp("2000-01-01T00:00:00Z")`, "a string has the wrong form"},
		{`data.token.matches(data.token)`, "a string has the wrong form"},
		{`data.obj[data.token] == 1`, "a field or key is missing"},
		{`data.missing == data.token`, "a field or key is missing"},
		{`int(data.token) > 0`, "a value has the wrong type"},
		{`data.token + 1 == 2`, "a value has the wrong type"},
		{`data.list[data.n] == 1`, "an index is out of range"},
		{`data.n / 0 == 1`, "division by zero"},
		{`int(data.big) == 1`, "a number is out of range"},
		{`data.token`, "the result is not a bool"},
	} {
		t.Run(tt.src, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			x := filter.MustExpr(tt.src, filter.WithExprLogger(l))
			ok, err := x.Eval(e)
			assert.False(t, ok)
			var ee *filter.EvalError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, tt.reason, ee.Reason)
			assert.Equal(t, `filter: evaluating `+strconv.Quote(tt.src)+`: `+tt.reason, err.Error())
			assert.NotContains(t, fmt.Sprintf("%v %+v", err, err), secret)

			var rec map[string]any
			require.NoError(t, json.Unmarshal(buf.Bytes(), &rec), "one record: %s", buf.Bytes())
			assert.Equal(t, tt.reason, rec["reason"])
			assert.Equal(t, "evt-9", rec["event_id"])
			assert.NotContains(t, buf.String(), secret)
		})
	}
	// The reasons for a body that is not there or not JSON, and for the cost limit.
	x := filter.MustExpr(`data.token == "x"`)
	_, err := x.Eval(&fanbridge.Event{Data: []byte(`{"token":"` + secret)})
	var ee *filter.EvalError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "the event body is not JSON", ee.Reason)
	assert.ErrorIs(t, err, filter.ErrInvalidEvent)
	_, err = x.Eval(&fanbridge.Event{})
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "the event has no body", ee.Reason)
	_, err = filter.MustExpr(`data.list.all(x, data.list.all(y, x == y))`, filter.WithCostLimit(1)).Eval(e)
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, "the cost limit was exceeded", ee.Reason)
}

func TestMatchExprs(t *testing.T) {
	exprs := []*filter.Expression{
		filter.MustExpr(`data.mediaType == 'CHAT'`),
		filter.MustExpr(`data.missing == 1`),
		filter.MustExpr(`event.type.endsWith('.customer.end')`),
		filter.MustExpr(`data.interactingDurationMs < 1000`),
	}
	assert.Equal(t, []int{0, 2}, filter.MatchExprs(chatEvent(), exprs, nil))
	assert.Equal(t, []int{9, 2}, filter.MatchExprs(&fanbridge.Event{Type: "a.customer.end", Data: []byte(`nope`)}, exprs, []int{9}))
}

// TestMatchExprsReasonsPerExpression: MatchExprs decodes the body once for all expressions, so a
// body that is not JSON is the reason only for those that asked for data, not for an expression
// on the event's own fields that fails after one of them.
func TestMatchExprsReasonsPerExpression(t *testing.T) {
	for _, tt := range []struct {
		name, data, reason string
	}{
		{"not JSON", `not json`, "the event body is not JSON"},
		{"no body", ``, "the event has no body"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			exprs := []*filter.Expression{
				filter.MustExpr(`data.x == 1`, filter.WithExprLogger(l)),
				filter.MustExpr(`event.metadata["k"] == "v"`, filter.WithExprLogger(l)),
				filter.MustExpr(`event.id.matches(event.type)`, filter.WithExprLogger(l)),
				filter.MustExpr(`has(data.y)`, filter.WithExprLogger(l)),
			}
			e := &fanbridge.Event{ID: "evt-3", Type: "(", Data: []byte(tt.data)}
			assert.Empty(t, filter.MatchExprs(e, exprs, nil))
			var reasons []any
			for _, line := range bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n")) {
				var rec map[string]any
				require.NoError(t, json.Unmarshal(line, &rec), "%s", line)
				reasons = append(reasons, rec["reason"])
			}
			assert.Equal(t, []any{tt.reason, "a field or key is missing", "a string has the wrong form", tt.reason}, reasons)
		})
	}
}

func TestExprConcurrent(t *testing.T) {
	x := filter.MustExpr(`data.mediaType == 'CHAT' && event.metadata['correlation-id'] == 'corr-1'`)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				if !x.Match(chatEvent()) {
					t.Error("no match")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// numberList returns n copies of the JSON number text, comma-separated.
func numberList(n int, text string) string {
	return strings.TrimSuffix(strings.Repeat(text+",", n), ",")
}

// evalWithin evaluates x on e and fails the test if that takes longer than limit, the deadline
// of a test that could otherwise hang for minutes.
func evalWithin(t *testing.T, limit time.Duration, x *filter.Expression, e *fanbridge.Event) (bool, time.Duration, error) {
	t.Helper()
	type result struct {
		ok  bool
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		ok, err := x.Eval(e)
		done <- result{ok, err}
	}()
	select {
	case r := <-done:
		return r.ok, time.Since(start), r.err
	case <-time.After(limit):
		t.Fatalf("%q still evaluating after %v", x, limit)
		return false, 0, nil
	}
}

func reasonOf(t *testing.T, err error) string {
	t.Helper()
	var ee *filter.EvalError
	require.ErrorAs(t, err, &ee)
	return ee.Reason
}

// TestExprTimeLimit: CEL's cost tracker slows a comprehension down with the square of its steps,
// so a limit that allows many steps lets one evaluation run for seconds; the time limit stops it.
// Expressions whose cost is not tracked run without it.
func TestExprTimeLimit(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		x, err := filter.Expr(`data.ids.exists(i, i == 1)`, filter.WithTimeLimit(d))
		assert.Nil(t, x)
		require.ErrorIs(t, err, filter.ErrInvalidExpression)
		assert.Contains(t, err.Error(), "the time limit must be positive")
	}

	// 40,000 steps fit this cost limit and, tracked, take seconds.
	e := &fanbridge.Event{ID: "evt-t", Data: []byte(`{"ids":[` + numberList(40_000, "0") + `]}`)}
	x := filter.MustExpr(`data.ids.exists(i, i == 1)`, filter.WithCostLimit(10_000_000), filter.WithTimeLimit(20*time.Millisecond))
	ok, took, err := evalWithin(t, time.Minute, x, e)
	assert.False(t, ok)
	require.Error(t, err)
	assert.Equal(t, "the time limit was exceeded", reasonOf(t, err))
	assert.Less(t, took, 2*time.Second, "the evaluation stops near its time limit")
	assert.False(t, x.Match(e))

	// An operator that absorbs errors (|| true) does not turn an evaluation the time limit cut
	// short into an answer: the interrupted comprehension decided nothing.
	x = filter.MustExpr(`data.ids.exists(i, i == 1) || true`, filter.WithCostLimit(10_000_000), filter.WithTimeLimit(20*time.Millisecond))
	ok, _, err = evalWithin(t, time.Minute, x, e)
	assert.False(t, ok)
	require.Error(t, err)
	assert.Equal(t, "the time limit was exceeded", reasonOf(t, err))

	// The worst case of a comprehension over a literal fits the cost limit: no tracking, no timer.
	src := `[` + numberList(64, "7") + `].exists(v, v == 8) || true`
	x = filter.MustExpr(src, filter.WithTimeLimit(time.Nanosecond))
	ok, err = x.Eval(e)
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestExprDefaultTimeLimit: the default time limit sits above the time the default cost limit
// lets an evaluation run, so with the defaults the cost limit decides: a comprehension within it
// gives its answer, and one beyond it stops for its cost, not for the time it took. The race
// detector slows tracked evaluations down some twentyfold, past what the default is set for, so
// there the test takes a shorter list and leaves the cost limit's worst case out.
func TestExprDefaultTimeLimit(t *testing.T) {
	x := filter.MustExpr(`data.ids.all(i, i != 1)`)
	n := 12_000
	if raceEnabled {
		n = 3_000
	}
	within := &fanbridge.Event{ID: "evt-w", Data: []byte(`{"ids":[` + numberList(n, "0") + `]}`)}
	ok, _, err := evalWithin(t, time.Minute, x, within)
	require.NoError(t, err, "%d steps fit the default cost limit", n)
	assert.True(t, ok)
	if raceEnabled {
		return
	}

	beyond := &fanbridge.Event{ID: "evt-b", Data: []byte(`{"ids":[` + numberList(40_000, "0") + `]}`)}
	ok, _, err = evalWithin(t, time.Minute, x, beyond)
	assert.False(t, ok)
	require.Error(t, err)
	assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))
}

// TestExprDeepEqualityCost: ==, != and `in` cost what they walk, the elements of the lists and
// maps inside their operands, not the operands' top-level size (CEL's own charge, one unit for
// two lists each holding one list of 1,000 numbers), and so do they between list and map
// literals holding values of the body.
func TestExprDeepEqualityCost(t *testing.T) {
	z := numberList(1000, "0")
	e := &fanbridge.Event{ID: "evt-d", Data: []byte(`{"l":[` + z + `],"a":[[` + z + `]],"b":[[` + z + `]],"ls":[[[` + z + `]]],` +
		`"m1":{"k":[` + z + `]},"m2":{"k":[` + z + `]},"lm1":[{"k":[` + z + `]}],"lm2":[{"k":[` + z + `]}],"small":[[0]]}`)}
	for _, tt := range []struct {
		src  string
		want bool
	}{
		{`data.a == data.b`, true},
		{`data.a != data.b`, false},
		{`data.a in data.ls`, true},
		{`1 in data.l`, false},
		{`data.m1 == data.m2`, true},
		{`data.m1 != data.m2`, false},
		{`[0] + data.lm1 == [0] + data.lm2`, true},
		{`data.lm1 + [0] != data.lm2 + [0]`, false},
		{`[data.a, data.b] == [data.b, data.a]`, true},
		{`{'k': data.l} != {'k': data.l}`, false},
		{`{'k': [data.a]} == {'k': [data.b]}`, true},
		{`data.a in [data.b]`, true},
		{`dyn([data.l]) == dyn([data.l])`, true},
	} {
		t.Run(tt.src, func(t *testing.T) {
			ok, err := filter.MustExpr(tt.src, filter.WithCostLimit(500)).Eval(e)
			assert.False(t, ok)
			require.Error(t, err, "a thousand elements cost more than 500")
			assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))

			ok, err = filter.MustExpr(tt.src, filter.WithCostLimit(10_000)).Eval(e)
			require.NoError(t, err, "and about a thousand")
			assert.Equal(t, tt.want, ok)
		})
	}
	// A large value compared with a small one costs what the small one holds.
	ok, err := filter.MustExpr(`data.small == data.a`, filter.WithCostLimit(500)).Eval(e)
	require.NoError(t, err)
	assert.False(t, ok)

	// The same comparison in every step of a comprehension runs into the default cost limit
	// (the time limit is raised for the test to be about the cost limit alone).
	big := numberList(2000, "0")
	e = &fanbridge.Event{ID: "evt-d2", Data: []byte(`{"items":[` + numberList(200, "0") + `],"a":[[` + big + `]],"b":[[` + big + `]],` +
		`"oa":[{"k":[` + big + `]}],"ob":[{"k":[` + big + `]}]}`)}
	for _, src := range []string{
		`data.items.exists(i, data.a != data.b)`,
		`data.items.exists(i, [0] + data.oa != [0] + data.ob)`,
	} {
		x := filter.MustExpr(src, filter.WithTimeLimit(time.Minute))
		ok, _, err = evalWithin(t, time.Minute, x, e)
		assert.False(t, ok, src)
		require.Error(t, err, src)
		assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err), src)
	}
}

// TestExprComparisonStopsBeforeWalking: a single ==, != or `in` whose operands hold more than
// the cost limit allows is refused before it walks them. CEL charges a call only once it has
// returned and looks at the time limit only between the iterations of comprehensions, so these
// comparisons (2,000 and 250 references to one list of 100,000 numbers, each side) would walk
// hundreds of millions of values, for seconds, before either limit stopped them (the first
// ran 10 s under a time limit of 2 s, the last 1.4 s under one of 10 ms). The time limits of the
// first three leave room for the map before the comparison, even under the race detector.
func TestExprComparisonStopsBeforeWalking(t *testing.T) {
	e := &fanbridge.Event{ID: "evt-w", Data: []byte(`{"k":[` + numberList(2000, "0") + `],"x":[` + numberList(100_000, "1") + `]}`)}
	side := "[" + strings.TrimSuffix(strings.Repeat("data.x,", 250), ",") + "]"
	for _, tt := range []struct {
		src    string
		limit  time.Duration
		within time.Duration
	}{
		{`data.k.map(i, data.x) == data.k.map(i, data.x)`, 2 * time.Second, 4 * time.Second},
		{`data.k.map(i, data.x) != data.k.map(i, data.x) || true`, 2 * time.Second, 4 * time.Second},
		{`[data.x] in data.k.map(i, [data.x])`, 2 * time.Second, 4 * time.Second},
		{side + ` == ` + side, 10 * time.Millisecond, 500 * time.Millisecond},
	} {
		t.Run(tt.src[:min(len(tt.src), 60)], func(t *testing.T) {
			x := filter.MustExpr(tt.src, filter.WithTimeLimit(tt.limit))
			ok, took, err := evalWithin(t, time.Minute, x, e)
			assert.False(t, ok)
			require.Error(t, err)
			assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))
			assert.Less(t, took, tt.within, "the comparison is refused before it starts")
		})
	}
}

// TestExprBoundedComparisonsAnswerAsCEL: in a program that tracks its cost, ==, != and `in`
// give what CEL's own give, errors and their reasons included. A cost limit of MaxUint64 is one
// no worst case exceeds, so there the same expression runs untracked, with CEL's own operators.
func TestExprBoundedComparisonsAnswerAsCEL(t *testing.T) {
	e := &fanbridge.Event{ID: "evt-c", Data: []byte(`{"a":[1,[2,{"k":"v"}]],"b":[1.0,[2,{"k":"v"}]],` +
		`"c":[1,[2,{"k":"w"}]],"m":{"k":1},"s":"text","n":1,"u":1.0,"ids":["q1","q2"]}`)}
	for _, src := range []string{
		`data.a == data.b`,
		`data.a != data.b`,
		`data.a == data.c`,
		`data.a != data.c`,
		`data.n == data.u`,
		`data.n != data.s`,
		`data.m == data.m`,
		`data.m == data.a`,
		`data.a[1] in data.b`,
		`data.a[1] in data.c`,
		`'q1' in data.ids`,
		`data.s in data.ids`,
		`'k' in data.m`,
		`data.n in data.m`,
		`data.n in data.s`,
		`data.missing == data.a`,
		`data.a == data.missing`,
		`data.missing in data.ids`,
		`data.ids.exists(i, i in data.ids && i == data.s)`,
		`(data.n in data.s) || true`,
		`[data.a] == [data.b]`,
	} {
		t.Run(src, func(t *testing.T) {
			tracked, trackedErr := filter.MustExpr(src).Eval(e)
			plain, plainErr := filter.MustExpr(src, filter.WithCostLimit(math.MaxUint64)).Eval(e)
			assert.Equal(t, plain, tracked)
			if plainErr == nil {
				assert.NoError(t, trackedErr)
				return
			}
			require.Error(t, trackedErr)
			assert.Equal(t, reasonOf(t, plainErr), reasonOf(t, trackedErr))
		})
	}
}

// TestExprMapWalkIsDeterministic: a comprehension over an object walks its keys in sorted order,
// so where the cost limit stops it, and with that the answer, depends on the event alone.
func TestExprMapWalkIsDeterministic(t *testing.T) {
	attributes := func(vip string) *fanbridge.Event {
		var b strings.Builder
		b.WriteString(`{"attributes":{`)
		for i := range 1000 {
			v := "n"
			if k := fmt.Sprintf("k%04d", i); k == vip {
				v = "vip"
			}
			fmt.Fprintf(&b, `"k%04d":%q,`, i, v)
		}
		b.WriteString(`"end":"n"}}`)
		return &fanbridge.Event{ID: "evt-m", Data: []byte(b.String())}
	}
	x := filter.MustExpr(`data.attributes.exists(k, data.attributes[k] == 'vip')`, filter.WithCostLimit(2000))
	early, late := attributes("k0010"), attributes("k0990")
	for range 20 {
		ok, err := x.Eval(early)
		require.NoError(t, err)
		assert.True(t, ok, "the key is among the first walked")
		ok, err = x.Eval(late)
		assert.False(t, ok, "the key is past where the cost limit stops the walk")
		require.Error(t, err)
		assert.Equal(t, "the cost limit was exceeded", reasonOf(t, err))
	}
}

// TestExprObjects: objects behave as CEL maps, with their keys walked in sorted order and, for a
// repeated key, the last value. An object sought with `in` in a list of constants or in a map
// literal, or used as a key of a map literal, is simply not found (CEL looks such values up by
// hash).
func TestExprObjects(t *testing.T) {
	e := &fanbridge.Event{ID: "evt-o", Data: []byte(`{"o":{"b":[1,{"c":true}],"a":1},"p":{"a":1.0,"b":[1,{"c":true}]},` +
		`"q":{"a":1},"dup":1,"dup":2,"empty":{}}`)}
	for _, src := range []string{
		`size(data.o) == 2`,
		`'a' in data.o && !('z' in data.o)`,
		`has(data.o.a) && !has(data.o.z)`,
		`data.o.a == 1 && data.o['b'][1].c`,
		`data.o == data.p && data.p == data.o`,
		`data.o != data.q && data.q != data.o`,
		`data.o == {'a': 1, 'b': [1, {'c': true}]}`,
		`{'b': [1, {'c': true}], 'a': 1} == data.o`,
		`data.o != {'a': 1, 'b': [1, {'c': false}]}`,
		`data.o.map(k, k) == ['a', 'b']`,
		`data.o.filter(k, k != 'a') == ['b']`,
		`data.o.all(k, k in ['a', 'b']) && data.o.exists_one(k, k == 'b')`,
		`type(data.o) == map && type(data) == map`,
		`data.dup == 2`,
		`size(data.empty) == 0 && data.empty == {}`,
		`data.map(k, k) == ['dup', 'empty', 'o', 'p', 'q']`,
		`!(data.o in ['a', 'b']) && !(data.o in [1, 2.5])`,
		`data.o in ['x'] || data.q.a == 1`,
		`!(data.o in {'a': 1})`,
		`!(data.o.b[1] in ['c'])`,
		`data.o.b.filter(x, x in [1]) == [1]`,
		`{data.o: 1} != {} && !({data.o: 1} == {})`,
		`size({data.o: 1, data.p: 2}) == 2`,
	} {
		t.Run(src, func(t *testing.T) {
			ok, err := filter.MustExpr(src).Eval(e)
			require.NoError(t, err)
			assert.True(t, ok)
		})
	}

	raw, err := os.ReadFile(filepath.Join("testdata", "v2.audits.entitytype.OAuthClient.delete.json"))
	require.NoError(t, err)
	audit, err := eventbridge.Decode(raw, "application/json")
	require.NoError(t, err)
	for _, src := range []string{
		`data.exists(k, data[k] in ['PeoplePermissions', 'Presence'])`,
		`!(data.entity in ['x'])`,
		`data.entity in ['x'] || data.action == 'Delete'`,
		`!(data.entity in {'x': 1})`,
	} {
		t.Run(src, func(t *testing.T) {
			ok, err := filter.MustExpr(src).Eval(audit)
			require.NoError(t, err)
			assert.True(t, ok)
		})
	}
	_, err = filter.MustExpr(`data.o.z == 1`).Eval(e)
	assert.Equal(t, "a field or key is missing", reasonOf(t, err))
	_, err = filter.MustExpr(`data.o[1] == 1`).Eval(e)
	assert.Equal(t, "a field or key is missing", reasonOf(t, err))
}

// TestExprBodyRefused: a body nested deeper than 512 levels, or holding a number too large for a
// double, is refused with a reason of its own, not taken for text that is not JSON nor read as
// an infinity.
func TestExprBodyRefused(t *testing.T) {
	nested := func(levels int) []byte {
		// the object is one level, the arrays the rest
		return []byte(`{"x":` + strings.Repeat("[", levels-1) + strings.Repeat("]", levels-1) + `}`)
	}
	x := filter.MustExpr(`has(data.x)`)
	ok, err := x.Eval(&fanbridge.Event{Data: nested(512)})
	require.NoError(t, err)
	assert.True(t, ok, "512 levels are read")

	for _, tt := range []struct {
		name, data, reason string
	}{
		{"513 levels", string(nested(513)), "the event body is nested too deep"},
		{"600 levels", string(nested(600)), "the event body is nested too deep"},
		{"1e400", `{"x":1e400}`, "the event body has a number too large for a double"},
		{"-1e400", `{"x":[-1e400]}`, "the event body has a number too large for a double"},
		{"just above the largest double", `{"x":1.7976931348623159e308}`, "the event body has a number too large for a double"},
		{"not JSON", `{"x":1e}`, "the event body is not JSON"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := x.Eval(&fanbridge.Event{Data: []byte(tt.data)})
			assert.False(t, ok)
			assert.Equal(t, tt.reason, reasonOf(t, err))
			assert.ErrorIs(t, err, filter.ErrInvalidEvent)
		})
	}
	for _, tt := range []struct{ data, src string }{
		{`{"x":1e-400}`, `data.x == 0.0`},
		{`{"x":1.7976931348623157e308}`, `data.x > 1e308`},
		{`{"x":-1.7976931348623157e308}`, `data.x < -1e308`},
	} {
		ok, err := filter.MustExpr(tt.src).Eval(&fanbridge.Event{Data: []byte(tt.data)})
		require.NoError(t, err, tt.data)
		assert.True(t, ok, tt.data)
	}
}
