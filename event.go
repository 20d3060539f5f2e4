package fanbridge

import (
	"encoding/json"
	"maps"
	"time"
)

// Event is one notification as fanbridge carries it from intake to every sink.
//
// An Event is built once by a decoder (eventbridge.Handler, genesys/notifications) and then shared,
// read-only, by every route and sink it reaches. Sinks and middleware must not modify it; one that
// needs a changed copy calls Clone.
type Event struct {
	// ID is unique per event (the envelope id). It is the idempotency key: a sender's retry of the
	// same event carries the same ID, and deduplication keys on it.
	ID string
	// Type is what routes match on: for Genesys events the topic template, such as
	// "v2.users.{id}.presence" (EventBridge's detail-type).
	Type string
	// Topic is the concrete topic with real ids (detail.topicName), when the sender gives one.
	Topic string
	// Source names the sender, for example "aws.partner/genesys.com/cloud/<org>/<suffix>".
	Source string
	// Time is when the event happened, as the sender reports it; zero when it does not.
	Time time.Time
	// Data is the event body (detail.eventBody, or a webhook's data/attributes), as raw JSON.
	Data json.RawMessage
	// Metadata holds the envelope's remaining facts under the Meta* keys of this package
	// (correlation id, AWS account and region, trace context) and any a decoder adds.
	Metadata map[string]string
	// Raw is the envelope exactly as received. Event patterns match on it and dead-letter queues
	// keep it, so a redriven event is byte-for-byte what the sender posted.
	Raw []byte
}

// Metadata keys set by fanbridge's decoders and read by its sinks. Keys are lower-case so that they
// travel unchanged through Kafka headers and gRPC metadata.
const (
	// MetaCorrelationID is the sender's correlation id (Genesys detail.metadata.CorrelationId).
	MetaCorrelationID = "correlation-id"
	// MetaAccount is the AWS account that delivered the event (EventBridge "account").
	MetaAccount = "account"
	// MetaRegion is the AWS region that delivered the event (EventBridge "region").
	MetaRegion = "region"
	// MetaFormat names the decoder that produced the event, such as "eventbridge" or "cloudevents".
	MetaFormat = "format"
	// MetaTraceparent is the W3C trace context header value that came with the event, if any.
	MetaTraceparent = "traceparent"
	// MetaTracestate is the W3C tracestate header value that came with the event, if any.
	MetaTracestate = "tracestate"
)

// Meta returns the metadata value for key, or "" when the event has none. It is safe on a nil
// Metadata map.
func (e *Event) Meta(key string) string {
	return e.Metadata[key]
}

// Clone returns a deep copy of e: changing the copy's Data, Raw or Metadata leaves e untouched.
func (e *Event) Clone() *Event {
	c := *e
	if e.Data != nil {
		c.Data = append(json.RawMessage(nil), e.Data...)
	}
	if e.Raw != nil {
		c.Raw = append([]byte(nil), e.Raw...)
	}
	if e.Metadata != nil {
		c.Metadata = maps.Clone(e.Metadata)
	}
	return &c
}
