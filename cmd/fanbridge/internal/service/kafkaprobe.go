package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/fanbridge/fanbridge/cmd/fanbridge/internal/config"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// kafkaProbe is the readiness probe of a Kafka sink or dead-letter queue that writes to topics
// through ks's client: a broker answers, and the brokers know every one of topics. kafkasink's
// Ping checks only the first, and a missing topic fails every record written to it, so that
// every event for it would be answered 503 while /readyz said ready.
func kafkaProbe(ks *kafkasink.Sink, topics []string) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := ks.Ping(ctx); err != nil {
			return err
		}
		return checkTopics(ctx, ks.Client(), topics)
	}
}

// kafkaSinkTopics lists the topics a Kafka sink may write to that can be known before an event
// comes: its topic, the topics of topic_by_type and its fallback, or a topic_template without
// placeholders, which is a topic's name. A template with placeholders names a topic for each
// event; none of those can be checked beforehand.
func kafkaSinkTopics(k *config.KafkaSink) []string {
	set := map[string]bool{}
	switch {
	case k.Topic != "":
		set[k.Topic] = true
	case k.TopicByType != nil:
		for _, t := range k.TopicByType {
			set[t] = true
		}
		if k.FallbackTopic != "" {
			set[k.FallbackTopic] = true
		}
	case k.TopicTemplate != "" && !strings.Contains(k.TopicTemplate, "{"):
		// A topic's name holds only letters, digits, '.', '_' and '-': a '{' starts a
		// placeholder.
		set[k.TopicTemplate] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// checkTopics asks cl's brokers for the metadata of topics, and fails naming each one they do not
// have, or refuse to describe. A client that may create a topic by producing to it
// (kgo.AllowAutoTopicCreation) needs none to exist.
func checkTopics(ctx context.Context, cl *kgo.Client, topics []string) error {
	if len(topics) == 0 {
		return nil
	}
	if auto, _ := cl.OptValue(kgo.AllowAutoTopicCreation).(bool); auto {
		return nil
	}
	req := kmsg.NewPtrMetadataRequest()
	// The sink's client does not create topics; neither may its probe, on a broker that would.
	req.AllowAutoTopicCreation = false
	for _, t := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(t)
		req.Topics = append(req.Topics, rt)
	}
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata of topics %q: %w", topics, err)
	}
	var errs []error
	for _, t := range resp.Topics {
		err := kerr.ErrorForCode(t.ErrorCode)
		if err == nil {
			continue
		}
		name := ""
		if t.Topic != nil {
			name = *t.Topic
		}
		if errors.Is(err, kerr.UnknownTopicOrPartition) {
			errs = append(errs, fmt.Errorf("topic %q does not exist", name))
		} else {
			errs = append(errs, fmt.Errorf("topic %q: %w", name, err))
		}
	}
	return errors.Join(errs...)
}
