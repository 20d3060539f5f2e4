// Package fanbridge takes in Genesys Cloud events, checks who sent them, filters them, and fans
// each one out to several sinks, retrying each sink on its own and dead-lettering what still fails,
// so that no acknowledged event is lost.
//
// This package holds what every other package shares: the [Event] model and the outcomes a
// dispatcher reports to an intake ([ErrNoMatch], [ErrDuplicate], [ErrOverloaded], [ErrClosed]).
// The work is done in the sub-packages, in the order an event meets them.
//
// # The path of an event
//
// Intake. An event arrives over HTTP, posted by an Amazon EventBridge API destination or a webhook
// sender, and is handled by an eventbridge.Handler, which you mount on your own mux. It decodes
// the EventBridge envelope around a Genesys notification (and a few simpler webhook shapes) into
// an Event: Type is the EventBridge detail-type, Topic the concrete Genesys topic, Data the
// Genesys eventBody, and the correlation id, account and region go into Metadata. Events can also
// come from the Genesys WebSocket Notification API through genesys/notifications, which decodes
// the same notification shape.
//
// Sender verification. signature.Verify wraps the handler and rejects, with the same 401 for
// every reason, requests whose credentials do not check out: the API key or Basic credentials of
// an EventBridge Connection, an HMAC of the body in a header, GitHub and OpenMessaging signatures,
// or Standard Webhooks signatures with a timestamp tolerance and a replay cache.
//
// Filtering. The filter package evaluates Amazon EventBridge event patterns (all of them at once,
// compiled into one Matcher), CEL expressions over the event, and plain Go predicates. Routes name
// a filter and the sinks that want what it selects.
//
// Fan-out and delivery. A fanout.Dispatcher matches the routes, hands the event to each chosen
// sink through that sink's own queue, concurrency limit, retry policy (package retry, the only
// place that sleeps) and circuit breaker, and writes to a dead-letter queue (package dlq: on disk
// with dlq/filedlq, or a Kafka topic with dlq/kafkadlq) what a sink could not take. In sync mode
// the HTTP answer waits until every chosen sink has the event or the DLQ does; in async mode it
// waits until the event is queued.
//
// Sinks. A sink.Sink is one method, Send(ctx, *Event) error, returning errors classified with
// retry.Permanent and retry.After. sink/kafkasink produces to Kafka with franz-go (acks from
// every in-sync replica, idempotent), sink/grpcsink calls a gRPC service (the protocol is in
// proto/fanbridge/v1), sink/memsink keeps events in memory, and your own sink proves itself with
// sink/sinktest.Run, the suite every sink of this module passes.
//
// # The delivery promise
//
// An event is acknowledged (HTTP 2xx) only when the promise is kept: in sync mode, each sink its
// routes chose has accepted it, or it is in the dead-letter queue with the reason; in async mode,
// it is queued in memory for each such sink (a crash loses the queue; see package fanout). When
// neither holds, the sender gets a 503 with Retry-After and sends it again; a retried event is
// recognised by its ID and not delivered twice to a sink that already has it.
//
// # Telemetry
//
// The intake, the verifier and the dispatcher take an OpenTelemetry MeterProvider and
// TracerProvider as options (silent by default): counters of requests, rejections by reason,
// route matches, deliveries, retries and dead letters per sink, latency histograms, queue depth
// and breaker state; a span per event and per sink attempt. A W3C traceparent on the request is
// kept in Event.Metadata and starts the event's spans; Kafka record headers and gRPC metadata
// carry the trace on, as the sink attempt's span when the dispatcher traces, so a consumer's
// spans hang under the delivery that reached it.
//
// # The service
//
// cmd/fanbridge is a ready-made service built from this API, configured by a YAML file; with no
// configuration it runs a self-contained demo. The examples directory holds smaller programs to
// copy from.
package fanbridge
