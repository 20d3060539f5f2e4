package fanout_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
)

// CEL routes are evaluated together, over one decoding of the event's body: each still matches
// exactly the events its expression alone is true for, beside pattern and Go predicate routes,
// whatever the body (one an expression cannot read, one that is not JSON, none at all), and a
// sink two routes share is credited to the first of them in configuration order.
func TestCELRoutesMatchAsTheirExpressionsDo(t *testing.T) {
	srcs := map[string]string{
		"wrapup":   `data.wrapupCode == "sale"`,
		"long":     `data.durationMs > 60000`,
		"by-type":  `event.type.startsWith("v2.detail")`,
		"has-meta": `"region" in event.metadata && event.metadata.region == "eu"`,
	}
	names := []string{"wrapup", "long", "by-type", "has-meta"}
	exprs := map[string]*filter.Expression{}
	var routes []fanout.Route
	var sinks []fanout.SinkConfig
	recs := map[string]*recSink{}
	for i, name := range names {
		x, err := filter.Expr(srcs[name])
		require.NoError(t, err)
		exprs[name] = x
		recs[name] = newRecSink()
		sinks = append(sinks, fanout.SinkConfig{Name: name, Sink: recs[name]})
		routes = append(routes, fanout.Route{Name: name, Filter: x, Sinks: []string{name, "shared"}})
		if i == 1 { // a pattern and a predicate between the expressions
			routes = append(routes,
				fanout.Route{Name: "pattern", Pattern: []byte(`{"detail-type":["v2.detail.events.conversation.{id}.wrapup"]}`), Sinks: []string{"shared"}},
				fanout.Route{Name: "predicate", Filter: typeIs("presence"), Sinks: []string{"shared"}})
		}
	}
	shared := newRecSink()
	sinks = append(sinks, fanout.SinkConfig{Name: "shared", Sink: shared})
	d := newDispatcher(t, fanout.Config{Sinks: sinks, Routes: routes})
	ctx := testContext(t)

	events := []*fanbridge.Event{
		{Type: "v2.detail.events.conversation.{id}.wrapup", Data: []byte(`{"wrapupCode":"sale","durationMs":90000}`)},
		{Type: "v2.detail.events.conversation.{id}.wrapup", Data: []byte(`{"wrapupCode":"none","durationMs":100}`), Metadata: map[string]string{"region": "eu"}},
		{Type: "presence", Data: []byte(`{"durationMs":"not a number"}`)},
		{Type: "presence", Data: []byte(`not json`), Metadata: map[string]string{"region": "eu"}},
		{Type: "other"},
		{Type: "v2.detail.x", Data: []byte(`{"wrapupCode":"sale"}`)},
	}
	for i, e := range events {
		e.ID = "e" + strconv.Itoa(i)
		e.Raw = []byte(fmt.Sprintf(`{"detail-type":%q}`, e.Type))
		t.Run(e.ID, func(t *testing.T) {
			res, err := d.Deliver(ctx, e)
			if err != nil {
				require.ErrorIs(t, err, fanbridge.ErrNoMatch)
			}
			for _, name := range names {
				want := 0
				if exprs[name].Match(e) {
					want = 1
				}
				assert.Equal(t, want, recs[name].Delivered(e.ID), "route %s", name)
			}
			// The first route in configuration order that matches gets the shared sink.
			inOrder := []struct {
				name  string
				match bool
			}{
				{"wrapup", exprs["wrapup"].Match(e)},
				{"long", exprs["long"].Match(e)},
				{"pattern", e.Type == "v2.detail.events.conversation.{id}.wrapup"},
				{"predicate", e.Type == "presence"},
				{"by-type", exprs["by-type"].Match(e)},
				{"has-meta", exprs["has-meta"].Match(e)},
			}
			credit := ""
			for _, r := range inOrder {
				if r.match {
					credit = r.name
					break
				}
			}
			for _, r := range res.Sinks {
				if r.Sink == "shared" {
					assert.Equal(t, credit, r.Route)
				}
			}
			if credit == "" {
				assert.Equal(t, 0, shared.Delivered(e.ID))
			} else {
				assert.Equal(t, 1, shared.Delivered(e.ID))
			}
		})
	}
}

// A panic where the CEL routes are evaluated together (a bug in CEL or in this module) costs no
// route its answer: each expression then runs on its own, under the guard every filter has.
func TestCELRoutesAfterAPanicRunOneByOne(t *testing.T) {
	restore := fanout.OnMatchExprs(func() { panic("evaluating together") })
	defer restore()
	a, b := newRecSink(), newRecSink()
	xa, err := filter.Expr(`data.n == 1`)
	require.NoError(t, err)
	xb, err := filter.Expr(`data.n == 2`)
	require.NoError(t, err)
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
		Routes: []fanout.Route{{Name: "a", Filter: xa, Sinks: []string{"a"}}, {Name: "b", Filter: xb, Sinks: []string{"b"}}},
	})
	ctx := testContext(t)
	_, err = d.Deliver(ctx, &fanbridge.Event{ID: "e1", Type: "t", Data: []byte(`{"n":2}`), Raw: []byte(`{}`)})
	require.NoError(t, err)
	assert.Equal(t, 0, a.Delivered("e1"))
	assert.Equal(t, 1, b.Delivered("e1"))
}

// What one dispatch's expressions answered never carries over to the next: the scratch that
// holds it lives in pooled state, reused dispatch after dispatch.
func TestCELRoutesAnswerEachEventAfresh(t *testing.T) {
	a, b := newRecSink(), newRecSink()
	xa, err := filter.Expr(`data.n == 1`)
	require.NoError(t, err)
	xb, err := filter.Expr(`data.n == 2`)
	require.NoError(t, err)
	for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
		d := newDispatcher(t, fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
			Routes: []fanout.Route{{Name: "a", Filter: xa, Sinks: []string{"a"}}, {Name: "b", Filter: xb, Sinks: []string{"b"}}},
		}, fanout.WithMode(mode))
		ctx := testContext(t)
		for i := range 100 {
			id := fmt.Sprintf("%v-%d", mode, i)
			require.NoError(t, d.Dispatch(ctx, &fanbridge.Event{ID: id, Type: "t", Data: []byte(`{"n":1}`), Raw: []byte(`{}`)}))
			err := d.Dispatch(ctx, &fanbridge.Event{ID: id + "-none", Type: "t", Data: []byte(`{"n":3}`), Raw: []byte(`{}`)})
			require.ErrorIs(t, err, fanbridge.ErrNoMatch, "event %d matched with the answers of the one before", i)
		}
	}
}

// BenchmarkCELRoutes dispatches a 2.7 KB Genesys event over 1 and over 100 CEL routes that read its
// body (the event matches one of them), evaluated together as the Dispatcher does with
// *filter.Expression filters, and one by one as it does with any other predicate (the same
// expressions behind a PredicateFunc), and reports what the hundred cost relative to the one.
func BenchmarkCELRoutes(b *testing.B) {
	e := sample(b, "conversation.customer.end.2k7.json")
	build := func(n int, together bool) *fanout.Dispatcher {
		var routes []fanout.Route
		for i := range n {
			x, err := filter.Expr(fmt.Sprintf(`event.type.endsWith(".customer.end") && data.eventBody.interactingDurationMs == %d`, 185000+i*1000))
			if err != nil {
				b.Fatal(err)
			}
			r := fanout.Route{Name: "r" + strconv.Itoa(i), Sinks: []string{"s"}, Filter: x}
			if !together {
				r.Filter = filter.PredicateFunc(x.Match)
			}
			routes = append(routes, r)
		}
		return countingDispatcher(b, routes)
	}
	compareRouteCounts(b, e, 100, [2]string{"together", "one-by-one"}, build)
}
