// Package kafkasink delivers events to Apache Kafka through the franz-go client.
//
// A Sink produces each event as one record and returns from Send once the broker acknowledged it.
// Build it around your own client with New, which leaves every producer setting to you and never
// closes the client, or let Dial build a client from a ClientConfig (brokers, TLS, SASL PLAIN or
// SCRAM-SHA-256/512, client id) that the sink owns and closes:
//
//	s, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: []string{"kafka:9092"}},
//		kafkasink.WithTopicByType(map[string]string{
//			"v2.users.{id}.presence": "gen-presence-status",
//		}, "genesys-other"),
//		kafkasink.WithKey(kafkasink.UserKey),
//	)
//
// # Topics and keys
//
// One topic option is required: WithTopic (one topic for all), WithTopicByType (a map from
// Event.Type, with a fallback or a permanent failure for other types), WithTopicTemplate (such as
// "genesys.{type}" or "{topic}", values made safe with SanitizeTopic) or WithTopicFunc. Names are
// checked against Kafka's rules ([a-zA-Z0-9._-], at most 249 bytes, not "." or "..") when the sink
// is built, or, for names only known per event, before anything is produced.
//
// The record key decides the partition, and Kafka keeps order within a partition. The default key
// is the event ID (KeyByID). ConversationKey keeps each Genesys conversation in one partition and
// in order, reading the id from the concrete topic ("v2.detail.events.conversation.<id>.…") or the
// body's "conversationId"; UserKey does the same for users ("v2.users.<id>.…", or "userId"), and
// keys an audit of a user or of a user's presence by the audited user, not by the "userId" of
// whoever made the change; NoKey leaves records unkeyed.
//
// # Record layout
//
// The value is the event body (Event.Data) as it arrived, byte for byte; WithEnvelopeValue makes it
// the whole envelope (Event.Raw) instead. Headers, in this order: ce_specversion ("1.0", left out
// with WithEnvelopeValue), ce_id, ce_type, ce_source, ce_subject (the concrete Genesys topic),
// ce_time (RFC 3339 with nanoseconds, in UTC), fanbridge-value ("envelope", only with
// WithEnvelopeValue: see HeaderValue), content-type ("application/json"), then one header per
// Metadata entry in key order, each key k as "fanbridge-meta-k" (so the correlation id travels as
// "fanbridge-meta-correlation-id"), then the W3C trace context, traceparent and tracestate, as
// sink.TraceContext gives it: the span in the context of Send when there is one (fanout's attempt
// span, when its Dispatcher traces), otherwise the event's own trace metadata. Empty fields are
// left out, but for ce_source, which CloudEvents requires: an event without a Source (the
// WebSocket notification intake's, a webhook's that names none) gets "urn:fanbridge:" and its
// Metadata format, such as "urn:fanbridge:notification" (see HeaderSource), which
// EventFromRecord reads back as no Source. The core headers follow the CloudEvents Kafka binding
// in binary mode, so a CloudEvents SDK reads a record as an event (id, type, source, subject,
// time) whose data is the body, as JSON. The event's other attributes travel in
// fanbridge-meta-* headers, which an SDK does not read as attributes: a CloudEvent taken in with
// extensions, a dataschema or a datacontenttype comes out with those in fanbridge-meta-*
// headers, and data that was text or data_base64 comes out as the JSON string the intake kept
// (see the eventbridge package). EventFromRecord turns a record back into the event. The record's own timestamp is the time it was produced, not the
// event time, so that broker-side retention and timestamp limits judge it as new.
//
// # Errors
//
// Send returns errors classified for package retry; it never retries on its own beyond what the
// client does inside (see Delivery semantics). IsPermanent holds the rules:
//
//	failure                                                  class       why
//	-------------------------------------------------------  ----------  ------------------------------
//	invalid topic name (from a template or TopicFunc)        permanent   refused before producing
//	type not in WithTopicByType and no fallback              permanent   ErrUnmappedType
//	Event.Time outside the years 0001 to 9999                permanent   EventFromRecord, as the intake,
//	                                                                     reads no other
//	UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_ID             permanent   after kgo.UnknownTopicRetries
//	                                                                     lookups (default 4: ~1 s)
//	TOPIC_/CLUSTER_AUTHORIZATION_FAILED                      permanent   ACLs do not change by retrying
//	SASL_AUTHENTICATION_FAILED, unsupported SASL mechanism   permanent   credentials are wrong (*)
//	MESSAGE_TOO_LARGE (client or broker), for the record     permanent   the event will not shrink
//	  alone
//	the same for a batch it shared, or was queued behind     retryable   it may fit alone (**)
//	RECORD_LIST_TOO_LARGE                                    retryable   no size: no record shown at fault (**)
//	INVALID_RECORD, INVALID_TIMESTAMP, POLICY_VIOLATION,     retryable   no record shown at fault (***)
//	  CORRUPT_MESSAGE
//	any other code kerr marks non-retriable                  permanent   INVALID_TOPIC_EXCEPTION ...
//	producer-session codes (OUT_OF_ORDER_SEQUENCE_NUMBER,    retryable   the client resets its session
//	  INVALID_PRODUCER_EPOCH, UNKNOWN_PRODUCER_ID ...)
//	codes kerr marks retriable, once the client gave up      retryable   NOT_ENOUGH_REPLICAS, NOT_LEADER ...
//	kgo.ErrRecordTimeout, kgo.ErrRecordRetries, connections  retryable   the cause, when wrapped, decides
//	ctx canceled / deadline while waiting                    canceled /  the record may still arrive
//	                                                         retryable
//	no acknowledgement within the delivery timeout and its   retryable   ErrNoAcknowledgement, whatever
//	  margin (see Delivery semantics)                                    ctx; the record may still arrive
//	Send after Close; client closed under a pending Send     retryable   wraps sink.ErrClosed
//
// (*) The client keeps reconnecting until the record's delivery timeout (ClientConfig.DeliveryTimeout,
// kgo.RecordDeliveryTimeout), so a Send whose deadline comes first sees only a retryable deadline
// error (a Send without one normally sees the refusal, since Send allows the client a margin past
// the timeout: see Delivery semantics); Ping reports a refused login at once, which makes it the
// check to run at startup.
//
// (**) The broker judges whole batches, against a topic's max.message.bytes (MESSAGE_TOO_LARGE)
// and segment.bytes (RECORD_LIST_TOO_LARGE), and the client then fails every record it holds for
// the partition: those of the refused batch and those queued behind it. MESSAGE_TOO_LARGE comes
// with the refused batch's size, so Send tells a record refused alone from one refused for its
// company. RECORD_LIST_TOO_LARGE comes with no size, so it never shows which record was too large:
// a record too large alone is retried until its policy gives up, and then dead-lettered. A record
// over the client's own batch limit never reaches the broker: the client refuses it with
// MESSAGE_TOO_LARGE. Keep the client's kgo.ProducerBatchMaxBytes (default 1,000,012) at or below
// the smallest max.message.bytes and segment.bytes of the topics the sink writes to, and the
// broker refuses no batch for its size.
//
// (***) The broker refuses a whole batch for what one of its records holds, and the client fails
// with that code every record it holds for the partition, those queued behind the batch too,
// keeping none of the broker's per-record errors: the code does not say which record was at
// fault. Send therefore calls it retryable. A record refused only for its company is delivered by
// the next attempt; one the broker refuses for itself fails every attempt, and is dead-lettered
// when its retry policy gives up (for attempts or age, not as permanent). A policy with neither
// budget (a negative MaxAttempts and no MaxAge), which fanout.New accepts, never gives up: in
// Async mode, where no request's budget ends the retries, such a record is retried until the
// Dispatcher's Close, and the events of its ordering key wait behind it; Close's deadline
// dead-letters them all (for age). The fanbridge service's configuration refuses that policy.
// Producing the record once more within Send would not decide it either: the record at fault is
// produced again at the same moment by its own Send, and the two may share a batch again.
//
// The refusals marked (**) and (***) are the broker's answers, not signs that it is down: Send
// marks them with sink.Refused, and fanout's circuit breaker does not count them as failures, so
// that a run of invalid events does not open it and dead-letter the valid events behind them
// circuit-open. Send also asks for a random wait before the next attempt (retry.After), of up to
// eight times the client's linger (kgo.ProducerLinger, at least 10 ms in all): the records of a
// refused batch fail together, and retried after one same interval (a policy without jitter, or
// intervals within the linger) the client would batch them together again, the valid ones with
// the one at fault, to be refused again at every attempt. The random waits part them. Such a wait
// only raises the policy's own: a policy without jitter (retry.NoJitter) whose interval is longer
// still retries them together, and the valid records may then be refused with the one at fault
// at every attempt, and dead-lettered with it; the default, retry.FullJitter, spreads them.
// That wait is for the sink's next attempt alone: fanout does not pass it on to the sender (see
// sink.Refused), whose intake answers with its own default wait.
//
// A broker that refuses every batch looks the same, and never opens the breaker: a record
// validation or policy whose own backend is gone (a schema check that cannot reach its registry,
// say) may answer INVALID_RECORD or POLICY_VIOLATION for every record. Each event then pays its
// whole retry policy, attempts and waits (in fanout's Sync mode, within the sender's request), and
// is dead-lettered for attempts (dlq.ConditionAttempts), one after another, not circuit-open at
// once. No metric tells such refusals from any other retryable failure: the signs are the sink's
// fanbridge.fanout.sink.dead_lettered (SinkStats.DeadLettered) growing with every event while
// .delivered stays flat, .retried (SinkStats.Retried) growing by the policy's attempts less one
// for each, and fanbridge.fanout.sink.breaker.state staying 0 (closed); the dead-letter entries,
// and the Dispatcher's log of each, name condition "attempts" and the broker's code in their
// error. Alert on the dead-lettered count, and redrive the entries once the broker accepts records
// again.
//
// The client reports some failures wrapped (kgo.ErrRecordTimeout carries the last error it met),
// so the whole error chain counts. Errors name the event ID and the topic, never the body.
// ErrInvalidConfig and ErrInvalidTopic come back from New and Dial for settings that cannot work,
// and ErrWeakAcks (with ErrInvalidConfig) for a client that does not produce with acks=all, unless
// WithAllowWeakAcks is given.
//
// # Concurrency
//
// A Sink is safe for concurrent use, and meant for it: each Send hands its record to the client
// asynchronously (kgo.Client.Produce with a callback) and waits on its own notification, so
// records of concurrent Sends travel together in the client's batches and produce requests, with
// no goroutine per Send. Record storage is reused once acknowledged. Up to WithMaxInFlight records
// wait for acknowledgement at once (the client's buffer size by default); a Send beyond that waits
// for room within its context, so the client's buffer does not fill with this sink's records.
// When it fills with others' (a client shared with other producers) or is bounded in bytes
// (kgo.MaxBufferedBytes), a Send waits inside the client for room, past its context if the broker
// stalls: give the sink a client of its own, sized in records. Close never waits behind such a
// Send beyond its timeout. SendBatch produces all its events before waiting for any.
//
// Close may be called more than once, and from several goroutines at once (a deferred Close and a
// shutdown path, say): the first call closes the sink, and every call, the first or not, returns
// only once the sink is closed, with the first call's result, so that no caller goes on while
// records are still being flushed. CloseContext bounds one caller's wait by its context: when the
// context ends first it returns an error wrapping the context's error, and the close carries on
// within its own timeout. A Send that begins once a Close has begun fails at once with an error
// wrapping sink.ErrClosed, whatever the event, before its topic or record is looked at.
//
// # Delivery semantics
//
// Send returns nil once the broker acknowledged the record as the client's acks setting requires.
// Dial's client uses acks=all, so the record is on every in-sync replica (how many must be in sync
// is the topic's min.insync.replicas), and is idempotent, so the client's own retries of a produce
// request never store a record twice. New requires the caller's client to use acks=all too
// (franz-go's default, with idempotence), and refuses one set to fewer acks with an error wrapping
// ErrWeakAcks, unless WithAllowWeakAcks says that weaker guarantee is wanted; Dial does the same
// when ClientConfig.Opts lowers the acks. A linger adds its delay to every Send that has no
// company.
//
// Delivery is at-least-once. When a Send's context ends before the acknowledgement, Send returns
// an error that is not permanent, but the record stays with the client, which may still deliver
// it (the client fails a whole buffered batch when the context of its first record ends, so each
// record gets a context that never ends, and one caller's cancellation cannot fail another's
// record). The caller's retry then produces the event again: consumers should deduplicate on
// ce_id. With WithLogger, the fate of such an abandoned record is logged. The same holds for a
// Send whose acknowledgement was lost, and for a dead-lettered event redriven later.
//
// No Send waits much past the client's delivery timeout, whatever its context: Dial's client
// always has one (ClientConfig.DeliveryTimeout, a minute by default); a client given to New has
// its kgo.RecordDeliveryTimeout, which franz-go leaves unset, and without one Send waits as long as
// its context lets it. The client gives up on a record at that timeout only when that is safe for
// the idempotent producer: not once a produce request holding it went out and no answer came back
// (the broker crashed, or the connection broke, meanwhile), since the broker may have stored it.
// The client then keeps that record, and those behind it on its partition, until a broker answers,
// which in an outage takes as long as the outage. Send therefore stops waiting DeliveryTimeout +
// Linger + min(DeliveryTimeout, 5 s) after it began, and returns a retryable error wrapping
// ErrNoAcknowledgement and context.DeadlineExceeded, which fanout's circuit breaker counts as a
// failure of the sink. The margin leaves room for the client's own failure, which names its cause
// (a refused login, NOT_ENOUGH_REPLICAS), to come first when there is one: the client looks at a
// record's age only when it writes a request or hears back, up to one retry backoff (at most 5 s
// with franz-go's default) after the timeout. As when a context ends, the record may still be
// delivered once a broker answers, and a retry then makes a duplicate. The records of Sends that
// gave up keep their WithMaxInFlight slots until the client is done with them; a Send that finds
// every slot held waits for one no longer than the same limit, and its record is not produced. A
// SendBatch waits as long as one Send, for the whole batch. In fanout's Async mode, where no
// request's budget bounds an attempt, this limit is what lets the retry policy, the breaker and the
// dead-letter queue act during a broker outage; a shorter retry.Policy.AttemptTimeout ends each
// attempt sooner. A Send whose context ends before the limit arms no timer for it; others take
// one from a pool, so the limit costs no allocation.
//
// Close stops new Sends, waits (WithCloseTimeout) for records already produced to be acknowledged,
// then closes the client if Dial built it; records still unacknowledged then fail, and Close (every
// call of it) says how many there were.
//
// # Performance
//
// BenchmarkProduce puts Send beside the ways people produce without it. Each pair of producers
// writes the same record to one in-process kfake broker, through clients with the same settings,
// in alternating batches within one run, and an event counts once it is acknowledged. How many
// times more events per second Send delivers, the median of 5 runs (and their range):
//
//	Send from 64 goroutines, against                                  x faster
//	a ProduceSync loop: one goroutine producing and waiting in turn   6.2 (6.16, 6.37)
//	the tutorial loop: Produce, then wait on a delivery channel       6.4 (6.29, 6.64)
//	ProduceSync from 64 goroutines, handed the finished record        0.91 (0.90, 0.93)
//	ProduceSync from 64 goroutines, building the record each time     1.12 (1.11, 1.13)
//	Send from one goroutine, against the ProduceSync loop             0.98 (0.97, 1.00)
//
// That is about 200,000 events a second from 64 goroutines against 32,000 from a loop, and
// 700,000 a second with SendBatch of 64 events. The first two lines are the gain of handing
// concurrent deliveries to one Sink: the client batches the records of concurrent Sends into
// shared produce requests, while a loop waits a whole round trip for each record. The same client
// called with ProduceSync from 64 goroutines batches in the same way, so about 1x is the expected
// result there: handed a record built once in advance it is ahead by the cost of building the
// record (the CloudEvents headers, the formatted time, the metadata headers in key order), and
// building the same record for each event it falls behind, since Send reuses the memory of
// acknowledged records (8 allocations per event against 23). From one goroutine Send takes 2%
// longer than ProduceSync of a finished record, for the same reason.
//
// The figures come from a shared machine with 2 cores that was running other builds and tests at
// the time (load average 2 to 4), with Go 1.26 and franz-go 1.22:
//
//	go test -run='^$' -bench=BenchmarkProduce -count=5 -benchtime=3s ./sink/kafkasink/
//
// The broker runs in the same process, so there is no network: a real broker's round trip makes a
// one-at-a-time loop slower still, and batching worth more.
package kafkasink
