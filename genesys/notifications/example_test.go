package notifications_test

import (
	"context"
	"fmt"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/genesys/notifications"
)

func ExampleNew() {
	// A local fake Genesys Cloud; with the real one, only the region and credentials are needed.
	srv := genesystest.NewServer()
	defer srv.Close()
	client, err := genesys.NewClient(genesys.USEast1, genesystest.DefaultClientID, genesystest.DefaultClientSecret,
		genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()))
	if err != nil {
		panic(err)
	}
	// Deferred first, so it runs after src.Close: the client outlives the source that uses it.
	defer client.Close()

	// In a service the dispatcher is a fanout.Dispatcher delivering to Kafka, gRPC and others.
	got := make(chan *fanbridge.Event, 1)
	d := eventbridge.DispatcherFunc(func(ctx context.Context, e *fanbridge.Event) error {
		got <- e
		return nil
	})
	const topic = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"
	src, err := notifications.New(client, []string{topic}, d)
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go src.Run(ctx)
	defer src.Close()

	if err := srv.WaitSubscribed(ctx, topic, 1); err != nil {
		panic(err)
	}
	srv.Publish(topic, map[string]any{"presenceDefinition": map[string]string{"systemPresence": "AVAILABLE"}})
	var e *fanbridge.Event
	select {
	case e = <-got:
	case <-ctx.Done():
		panic("no event")
	}
	fmt.Println(e.Type)
	fmt.Println(string(e.Data))
	// Output:
	// v2.users.{id}.presence
	// {"presenceDefinition":{"systemPresence":"AVAILABLE"}}
}
