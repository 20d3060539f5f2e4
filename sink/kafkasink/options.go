package kafkasink

import (
	"fmt"
	"log/slog"
	"time"
)

// Option configures a Sink.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	topic        topicChooser
	topicErr     error
	topicOptions int
	key          KeyFunc
	envelope     bool
	closeTimeout time.Duration
	maxInFlight  int
	logger       *slog.Logger
	// allowWeakAcks lets New and Dial take a client producing with acks=0 or acks=1.
	allowWeakAcks bool
}

func (c *config) setTopic(t topicChooser, err error) {
	c.topicOptions++
	c.topic, c.topicErr = t, err
}

// WithTopic sends every event to the topic name, which must be a valid Kafka topic name.
// Exactly one of WithTopic, WithTopicByType, WithTopicTemplate and WithTopicFunc is required; there
// is no default.
func WithTopic(name string) Option {
	return optionFunc(func(c *config) { c.setTopic(fixedTopic(name)) })
}

// WithTopicByType sends each event to the topic its Type maps to, such as
// {"v2.users.{id}.presence": "gen-presence-status"}. An event of another type goes to fallback, or,
// when fallback is "", fails with a permanent error wrapping ErrUnmappedType. Every name is checked
// when the sink is built; the map is copied. An empty map needs a fallback: without one no event
// could go anywhere, and New and Dial refuse it. There is no default.
func WithTopicByType(topics map[string]string, fallback string) Option {
	return optionFunc(func(c *config) { c.setTopic(topicsByType(topics, fallback)) })
}

// WithTopicTemplate sends each event to the topic a template names, such as "genesys.{type}" or
// "{topic}". Placeholders are {type}, {topic}, {source}, {account} and {region} (the last two from
// Metadata); their values are made safe with SanitizeTopic, so "genesys.{type}" sends a
// "v2.users.{id}.presence" event to "genesys.v2.users.id.presence". Literal text must already be
// valid in a topic name. A template without placeholders must be a valid topic name itself (not
// "." or "..", at most 249 bytes), and one with placeholders must have fewer than 249 bytes of
// literal text, leaving them room; New, Dial and ValidTopicTemplate refuse others. A result that
// is still invalid (empty, ".", "..", or longer than 249 bytes) fails the Send permanently with
// ErrInvalidTopic. There is no default.
func WithTopicTemplate(tmpl string) Option {
	return optionFunc(func(c *config) { c.setTopic(topicTemplate(tmpl)) })
}

// WithTopicFunc sends each event to the topic f returns; see TopicFunc. There is no default.
func WithTopicFunc(f TopicFunc) Option {
	return optionFunc(func(c *config) {
		if f == nil {
			c.setTopic(topicChooser{}, fmt.Errorf("%w: nil TopicFunc", ErrInvalidTopic))
			return
		}
		c.setTopic(topicChooser{f: f}, nil)
	})
}

// WithKey sets how each record's key is chosen, such as ConversationKey or UserKey. The default is
// KeyByID.
func WithKey(f KeyFunc) Option {
	return optionFunc(func(c *config) { c.key = f })
}

// WithEnvelopeValue makes each record's value the envelope as received (Event.Raw) rather than the
// body (Event.Data), and marks the record with HeaderValue "envelope"; an event without Raw still
// carries its body. The headers stay the same, except HeaderSpecVersion, which is left out because
// the value is no longer the CloudEvents data. The default is the body.
func WithEnvelopeValue() Option {
	return optionFunc(func(c *config) { c.envelope = true })
}

// WithAllowWeakAcks lets New and Dial accept a client that produces with acks=0 or acks=1, for
// events whose loss is acceptable: Send's nil then means only that the leader took the record
// (acks=1), or that it was sent (acks=0), and a broker failure can lose it. The default refuses
// such a client with an error wrapping ErrWeakAcks.
func WithAllowWeakAcks() Option {
	return optionFunc(func(c *config) { c.allowWeakAcks = true })
}

// WithCloseTimeout bounds how long Close waits for the records this sink has produced to be
// acknowledged. The default is 10 seconds.
func WithCloseTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.closeTimeout = d })
}

// WithMaxInFlight bounds how many records this sink has waiting for an acknowledgement at once; a
// Send beyond it waits for room, within its context. It keeps Send from waiting inside the client,
// where its context does not count, for room in a full buffer: set above the client's
// kgo.MaxBufferedRecords, or with a client whose buffer also holds other producers' records or is
// bounded in bytes (kgo.MaxBufferedBytes), the client's buffer may fill first, and a Send then
// waits there until the broker answers. The default is the client's kgo.MaxBufferedRecords.
func WithMaxInFlight(n int) Option {
	return optionFunc(func(c *config) { c.maxInFlight = n })
}

// WithLogger sets where the sink reports what no caller can see any more: the outcome of records
// whose Send gave up waiting for the broker (at Debug when such a record was delivered after all,
// at Warn when it failed). Logs carry the event ID and topic, never the body. The default discards
// everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}
