package kafkasink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// presence is the kind of event the Genesys presence tutorial forwards to Kafka.
var presence = &fanbridge.Event{
	ID:     "8b1e0c6e-3c9a-4f43-9d6a-0f3f2b7c1a55",
	Type:   "v2.users.{id}.presence",
	Topic:  "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence",
	Source: "aws.partner/genesys.com/cloud/org/suffix",
	Time:   time.Date(2026, 5, 14, 9, 3, 17, 47_000_000, time.UTC),
	Data:   json.RawMessage(`{"presenceDefinition":{"systemPresence":"AVAILABLE"},"primary":true}`),
	Metadata: map[string]string{
		fanbridge.MetaCorrelationID: "7272d362-23b2-4c14-9d40-dc7b7683153a",
		fanbridge.MetaTraceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	},
}

// printRecords reads every record of topic from the start and prints its topic, key, headers and
// value.
func printRecords(ctx context.Context, brokers []string, topic string, n int) {
	consumer, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		log.Fatal(err)
	}
	defer consumer.Close()
	var recs []*kgo.Record
	for len(recs) < n && ctx.Err() == nil {
		recs = append(recs, consumer.PollFetches(ctx).Records()...)
	}
	for _, r := range recs {
		fmt.Printf("topic=%s key=%s\n", r.Topic, r.Key)
		for _, h := range r.Headers {
			fmt.Printf("  %s: %s\n", h.Key, h.Value)
		}
		fmt.Printf("  value: %s\n", r.Value)
	}
}

func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// An in-process Kafka broker stands in for the real cluster.
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "gen-presence-status"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	// Your client, with your settings; the sink never closes it.
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	s, err := kafkasink.New(client,
		kafkasink.WithTopicByType(map[string]string{"v2.users.{id}.presence": "gen-presence-status"}, ""),
		kafkasink.WithKey(kafkasink.UserKey),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	fmt.Println("send:", s.Send(ctx, presence))
	printRecords(ctx, cluster.ListenAddrs(), "gen-presence-status", 1)
	// Output:
	// send: <nil>
	// topic=gen-presence-status key=e40f28ea-fa86-493f-a5b8-d559c8533c96
	//   ce_specversion: 1.0
	//   ce_id: 8b1e0c6e-3c9a-4f43-9d6a-0f3f2b7c1a55
	//   ce_type: v2.users.{id}.presence
	//   ce_source: aws.partner/genesys.com/cloud/org/suffix
	//   ce_subject: v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence
	//   ce_time: 2026-05-14T09:03:17.047Z
	//   content-type: application/json
	//   fanbridge-meta-correlation-id: 7272d362-23b2-4c14-9d40-dc7b7683153a
	//   traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
	//   value: {"presenceDefinition":{"systemPresence":"AVAILABLE"},"primary":true}
}

func ExampleDial() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "genesys-events"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()

	// The sink builds and owns its client: acks=all, idempotent. Add TLS and SASL for a real
	// cluster:
	//   TLS:  &tls.Config{MinVersion: tls.VersionTLS12},
	//   SASL: &kafkasink.SASL{Mechanism: kafkasink.SASLScramSHA512, Username: user, Password: pass},
	s, err := kafkasink.Dial(kafkasink.ClientConfig{
		Brokers:  cluster.ListenAddrs(),
		ClientID: "contact-centre-bridge",
	}, kafkasink.WithTopic("genesys-events"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("ping:", s.Ping(ctx))
	fmt.Println("send:", s.Send(ctx, presence))
	fmt.Println("close:", s.Close()) // also closes the client Dial built
	// Output:
	// ping: <nil>
	// send: <nil>
	// close: <nil>
}

func ExampleWithTopicTemplate() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(1, "genesys.v2.users.id.presence", "genesys.v2.detail.events.conversation.id.customer.end"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// "{type}" is the topic template; braces are dropped so the name is valid in Kafka.
	s, err := kafkasink.New(client, kafkasink.WithTopicTemplate("genesys.{type}"))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	end := &fanbridge.Event{ID: "58fb5dac", Type: "v2.detail.events.conversation.{id}.customer.end"}
	for _, e := range []*fanbridge.Event{presence, end} {
		fmt.Println(e.Type, "->", s.Send(ctx, e))
	}
	printTopics := func(topic string) {
		c, _ := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		defer c.Close()
		for _, r := range c.PollFetches(ctx).Records() {
			fmt.Println(r.Topic, "holds", string(r.Key))
		}
	}
	printTopics("genesys.v2.users.id.presence")
	printTopics("genesys.v2.detail.events.conversation.id.customer.end")
	// Output:
	// v2.users.{id}.presence -> <nil>
	// v2.detail.events.conversation.{id}.customer.end -> <nil>
	// genesys.v2.users.id.presence holds 8b1e0c6e-3c9a-4f43-9d6a-0f3f2b7c1a55
	// genesys.v2.detail.events.conversation.id.customer.end holds 58fb5dac
}

func ExampleWithTopicByType() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "gen-presence-status"))
	if err != nil {
		log.Fatal(err)
	}
	defer cluster.Close()
	client, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	// No fallback: an event of another type is refused for good, so it goes to the dead-letter
	// queue instead of being retried.
	s, err := kafkasink.New(client, kafkasink.WithTopicByType(map[string]string{
		"v2.users.{id}.presence": "gen-presence-status",
	}, ""))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	fmt.Println(s.Send(ctx, presence))
	err = s.Send(ctx, &fanbridge.Event{ID: "1", Type: "v2.users.{id}.activity"})
	fmt.Println(err)
	// Output:
	// <nil>
	// kafkasink: choosing a topic for event "1": kafkasink: no topic for event type "v2.users.{id}.activity"
}

func ExampleConversationKey() {
	end := &fanbridge.Event{
		ID:    "58fb5dac-f077-4eec-a25f-c638dbdd4368",
		Type:  "v2.detail.events.conversation.{id}.customer.end",
		Topic: "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
	}
	bodyOnly := &fanbridge.Event{
		ID:   "6efd5506",
		Type: "v2.detail.events.conversation.{id}.acw",
		Data: json.RawMessage(`{"conversationId":"97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a","wrapupCode":"sale"}`),
	}
	neither := &fanbridge.Event{ID: "a1", Type: "v2.users.{id}.presence"}
	fmt.Println(kafkasink.ConversationKey(end))
	fmt.Println(kafkasink.ConversationKey(bodyOnly))
	fmt.Println(kafkasink.ConversationKey(neither))
	// Output:
	// 2f7bf00a-0fc2-4d6a-9b56-92238191433e
	// 97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a
	// a1
}

func ExampleUserKey() {
	fmt.Println(kafkasink.UserKey(presence))
	fmt.Println(kafkasink.UserKey(&fanbridge.Event{
		ID:   "2",
		Type: "v2.detail.events.conversation.{id}.user.end",
		Data: json.RawMessage(`{"userId":"9fb2ca78-8389-4758-b76a-9b0300de1fce","disconnectType":"transfer"}`),
	}))
	// Output:
	// e40f28ea-fa86-493f-a5b8-d559c8533c96
	// 9fb2ca78-8389-4758-b76a-9b0300de1fce
}

func ExampleEventFromRecord() {
	// A record as a consumer fetches it from a topic the sink writes to.
	r := &kgo.Record{
		Value: []byte(`{"primary":true}`),
		Headers: []kgo.RecordHeader{
			{Key: "ce_specversion", Value: []byte("1.0")},
			{Key: "ce_id", Value: []byte("8b1e0c6e")},
			{Key: "ce_type", Value: []byte("v2.users.{id}.presence")},
			{Key: "ce_time", Value: []byte("2026-05-14T09:03:17.047Z")},
			{Key: "fanbridge-meta-correlation-id", Value: []byte("7272d362")},
		},
	}
	e, err := kafkasink.EventFromRecord(r)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(e.ID, e.Type, e.Time.Format(time.RFC3339Nano))
	fmt.Println(e.Meta(fanbridge.MetaCorrelationID), string(e.Data))
	// Output:
	// 8b1e0c6e v2.users.{id}.presence 2026-05-14T09:03:17.047Z
	// 7272d362 {"primary":true}
}

func ExampleSanitizeTopic() {
	fmt.Println(kafkasink.SanitizeTopic("v2.users.{id}.presence"))
	fmt.Println(kafkasink.SanitizeTopic("aws.partner/genesys.com/cloud/org/suffix"))
	fmt.Println(kafkasink.ValidTopic("gen presence") != nil)
	// Output:
	// v2.users.id.presence
	// aws.partner_genesys.com_cloud_org_suffix
	// true
}
