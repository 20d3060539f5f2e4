package kafkadlq_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/kafkadlq"
)

func ExampleNew() {
	// An in-process Kafka broker stands in for the real cluster.
	c, _ := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "fanbridge-dlq"))
	defer c.Close()
	client, _ := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...)) // acks=all by default
	defer client.Close()

	q, err := kafkadlq.New(client, "fanbridge-dlq")
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	ev := &fanbridge.Event{ID: "58fb5dac", Raw: []byte(`{"id":"58fb5dac"}`)}
	e := dlq.NewEntry(ev, "grpc-crm", "ended", errors.New("Unavailable"), time.Now(), time.Now())
	if err := q.Put(ctx, e); err != nil { // returns once the broker acknowledged the record
		fmt.Println(err)
		return
	}
	_ = q.List(ctx, func(e dlq.Entry) error {
		fmt.Println(e.Sink, e.Event.ID, e.Error, string(e.Event.Raw))
		return nil
	})
	// Output: grpc-crm 58fb5dac Unavailable {"id":"58fb5dac"}
}
