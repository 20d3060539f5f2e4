// Package lossless has no code of its own: its tests measure fanbridge's central promise, that no
// acknowledged event is lost, end to end.
//
// They post real Genesys Cloud envelopes, as an Amazon EventBridge API destination does (an API
// key header; retries on 429, 5xx, timeouts and broken connections, honouring Retry-After), to an
// httptest.Server running signature.Verify, eventbridge.Handler and a fanout.Dispatcher that fans
// out to a kafkasink.Sink on an in-process kfake cluster and to two grpcsink.Sinks talking to
// grpcsink.NewServer consumers on 127.0.0.1, with a filedlq dead-letter queue. While the events
// flow, the consumers fail at random and reject a fixed subset of events, one gRPC server is
// stopped and restarted on its address, and the Kafka broker answers some produce requests with
// retriable errors and stalls once.
//
// Afterwards the tests read back what every destination really holds (the Kafka topics with a
// franz-go consumer, the consumers' records, the dead-letter files with their Reader) and
// reconcile: every event answered 2xx is on each sink its routes name or in the dead-letter queue
// for that sink, once; every other answer was one the sender retries; a sink holds an event twice
// only when a delivery to it really failed. The counts are printed with -v.
//
// The tests come in three sizes (events per mode in TestLossless; TestLosslessKafkaTimeouts and
// TestLosslessShutdown in brackets); -events N sets every scenario's size instead:
//
//	go test -race -short ./internal/lossless                   quick: 1,000 (1,000 and 1,000)
//	go test -race ./internal/lossless                          CI size: 10,000 (5,000 and 3,000)
//	go test -race ./internal/lossless -run Lossless -long -v   long: 50,000 (20,000 and 20,000)
package lossless
