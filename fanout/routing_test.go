package fanout_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
)

func TestUnionOfSinksEachOnce(t *testing.T) {
	a, b, c := newRecSink(), newRecSink(), newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}, {Name: "c", Sink: c}},
		Routes: []fanout.Route{
			{Name: "presence", Filter: typeIs("presence"), Sinks: []string{"a", "b"}},
			{Name: "everything", Filter: fanout.All, Sinks: []string{"b", "c"}},
			{Name: "conversations", Filter: typeIs("conversation"), Sinks: []string{"c"}},
		},
	})
	ctx := testContext(t)

	tests := []struct {
		id, typ     string
		wantA       int
		wantB       int
		wantC       int
		wantRouteOf map[string]string
	}{
		{"e1", "presence", 1, 1, 1, map[string]string{"a": "presence", "b": "presence", "c": "everything"}},
		{"e2", "conversation", 0, 1, 1, map[string]string{"b": "everything", "c": "everything"}},
		{"e3", "other", 0, 1, 1, map[string]string{"b": "everything", "c": "everything"}},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			res, err := d.Deliver(ctx, event(tt.id, tt.typ))
			require.NoError(t, err)
			assert.Equal(t, tt.wantA, a.Delivered(tt.id))
			assert.Equal(t, tt.wantB, b.Delivered(tt.id))
			assert.Equal(t, tt.wantC, c.Delivered(tt.id))
			got := map[string]string{}
			for _, r := range res.Sinks {
				assert.Equal(t, fanout.Delivered, r.Outcome)
				assert.Equal(t, 1, r.Attempts)
				_, dup := got[r.Sink]
				assert.False(t, dup, "sink %s listed twice", r.Sink)
				got[r.Sink] = r.Route
			}
			assert.Equal(t, tt.wantRouteOf, got)
		})
	}
}

func TestNoMatch(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: typeIs("x"), Sinks: []string{"s"}}},
	})
	err := d.Dispatch(testContext(t), event("e1", "y"))
	assert.ErrorIs(t, err, fanbridge.ErrNoMatch)
	assert.Equal(t, 0, s.TotalDelivered())

	// No-match events are not remembered: the same ID can match after a route change.
	require.NoError(t, d.SetRoutes([]fanout.Route{{Name: "r", Filter: typeIs("y"), Sinks: []string{"s"}}}))
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "y")))
	assert.Equal(t, 1, s.Delivered("e1"))
}

// nilMapFilter is a route filter with a bug of the commonest kind: it writes to a nil map.
type nilMapFilter struct{ calls atomic.Int64 }

func (f *nilMapFilter) Match(e *fanbridge.Event) bool {
	f.calls.Add(1)
	var seen map[string]int
	seen[e.ID]++
	return true
}

// A route filter that panics is a bug in it, contained as a panicking Send is: the route does
// not match, the event still goes to every other route that matches it, the panic never reaches
// the caller of Dispatch, and it is counted and logged (with its stack, not once per event).
// That holds beside predicates, beside one pattern (matched on its own) and beside a Matcher.
func TestPanickingRouteFilterDoesNotMatch(t *testing.T) {
	for _, tc := range []struct {
		name string
		good fanout.Route // sends events of type "x" to a
		more []fanout.Route
	}{
		{"beside a predicate", fanout.Route{Name: "good", Filter: typeIs("x"), Sinks: []string{"a"}}, nil},
		{"beside a pattern", fanout.Route{Name: "good", Pattern: []byte(`{"detail-type":["x"]}`), Sinks: []string{"a"}}, nil},
		{"beside a Matcher", fanout.Route{Name: "good", Pattern: []byte(`{"detail-type":["x"]}`), Sinks: []string{"a"}},
			[]fanout.Route{{Name: "other", Pattern: []byte(`{"detail-type":["z"]}`), Sinks: []string{"b"}}}},
	} {
		for _, mode := range []fanout.Mode{fanout.Sync, fanout.Async} {
			t.Run(tc.name+"/"+mode.String(), func(t *testing.T) {
				var buf bytes.Buffer
				var mu sync.Mutex
				logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: &buf, mu: &mu}, nil))
				reader := sdkmetric.NewManualReader()
				mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
				a, b := newRecSink(), newRecSink()
				bad := &nilMapFilter{}
				d := newDispatcher(t, fanout.Config{
					Sinks:  []fanout.SinkConfig{{Name: "a", Sink: a}, {Name: "b", Sink: b}},
					Routes: append([]fanout.Route{tc.good, {Name: "bad", Filter: bad, Sinks: []string{"a", "b"}}}, tc.more...),
				}, fanout.WithMode(mode), fanout.WithLogger(logger), fanout.WithMeterProvider(mp))
				ctx := testContext(t)

				var err error
				require.NotPanics(t, func() { err = d.Dispatch(ctx, event("e1", "x")) })
				require.NoError(t, err, "route good matched")
				require.NotPanics(t, func() { err = d.Dispatch(ctx, event("e2", "y")) })
				require.ErrorIs(t, err, fanbridge.ErrNoMatch, "only the panicking route was left")
				res, err := d.Deliver(ctx, event("e3", "x"))
				require.NoError(t, err)
				assert.Equal(t, []fanout.SinkResult{{Sink: "a", Route: "good", Outcome: fanout.Delivered, Attempts: 1}},
					clearDurations(res.Sinks))
				require.NoError(t, d.Close(ctx))
				assert.Equal(t, int64(3), bad.calls.Load())
				assert.Equal(t, 1, a.Delivered("e1"))
				assert.Zero(t, b.TotalDelivered(), "only the panicking route names b")

				var rm metricdata.ResourceMetrics
				require.NoError(t, reader.Collect(ctx, &rm))
				assert.Equal(t, map[string]float64{"bad": 3}, points(t, rm, "fanbridge.fanout.route.filter_panicked", "route"))
				mu.Lock()
				out := buf.String()
				mu.Unlock()
				assert.Equal(t, 1, strings.Count(out, "route filter panicked"), "logged once, not per event:\n%s", out)
				assert.Contains(t, out, `"route":"bad"`)
				assert.Contains(t, out, "assignment to entry in nil map")
				assert.Contains(t, out, "nilMapFilter", "with the stack")
			})
		}
	}
}

// clearDurations zeroes the durations of results, which no test can predict.
func clearDurations(rs []fanout.SinkResult) []fanout.SinkResult {
	for i := range rs {
		rs[i].Duration = 0
	}
	return rs
}

func TestNilEvent(t *testing.T) {
	d := newDispatcher(t, fanout.Config{})
	err := d.Dispatch(testContext(t), nil)
	require.Error(t, err)
	assert.True(t, retry.IsPermanent(err))
}

func TestDispatchWithDoneContext(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := d.Dispatch(ctx, event("e1", "x"))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.Attempts("e1"))
}

func TestConfigValidation(t *testing.T) {
	ok := newRecSink()
	var nilFunc filter.PredicateFunc
	tests := []struct {
		name string
		cfg  fanout.Config
		opts []fanout.Option
		want string
	}{
		{"unknown sink", fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r1", Filter: fanout.All, Sinks: []string{"a", "kafka"}}},
		}, nil, `route "r1" names unknown sink "kafka"`},
		{"duplicate sink", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok}, {Name: "a", Sink: ok}},
		}, nil, `sink "a" is defined twice`},
		{"duplicate route", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}},
				{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
		}, nil, `route "r" is defined twice`},
		{"nil sink", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a"}},
		}, nil, `sink "a": nil Sink`},
		{"typed nil sink", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: (*recSink)(nil)}},
		}, nil, `sink "a": nil Sink`},
		{"unnamed sink", fanout.Config{
			Sinks: []fanout.SinkConfig{{Sink: ok}},
		}, nil, `sink 0 has no name`},
		{"bad policy", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "grpc", Sink: ok, Retry: retry.Policy{Multiplier: 0.5}}},
		}, nil, `sink "grpc": retry: invalid policy`},
		{"negative concurrency", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok, Concurrency: -1}},
		}, nil, `sink "a": Concurrency -1 is negative`},
		{"negative queue", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok, QueueSize: -1}},
		}, nil, `sink "a": QueueSize -1 is negative`},
		{"huge concurrency", fanout.Config{
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok, Concurrency: fanout.MaxConcurrency + 1}},
		}, nil, `sink "a": Concurrency 4097 is above 4096`},
		{"huge queue", fanout.Config{
			// A channel this large cannot even be made: New would panic.
			Sinks: []fanout.SinkConfig{{Name: "a", Sink: ok, QueueSize: math.MaxInt}},
		}, nil, `sink "a": QueueSize ` + strconv.Itoa(math.MaxInt) + ` is above 1048576`},
		{"route without filter", fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r", Sinks: []string{"a"}}},
		}, nil, `route "r" has no filter`},
		{"route with nil func filter", fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r", Filter: nilFunc, Sinks: []string{"a"}}},
		}, nil, `route "r" has no filter`},
		{"route without sinks", fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All}},
		}, nil, `route "r" names no sink`},
		{"sink named twice in a route", fanout.Config{
			Sinks:  []fanout.SinkConfig{{Name: "a", Sink: ok}},
			Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "a"}}},
		}, nil, `route "r" names sink "a" twice`},
		{"zero budget", fanout.Config{}, []fanout.Option{fanout.WithBudget(0)}, "budget"},
		{"zero DLQ timeout", fanout.Config{}, []fanout.Option{fanout.WithDLQTimeout(0)}, "DLQ timeout"},
		{"bad mode", fanout.Config{}, []fanout.Option{fanout.WithMode(fanout.Mode(7))}, "unknown mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := fanout.New(tt.cfg, tt.opts...)
			require.Error(t, err)
			assert.Nil(t, d)
			assert.ErrorIs(t, err, fanout.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestUpdateRejectsBadConfigAndChangesNothing(t *testing.T) {
	s := newRecSink()
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	})
	err := d.Update(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"missing"}}},
	})
	require.ErrorIs(t, err, fanout.ErrInvalidConfig)
	err = d.SetRoutes([]fanout.Route{{Name: "r2", Filter: fanout.All, Sinks: []string{"nope"}}})
	require.ErrorIs(t, err, fanout.ErrInvalidConfig)
	require.NoError(t, d.Dispatch(testContext(t), event("e1", "x")))
	assert.Equal(t, 1, s.Delivered("e1"))
}

func TestDeliveryErrorDoesNotLeakPermanentMark(t *testing.T) {
	s := newRecSink()
	s.fail = func(*fanbridge.Event, int) error { return retry.Permanent(errBoom) }
	d := newDispatcher(t, fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "s", Sink: s}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
	})
	err := d.Dispatch(testContext(t), event("e1", "x"))
	require.Error(t, err)
	var de *fanout.DeliveryError
	require.True(t, errors.As(err, &de))
	assert.ErrorIs(t, err, fanout.ErrUndelivered)
	assert.ErrorIs(t, err, fanout.ErrNoDLQ)
	assert.False(t, retry.IsPermanent(err), "an intake must not treat a sink's permanent failure as the event's")
	require.Len(t, de.Failed, 1)
	assert.ErrorIs(t, de.Failed[0].Err, errBoom)
	_, ok := retry.RetryAfter(err)
	assert.False(t, ok, "no sink asked for a wait")
}

// A DeliveryError carries the longest wait a failed sink asked for, within that sink's
// MaxRetryAfter, so that the intake's answer (the eventbridge Handler's Retry-After) tells the
// sender when a retry is worth making.
func TestDeliveryErrorCarriesTheWaitASinkAskedFor(t *testing.T) {
	busy := func(d time.Duration) *recSink {
		s := newRecSink()
		s.fail = func(*fanbridge.Event, int) error { return retry.After(errBoom, d) }
		return s
	}
	d := newDispatcher(t, fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "a", Sink: busy(30 * time.Second), Retry: retry.Policy{MaxAttempts: 1, MaxRetryAfter: time.Minute}},
			{Name: "b", Sink: busy(time.Hour), Retry: retry.Policy{MaxAttempts: 1, MaxRetryAfter: 45 * time.Second}},
			{Name: "c", Sink: newRecSink()},
		},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a", "b", "c"}}},
	})
	err := d.Dispatch(testContext(t), event("e1", "x"))
	require.ErrorIs(t, err, fanout.ErrUndelivered)
	wait, ok := retry.RetryAfter(err)
	require.True(t, ok)
	assert.Equal(t, 45*time.Second, wait, "b's hour, capped by its MaxRetryAfter, is the longest")
	assert.False(t, retry.IsPermanent(err))
}
