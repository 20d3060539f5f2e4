package fanbridge_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge/dlq/filedlq"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// Example wires the intake of a service: Amazon EventBridge posts Genesys Cloud events with an
// API key; finished conversations go to a Kafka topic, keyed by conversation; what Kafka cannot
// take is dead-lettered on disk. An in-process broker stands in for the real cluster.
func Example() {
	cluster, err := kfake.NewCluster(kfake.SeedTopics(1, "genesys-conversations"))
	check(err)
	defer cluster.Close()
	dir, err := os.MkdirTemp("", "fanbridge-dlq")
	check(err)
	defer os.RemoveAll(dir)
	brokers, apiKey := cluster.ListenAddrs(), "a-long-random-connection-key"

	kafka, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: brokers},
		kafkasink.WithTopic("genesys-conversations"), kafkasink.WithKey(kafkasink.ConversationKey))
	check(err)
	dead, err := filedlq.Open(dir)
	check(err)
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "kafka", Sink: kafka}},
		Routes: []fanout.Route{{
			Name:    "conversation-ends",
			Pattern: []byte(`{"source":[{"prefix":"aws.partner/genesys.com"}],"detail-type":[{"suffix":".customer.end"}]}`),
			Sinks:   []string{"kafka"},
		}},
		DLQ: dead,
	})
	check(err)
	intake, err := eventbridge.NewHandler(d)
	check(err)
	mux := http.NewServeMux()
	mux.Handle("POST /events/genesys", signature.Verify(signature.Must(signature.APIKey("X-Api-Key", apiKey)))(intake))

	// What Amazon EventBridge does: post a Genesys event with the connection's API key.
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body, err := os.ReadFile("testdata/v2.detail.events.conversation.customer.end.json")
	check(err)
	req, err := http.NewRequest(http.MethodPost, srv.URL+"/events/genesys", bytes.NewReader(body))
	check(err)
	req.Header.Set("X-Api-Key", apiKey)
	resp, err := http.DefaultClient.Do(req)
	check(err)
	answer, err := io.ReadAll(resp.Body)
	check(err)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, string(bytes.TrimSpace(answer)))

	// The 200 came after Kafka acknowledged the record: it is there to read.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics("genesys-conversations"))
	check(err)
	defer client.Close()
	fetches := client.PollFetches(ctx)
	check(fetches.Err())
	for _, r := range fetches.Records() {
		fmt.Printf("%s key=%s\n", r.Topic, r.Key)
	}
	check(d.Close(ctx))
	check(dead.Close())
	// Output:
	// 200 {"status":"delivered","id":"58fb5dac-f077-4eec-a25f-c638dbdd4368"}
	// genesys-conversations key=2f7bf00a-0fc2-4d6a-9b56-92238191433e
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
