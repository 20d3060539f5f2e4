package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// record is a tiny in-memory sink for the examples: it keeps "sink: event id" lines.
type record struct {
	mu    sync.Mutex
	lines []string
}

func (r *record) sink(name string) sink.Sink {
	return sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.lines = append(r.lines, name+": "+e.ID)
		return nil
	})
}

func (r *record) print() {
	r.mu.Lock()
	defer r.mu.Unlock()
	slices.Sort(r.lines)
	for _, l := range r.lines {
		fmt.Println(l)
	}
}

func Example() {
	var got record
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "kafka", Sink: got.sink("kafka")},
			{Name: "crm", Sink: got.sink("crm")},
		},
		Routes: []fanout.Route{
			// Every conversation end goes to both; presence changes only to Kafka.
			{Name: "ended", Pattern: []byte(`{"detail-type":[{"suffix":".customer.end"}]}`), Sinks: []string{"kafka", "crm"}},
			{Name: "presence", Filter: filter.PredicateFunc(func(e *fanbridge.Event) bool {
				return e.Type == "v2.users.{id}.presence"
			}), Sinks: []string{"kafka"}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(context.Background())

	ctx := context.Background()
	fmt.Println(d.Dispatch(ctx, &fanbridge.Event{ID: "e1",
		Raw: []byte(`{"id":"e1","detail-type":"v2.detail.events.conversation.{id}.customer.end"}`)}))
	fmt.Println(d.Dispatch(ctx, &fanbridge.Event{ID: "e2", Type: "v2.users.{id}.presence", Raw: []byte(`{"id":"e2"}`)}))
	fmt.Println(errors.Is(d.Dispatch(ctx, &fanbridge.Event{ID: "e3", Type: "other", Raw: []byte(`{}`)}), fanbridge.ErrNoMatch))
	fmt.Println(errors.Is(d.Dispatch(ctx, &fanbridge.Event{ID: "e2", Type: "v2.users.{id}.presence"}), fanbridge.ErrDuplicate))
	got.print()
	// Output:
	// <nil>
	// <nil>
	// true
	// true
	// crm: e1
	// kafka: e1
	// kafka: e2
}

func ExampleDispatcher_Deliver() {
	var got record
	queue := dlq.QueueFunc(func(_ context.Context, e dlq.Entry) error {
		fmt.Printf("dead-lettered for %s (route %s): %s after %d attempt(s): %s\n", e.Sink, e.Route, e.Condition, e.Attempts, e.Error)
		return nil
	})
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{
			{Name: "kafka", Sink: got.sink("kafka")},
			{Name: "grpc", Sink: sink.Func(func(context.Context, *fanbridge.Event) error {
				return retry.Permanent(errors.New("InvalidArgument: unknown queue"))
			})},
		},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"kafka", "grpc"}}},
		DLQ:    queue,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(context.Background())

	res, err := d.Deliver(context.Background(), &fanbridge.Event{ID: "e1", Raw: []byte(`{"id":"e1"}`)})
	fmt.Println("error:", err)
	for _, s := range res.Sinks {
		fmt.Printf("%s: %s, %d attempt(s)\n", s.Sink, s.Outcome, s.Attempts)
	}
	// Output:
	// dead-lettered for grpc (route all): permanent after 1 attempt(s): InvalidArgument: unknown queue
	// error: <nil>
	// kafka: delivered, 1 attempt(s)
	// grpc: dead-lettered, 1 attempt(s)
}

func ExampleWithMode() {
	var got record
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: got.sink("a")}, {Name: "b", Sink: got.sink("b"), QueueSize: 100}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"a", "b"}}},
	}, fanout.WithMode(fanout.Async))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, id := range []string{"e1", "e2"} {
		// nil: both queues accepted the event; the workers deliver it.
		fmt.Println(d.Dispatch(context.Background(), &fanbridge.Event{ID: id, Raw: []byte(`{}`)}))
	}
	// Close drains the queues before it returns.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(d.Close(ctx))
	got.print()
	// Output:
	// <nil>
	// <nil>
	// <nil>
	// a: e1
	// a: e2
	// b: e1
	// b: e2
}

func ExampleDispatcher_SetRoutes() {
	var got record
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: got.sink("a")}, {Name: "b", Sink: got.sink("b")}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(context.Background())
	ctx := context.Background()
	_ = d.Dispatch(ctx, &fanbridge.Event{ID: "before", Raw: []byte(`{}`)})
	if err := d.SetRoutes([]fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"b"}}}); err != nil {
		fmt.Println(err)
	}
	_ = d.Dispatch(ctx, &fanbridge.Event{ID: "after", Raw: []byte(`{}`)})
	fmt.Println(d.SetRoutes([]fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"c"}}}))
	got.print()
	// Output:
	// fanout: invalid configuration: route "r" names unknown sink "c"
	// a: before
	// b: after
}

func ExampleNewMemoryDedup() {
	store, err := fanout.NewMemoryDedup(10*time.Minute, 50_000)
	if err != nil {
		fmt.Println(err)
		return
	}
	var got record
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "a", Sink: got.sink("a")}},
		Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"a"}}},
	}, fanout.WithDedup(store))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close(context.Background())
	e := &fanbridge.Event{ID: "e1", Raw: []byte(`{}`)}
	fmt.Println(d.Dispatch(context.Background(), e))
	fmt.Println(d.Dispatch(context.Background(), e)) // the sender's retry
	got.print()
	// Output:
	// <nil>
	// fanout: fanbridge: duplicate event
	// a: e1
}
