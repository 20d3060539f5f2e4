package sink_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/memsink"
)

func ExampleFunc() {
	// Any function with Send's signature is a Sink.
	s := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		if len(e.Data) == 0 {
			return retry.Permanent(errors.New("empty body"))
		}
		fmt.Printf("got %s: %s\n", e.Type, e.Data)
		return nil
	})
	ctx := context.Background()
	_ = s.Send(ctx, &fanbridge.Event{Type: "v2.users.{id}.presence", Data: []byte(`{"primary":true}`)})
	err := s.Send(ctx, &fanbridge.Event{Type: "v2.users.{id}.presence"})
	fmt.Println(retry.Classify(err), err)
	// Output:
	// got v2.users.{id}.presence: {"primary":true}
	// permanent empty body
}

func ExampleChain() {
	dest := memsink.New()
	s := sink.Chain(dest,
		sink.Timeout(2*time.Second),
		sink.Transform(func(e *fanbridge.Event) (*fanbridge.Event, error) {
			c := e.Clone() // never modify the shared event
			if c.Metadata == nil {
				c.Metadata = map[string]string{}
			}
			c.Metadata["route"] = "presence"
			return c, nil
		}),
	)
	_ = s.Send(context.Background(), &fanbridge.Event{ID: "1", Type: "v2.users.{id}.presence"})
	fmt.Println(dest.Events()[0].Metadata["route"])
	_ = sink.Close(s) // reaches memsink's Close through both middleware
	fmt.Println(errors.Is(s.Send(context.Background(), &fanbridge.Event{ID: "2"}), sink.ErrClosed))
	// Output:
	// presence
	// true
}

func ExampleSendBatch() {
	dest := memsink.New()
	dest.FailFunc(func(e *fanbridge.Event) error {
		if e.ID == "b" {
			return retry.Permanent(errors.New("rejected"))
		}
		return nil
	})
	events := []*fanbridge.Event{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	err := sink.SendBatch(context.Background(), dest, events)
	for i, e := range events {
		fmt.Println(e.ID, sink.EventError(err, i))
	}
	// Output:
	// a <nil>
	// b rejected
	// c <nil>
}

func ExampleInnermost() {
	crm := memsink.New() // a long-lived sink, with a connection of its own
	// Each configuration reload builds its wrappers again around the same sink.
	before := sink.Chain(crm, sink.Timeout(2*time.Second))
	after := sink.Chain(crm, sink.Timeout(3*time.Second))
	fmt.Println(before == after)
	// Retiring before must not close crm: after still delivers to it.
	fmt.Println(sink.Innermost(before) == sink.Innermost(after))
	// Output:
	// false
	// true
}
