package memsink_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/memsink"
)

func ExampleNew() {
	ctx := context.Background()
	s := memsink.New()

	// The first attempt fails with a retryable error; the second is recorded.
	s.FailNext(1, nil)
	e := &fanbridge.Event{ID: "58fb5dac", Type: "v2.detail.events.conversation.{id}.customer.end"}
	err := s.Send(ctx, e)
	fmt.Println(errors.Is(err, memsink.ErrInjected), retry.Classify(err))
	fmt.Println(s.Send(ctx, e))

	events, _ := s.Wait(ctx, 1)
	fmt.Println(len(events), events[0].ID, s.Attempts())

	_ = s.Close()
	fmt.Println(s.Send(ctx, e))
	// Output:
	// true retryable
	// <nil>
	// 1 58fb5dac 2
	// memsink: sink: closed
}

func ExampleSink_Hold() {
	ctx := context.Background()
	s := memsink.New()
	release := s.Hold()

	done := make(chan error)
	go func() { done <- s.Send(ctx, &fanbridge.Event{ID: "1"}) }()
	fmt.Println("recorded while held:", s.Len())

	release()
	fmt.Println(<-done, "recorded after release:", s.Len())
	// Output:
	// recorded while held: 0
	// <nil> recorded after release: 1
}
