// Command fanbridge is the ready-made fanbridge service: it takes Genesys Cloud events in over
// HTTP (Amazon EventBridge API destinations, signed webhooks) and, without AWS, from Genesys
// Cloud's WebSocket Notification API, checks who sent them, routes them with EventBridge
// patterns or CEL expressions, and delivers them to Kafka topics and gRPC consumers, retrying
// each sink on its own and dead-lettering what still fails. It is built only from the library's
// public packages. README.md in this directory is the full manual.
//
// Usage:
//
//	fanbridge [-config FILE] [-listen ADDR]        run the service (the demo without -config)
//	fanbridge validate -config FILE                check a configuration
//	fanbridge dlq list|show|redrive [flags]        inspect and redrive the dead-letter queue
//	fanbridge pattern test [-cel] PATTERN EVENT    does a pattern or CEL expression match?
//	fanbridge provision [flags]                    set up the Genesys Cloud EventBridge integration
//	fanbridge demo send|sample|config              demo helpers
//	fanbridge version                              print the version
//
// Exit codes: 0 success (and a clean shutdown), 1 failure (an invalid configuration, a pattern
// that does not match, a dlq directory that holds no queue, a redrive -id that names no entry, a
// shutdown that lost or could not close something), 2 usage errors (an unknown command, a
// missing or extra argument, a service flag given an empty value, and for pattern test a bad pattern, expression or event, or a file
// or standard input larger than 16 MiB).
//
// # Demo
//
// With no -config, fanbridge starts an in-process Kafka broker (kfake) on 127.0.0.1:9092, an
// in-process gRPC consumer, a file dead-letter queue in a temporary directory (removed when the
// demo stops; use -dlq-dir to keep it) and an intake at http://127.0.0.1:8080/events protected
// by a generated API key (a taken port falls back to a free one), and prints a banner with the
// key, the addresses, a curl command that posts a Genesys sample, and a kcat command that reads
// the topic. Each event is then logged with its routes and each sink's outcome, and each Kafka
// record with its topic, partition and offset.
// `go run ./cmd/fanbridge` is all it takes. An empty -config (-config "$CFG" with CFG unset) is
// a usage error, never the demo.
//
// # Configuration
//
// A YAML file declares the listen address; intake paths with their verifiers (api_key, basic,
// bearer, hmac, github, open_messaging, standard_webhooks); the WebSocket Notification API
// source (notifications: region, OAuth client, concrete topics), whose events follow the same
// routes; sinks (kafka with brokers, TLS, SASL,
// a topic, topics by type or a topic template, and a key; grpc with targets and TLS), each with
// its retry policy, concurrency, queue and circuit breaker; routes (a name, an EventBridge pattern
// or a CEL expression or all, and sink names) and the cost and time limits of CEL expressions;
// a dead-letter queue (a directory or a Kafka topic); the dispatch mode; logging, tracing,
// health, shutdown and reload settings. Any value may be ${ENV} or ${ENV:-default}, which is how
// secrets are given. Unknown keys are errors, and every error names its key path; the process
// does not start on an invalid file. fanbridge.example.yaml lists every key with its default.
//
// # Delivery semantics
//
// In sync mode (the default) a 200 means every matched sink acknowledged the event or the
// dead-letter queue holds it for that sink: nothing acknowledged is lost, and delivery is at
// least once. In async mode a 200 means every matched sink's queue accepted it in memory: a
// graceful shutdown still delivers or dead-letters it, a crash loses what is queued.
//
// # Signals
//
// SIGHUP reloads the configuration file (as does a change of its content with reload.watch):
// routes, sinks, intake paths and verifiers are swapped without dropping a request; a file with
// a mistake is refused with the key named in the log, and the running configuration stays. A
// file is applied once two reads agree on its text (100 ms apart for SIGHUP, reload.interval
// for the watch), so one written in place without a longer pause is not applied half written;
// to be sure, write the file elsewhere and rename it into place.
// SIGTERM and SIGINT shut down gracefully: /readyz fails (and, for shutdown.ready_delay,
// requests are still taken while a load balancer catches up), new requests are refused (503, or a
// connection closed without an answer), requests in flight finish (shutdown.http_timeout),
// queued deliveries drain (shutdown.drain_timeout) and what is left is dead-lettered; the exit
// code is 0 when nothing was lost. A second signal exits at once.
//
// # Endpoints
//
// POST on each intake path; GET /healthz (liveness), GET /readyz (ready only when every sink
// and the dead-letter queue answer their probe, and the WebSocket source has not stopped; it
// names the sinks that are down, the log says why), GET /metrics (Prometheus). With listen.admin_address set, /metrics is served on that
// address only, and /healthz and /readyz on both. Each intake path deduplicates events on its
// own, so that a sender trusted on one path cannot suppress another's events. A traceparent header
// starts spans in the sender's trace (per request, per event and per sink attempt) and travels
// on as a Kafka record header and as gRPC call metadata.
package main
