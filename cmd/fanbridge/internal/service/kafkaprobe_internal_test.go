package service

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaTopicsConfig is a service with one Kafka sink, its topic settings given by topics, and a
// Kafka dead-letter queue writing to dlqTopic, all on broker.
func kafkaTopicsConfig(broker, topics, dlqTopic string) []byte {
	return fmt.Appendf(nil, `listen: {address: "127.0.0.1:0"}
intake:
  - path: /events
    insecure_no_auth: true
sinks:
  - name: analytics
    kafka: {brokers: [%[1]q], %[2]s}
routes:
  - {name: everything, all: true, sinks: [analytics]}
dlq: {kafka: {brokers: [%[1]q], topic: %[3]s}}
health: {cache: 1ms, probe_timeout: 10s}
`, broker, topics, dlqTopic)
}

// A Kafka sink or dead-letter queue whose topic does not exist is not ready: every record written
// to it would fail. The probe names the topic. What can be known before an event comes is checked:
// a fixed topic, every topic of topic_by_type and its fallback, a topic_template without
// placeholders; a template with placeholders cannot be.
func TestReadyzChecksKafkaTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events", "presence", "dlq"))
	require.NoError(t, err)
	defer c.Close()
	broker := c.ListenAddrs()[0]
	for _, tc := range []struct {
		name, topics, dlqTopic string
		sinkErr, dlqErr        string // "" for ready
	}{
		{name: "every topic exists", topics: "topic: events", dlqTopic: "dlq"},
		{name: "sink topic missing", topics: "topic: nosuch", dlqTopic: "dlq", sinkErr: `topic "nosuch" does not exist`},
		{name: "dead-letter topic missing", topics: "topic: events", dlqTopic: "nosuch-dlq", dlqErr: `topic "nosuch-dlq" does not exist`},
		{name: "a topic of topic_by_type missing", topics: `topic_by_type: {"v2.users.{id}.presence": presence, "v2.a": nosuch-a}, fallback_topic: events`,
			dlqTopic: "dlq", sinkErr: `topic "nosuch-a" does not exist`},
		{name: "fallback topic missing", topics: `topic_by_type: {"v2.users.{id}.presence": presence}, fallback_topic: nosuch-fallback`,
			dlqTopic: "dlq", sinkErr: `topic "nosuch-fallback" does not exist`},
		{name: "template without placeholders missing", topics: "topic_template: nosuch-fixed", dlqTopic: "dlq", sinkErr: `topic "nosuch-fixed" does not exist`},
		{name: "template with placeholders: not checked", topics: `topic_template: "nosuch.{type}"`, dlqTopic: "dlq"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestService(t, kafkaTopicsConfig(broker, tc.topics, tc.dlqTopic))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			want := map[string]string{}
			for _, p := range []struct {
				name, err string
				check     func(context.Context) error
			}{{"analytics", tc.sinkErr, s.sinks["analytics"].probe}, {dlqProbe, tc.dlqErr, s.dlqPing}} {
				if p.err == "" {
					assert.NoError(t, p.check(ctx), p.name)
					continue
				}
				assert.EqualError(t, p.check(ctx), p.err, p.name)
				want[p.name] = unavailable
			}
			assert.Equal(t, want, s.ready.check(ctx))
		})
	}
}

// A client that creates a topic by producing to it needs none to exist.
func TestCheckTopicsWithAutoCreation(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "events"))
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, auto := range []bool{false, true} {
		opts := []kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}
		if auto {
			opts = append(opts, kgo.AllowAutoTopicCreation())
		}
		cl, err := kgo.NewClient(opts...)
		require.NoError(t, err)
		defer cl.Close()
		require.NoError(t, checkTopics(ctx, cl, []string{"events"}))
		err = checkTopics(ctx, cl, []string{"events", "nosuch"})
		if auto {
			assert.NoError(t, err)
		} else {
			assert.EqualError(t, err, `topic "nosuch" does not exist`)
		}
	}
}
