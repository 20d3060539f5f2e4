package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

func ExampleRedrive() {
	ctx := context.Background()
	q := dlqtest.NewMemory()
	for i, sinkName := range []string{"crm", "crm", "billing"} {
		ev := &fanbridge.Event{ID: fmt.Sprint("ev-", i), Raw: []byte(`{"id":"ev"}`)}
		_ = q.Put(ctx, dlq.NewEntry(ev, sinkName, "all", errors.New("503"), time.Now(), time.Now()))
	}

	// The CRM is back; billing still refuses.
	crm := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		fmt.Println("crm got", e.ID)
		return nil
	})
	billing := sink.Func(func(context.Context, *fanbridge.Event) error {
		return retry.Permanent(errors.New("account closed"))
	})
	rep, err := dlq.Redrive(ctx, q, map[string]sink.Sink{"crm": crm, "billing": billing}, nil)
	fmt.Printf("%+v %v\n", rep, err)
	fmt.Println("left:", q.Len())
	// Output:
	// crm got ev-0
	// crm got ev-1
	// {Selected:3 Redriven:2 Removed:2 Failed:1 Skipped:0 Copies:0 Conflicts:0} <nil>
	// left: 1
}

func ExampleNewEntry() {
	r, _ := retry.New(retry.Policy{MaxAttempts: 3, InitialInterval: time.Millisecond})
	ev := &fanbridge.Event{ID: "ev-1", Metadata: map[string]string{
		fanbridge.MetaTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}}
	first := time.Now()
	err := r.Do(context.Background(), func(context.Context) error { return errors.New("connection refused") })
	e := dlq.NewEntry(ev, "grpc-crm", "conversations", err, first, time.Now())
	fmt.Println(e.Sink, e.Attempts, e.Condition, e.Class, e.Error, e.TraceID)
	// Output: grpc-crm 3 attempts retryable connection refused 4bf92f3577b34da6a3ce929d0e0e4736
}

func ExampleNewID() {
	id := dlq.NewID()
	fmt.Println(len(id), dlq.CheckID(id))
	// Output: 26 <nil>
}

func ExampleAll() {
	ctx := context.Background()
	q := dlqtest.NewMemory()
	_ = q.Put(ctx, dlq.Entry{ID: "a", Sink: "crm"})
	_ = q.Put(ctx, dlq.Entry{ID: "b", Sink: "billing"})
	for e, err := range dlq.All(ctx, q) {
		if err != nil {
			fmt.Println(err)
			break
		}
		fmt.Println(e.ID, e.Sink)
	}
	// Output:
	// a crm
	// b billing
}
