// Package grpcsink delivers fanbridge events to gRPC services, and helps consumers implement them.
//
// The wire contract is the fanbridge.v1.EventSink service (proto/fanbridge/v1/sink.proto, Go code
// in package fanbridgev1): one unary Deliver call per event, carrying every Event field.
//
//   - New(target, opts...) returns a Sink with a connection of its own: one address, a dns:///
//     name, or a comma-separated list of addresses, balanced round-robin. TLS with the system roots
//     is the default; WithTLS takes a tls.Config (a private CA, client certificates for mutual TLS);
//     plaintext happens only with WithInsecure.
//   - NewFromConn(conn, opts...) delivers over a connection the caller owns and keeps.
//   - Adapt(call, convert, opts...) delivers through a method of the caller's own generated client,
//     for services that speak their own proto.
//   - NewServer(handler) implements EventSink for a consumer: it turns each call back into a
//     *fanbridge.Event and the handler's error back into a status code.
//   - Classify and StatusOf are the two halves of the error mapping, for code of your own.
//
// Every call carries gRPC metadata: "fanbridge-event-id" (MetadataEventID, or MetadataEventIDBin
// for an id that is not printable ASCII) and W3C trace context, "traceparent" and "tracestate", as
// sink.TraceContext gives it: the span in the context of Send when there is one (fanout's attempt
// span, when its Dispatcher traces), otherwise the event's own trace metadata. A consumer's spans
// thus join the event's trace without decoding the body. A Server takes a valid traceparent (and
// its tracestate) of the call into the event's Metadata, in place of those the event was sent
// with, and into its handler's context as the remote parent, so that the handler, or a
// Dispatcher it relays to, hangs its spans under the delivery that reached it. Each call is bounded by
// WithCallTimeout (default 5 s) or the caller's deadline, whichever comes first.
//
// # Transport security
//
// New never sends in plaintext unless WithInsecure is given by name. Without a transport option it
// speaks TLS and verifies the server against the system roots, rather than failing: most consumers
// sit behind a load balancer or ingress with a publicly trusted certificate, and this default can
// only fail closed. A consumer with a private CA, or one that requires client certificates, takes
// WithTLS with RootCAs and Certificates set. WithTLS and WithInsecure together are an error.
//
// # Errors
//
// Send never retries. It returns nil when the consumer has the event, and otherwise an error that
// package retry classifies, following the gRPC status code of the answer:
//
//	code                 Send returns                         why
//	OK                   nil                                  delivered
//	AlreadyExists        nil                                  the consumer already had this event id
//	Unavailable          retryable                            server down, restarting, or unreachable
//	DeadlineExceeded     retryable                            the call timed out; it may have landed
//	ResourceExhausted    retryable, retry.After if hinted     throttled
//	  "larger than max"  retry.Permanent, unless hinted       the event is over a message size limit
//	    of an answer     retryable                            a limit refused the consumer's answer,
//	                                                          after it took the event (see below)
//	Aborted              retryable                            a conflict the server says to retry
//	Internal             retryable                            a server fault that may pass
//	Unknown              retryable                            a handler error without a status
//	  HTTP 413 or 431    retry.Permanent                      a proxy's size limit refused the request
//	Canceled             retryable, or canceled (see below)   the server, or our caller, gave up
//	InvalidArgument      retry.Permanent                      the consumer refuses this event
//	NotFound             retry.Permanent                      no such service or resource
//	PermissionDenied     retry.Permanent                      credentials lack the right
//	Unauthenticated      retry.Permanent                      no or bad credentials
//	FailedPrecondition   retry.Permanent                      the consumer's rules reject it
//	Unimplemented        retry.Permanent                      the server lacks EventSink/Deliver
//	  HTTP status        retryable                            a proxy's 404 before any gRPC server
//	OutOfRange           retry.Permanent                      the request is outside what is valid
//	DataLoss             retry.Permanent                      the server reports corruption; an
//	                                                          operator must look, the DLQ keeps it
//
// grpc-go reports a plain HTTP answer from something in front of the server (a proxy or an
// ingress with no route yet, during a rollout) with a code it maps from the HTTP status, and a
// message beginning "unexpected HTTP status code received from server": for a 404 that is
// Unimplemented, which is then retryable, as no gRPC server has answered yet. A 413 or a 431 is
// Unknown: a body or header size limit in front of the consumer (nginx's client_max_body_size is
// 1 MiB by default) refused the request, which is as large on every attempt, so it is permanent
// and, like every permanent failure, does not count against a dispatcher's breaker. Other
// statuses keep their code's class (a proxy's 429 is Unavailable, retryable).
//
// A retryable answer that carries a google.rpc.ErrorInfo detail of domain "fanbridge" and reason
// "REFUSED" (a Server sends one for a handler error marked sink.Refused) is marked sink.Refused:
// the consumer is up and refused the event, so it does not count against a dispatcher's breaker.
//
// A retryable answer that carries a google.rpc.RetryInfo detail is marked retry.After with its
// delay (a Server sends one for a handler error marked retry.After), and so is one whose trailer
// metadata holds gRPC's standard grpc-retry-pushback-ms (gRFC A6) with a non-negative number of
// milliseconds; when both come, the longer wait counts. gRFC A6 reads a negative value (or one
// that is not a number, or several values) as "do not retry": grpc-go's own retries stop there,
// but the call has already failed, and what comes next is for the dispatcher's retry policy,
// breaker and dead-letter queue to decide, so such a value asks for no wait and the code keeps
// its class.
//
// A ResourceExhausted without a wait whose message is gRPC's report of a message over its size
// limit is permanent when the request was refused: "grpc: received message larger than max" (or
// its forms after decompression) sent by a server whose MaxRecvMsgSize the event exceeds, or
// "trying to send message larger than max" from the client's own send limit
// (grpc.MaxCallSendMsgSize, by default the largest int32). The event is as large on every
// attempt. grpc-go words two refusals of the consumer's answer the same way, yet there the
// consumer took the event and answered: the client's refusal of an answer over its receive limit
// (grpc.MaxCallRecvMsgSize, default 4 MiB), and the consumer's server refusing to send an answer
// over its own send limit (grpc.MaxSendMsgSize), which it reports to the client as a status.
// Those failures are retryable, as a lost answer is, since delivery is at-least-once, and marked
// sink.Refused: the consumer is up, so they do not count against a dispatcher's breaker.
//
// A consumer's server in another language words its refusal of a request over its receive limit
// its own way, and each wording is read as grpc-go's is, in any case and with or without a
// "grpc:" prefix: gRPC core (C++, Python, Ruby, PHP) and @grpc/grpc-js say "Received message
// larger than max (N vs. M)" (grpc-js also without the dot, and "Received message that
// decompresses to a size larger than M"), grpc-java "gRPC message exceeds maximum size M: N" (or
// "Decompressed gRPC message exceeds maximum size M"), grpc-dotnet "Received message exceeds the
// maximum configured message size.". The client is grpc-go, so such a refusal is always a
// server's refusal of the request: permanent, and not counted against a dispatcher's breaker. A
// consumer's own handler that refuses an event as too large should answer a permanent code
// (InvalidArgument, FailedPrecondition or OutOfRange) rather than ResourceExhausted, which is
// retried unless its message is one of these.
//
// A send refusal is the client's own, permanent, when the limit it names ("(N vs. M)") is the
// client's send limit among the options seen (see below). grpc-go sends the request headers
// before it encodes the request and checks its size, so a server that answers from the headers
// alone (a rate limiter in grpc.InTapHandle, an unknown method, an authenticating proxy) may have
// sent its status by then, yet the call returns the client's refusal. Any other send refusal is
// the client's when nothing came back: Send and Adapt ask for the response headers (grpc.Header)
// as for the trailers, and a status a server sends comes after headers or in a Trailers-Only
// response, which grpc-go takes only with a gRPC content-type, kept in the header or trailer
// metadata; a status the client raises has neither. A send refusal that came from the server is
// its refusal to send its answer, retryable, unless it carries status details: grpc-go's own
// refusals have none, and a Server relaying a refusal adds one (see NewServer), so such a status
// relays a refusal of a request, permanent. Neither the codec matters nor the size the refusal
// names. A consumer's server whose send limit is the client's (both are the largest int32 by
// default) is taken for the client: its refusal of an answer, over 2 GiB then, dead-letters an
// event the consumer took.
//
// A receive refusal cannot be told by how the status was framed (a server behind
// grpc.Server.ServeHTTP, or a proxy, sends headers before a refusal as before an answer): Send
// and Adapt go by what they know of the call's options and its request. A receive refusal is the
// client's own, retryable, only when the limit it names is the client's receive limit (M below,
// but for the form "... allowed on current machine", whose limit is the machine's), the message
// refused cannot be the request:
//
//	the refusal names                     the client refused the answer when
//	the size on the wire ("(N vs. M)")    N is more than the request's encoded size (proto.Size)
//	                                      could be on the wire: a quarter and 256 bytes more, for
//	                                      what a compressor adds to data it cannot shrink
//	a limit after decompression           the request's encoded size is within the limit M, as the
//	  ("... after decompression ... M")   request decompresses to its encoded size
//
// and nothing shows that a server sent the status: it carries no status details (grpc-go's own
// refusals have none, and a Server relaying a refusal adds one) and did not come in a
// Trailers-Only response (whose content-type grpc-go keeps among the trailers). Anything else is
// the server's refusal of the request, permanent: a limit other than the client's, an answer no
// larger than the request, a message in another form, a request sent through a codec other than
// protobuf (grpc.ForceCodec, grpc.ForceCodecV2 or a content subtype other than "proto" among the
// options seen, or a request of Adapt that is not a proto.Message). In doubt the event is
// dead-lettered: if the consumer took it after all, a redrive only brings a duplicate it knows by
// its id, while retrying a request no attempt can deliver would go on until the event expires,
// counted against the breaker. Classify alone sees only the status, and takes every size refusal
// for a refusal of the request, permanent: a receive refusal as the server's, a send refusal as
// the client's.
//
// The options seen are those given with WithCallOptions and, on the connection New makes, its
// default call options (grpc.WithDefaultCallOptions given with WithDialOptions), which gRPC shows
// only to interceptors: New adds one, innermost, that reads every call's options and changes
// nothing. The client's receive limit is the last grpc.MaxCallRecvMsgSize among them, or grpc-go's
// default of 4 MiB; its send limit the last grpc.MaxCallSendMsgSize, or grpc-go's default, the
// largest int32. Not seen are the default call options of a connection of the caller's
// (NewFromConn, Adapt), and a service config's maxResponseMessageBytes and
// maxRequestMessageBytes, which lower the limits. The client's refusal to send a request over a
// send limit set there is told by the content-type alone: when a server answered from the headers
// first, it reads as that server's refusal of its answer, and is retried until the event expires.
// A refusal of an answer over a receive limit set there names a limit that is not the one seen,
// and is taken for the server's refusal of the request: the event is dead-lettered though the
// consumer took it, and a redrive brings it a duplicate. A codec set there is taken for protobuf;
// a server's refusal of a request it made larger is still told by the server's limit, except when
// that is the client's too (both are 4 MiB by default) and the server sent headers before its
// status (ServeHTTP, a proxy): then it reads as the client's refusal of an answer, and is retried
// until the event expires. Give such options with WithCallOptions, where they are seen.
//
// When the caller's own context ends a call (its cancellation, or its deadline when that was sooner
// than the call timeout), the error wraps the context's error as well as the status:
// context.Canceled is classified retry.ClassCanceled, never a reason to dead-letter, and a deadline
// is retryable. A context that is already done when Send is called fails at once with its error,
// and nothing is sent. A connection failure, including a TLS handshake that fails (an unknown
// server certificate, a missing or refused client certificate under mutual TLS, or TLS spoken to a
// plaintext server), surfaces from gRPC as Unavailable and is therefore retryable: a certificate
// rotation or a restarted server cures it, and when the retry budget runs out the event goes to the
// dead-letter queue. Send on a closed Sink returns an error wrapping sink.ErrClosed; Send of a nil
// event returns ErrNilEvent marked permanent, and Send of an event with a text field that is not
// valid UTF-8 (which proto3 cannot encode) returns ErrInvalidEvent marked permanent, without a
// call. CodeClass gives the table as a function.
//
// On the consumer's side NewServer (and StatusOf) map a handler's error back: nil and
// fanbridge.ErrNoMatch to OK, fanbridge.ErrDuplicate to AlreadyExists, retry.Permanent to
// FailedPrecondition, retry.After to ResourceExhausted with RetryInfo, a context error to Canceled
// or DeadlineExceeded, an explicit gRPC status to itself (its own message and details; but as a
// status cannot say whose limit refused a message, gRPC's report of one over a size limit goes
// with the error's text when it is a grpcsink.Sink's refusal of an answer its consumer took, over
// the Sink's receive limit or the consumer's server's send limit, and otherwise, when it has no
// details, with a google.rpc.ErrorInfo detail that shows it relayed; see NewServer), and anything
// else to Unavailable. A sink.Refused mark on an error whose answer is retryable adds a
// google.rpc.ErrorInfo detail (domain "fanbridge", reason "REFUSED"), which Classify, Send and
// Adapt turn back into sink.Refused. So a classification made in the consumer survives the trip,
// also through a consumer that relays to another one with a grpcsink.Sink of its own. The status
// message is the error's text, or a status's own message, with what is not valid UTF-8 replaced
// by U+FFFD, without which grpc-go could not send the details that carry the wait and the mark.
//
// # Concurrency
//
// A Sink and an adapter are safe for concurrent use; calls share one HTTP/2 connection per address
// and are not serialised. Close waits for the Sends in flight, then closes the connection New made;
// it never closes a connection given to NewFromConn. A Server calls its handler concurrently, once
// per call.
//
// Close may be called more than once, and from several goroutines at once (a deferred Close and a
// shutdown path, say): the first call closes the Sink, and every call, the first or not, returns
// only once the Sends in flight have returned and the connection is closed, with the first call's
// result, so that no caller goes on while an event is still being delivered. A Send that begins
// once a Close has begun fails at once with an error wrapping sink.ErrClosed. Close waits as long
// as the Sends in flight take, each bounded by its own context and the call timeout;
// CloseContext bounds one caller's wait by its context instead: when the context ends first it
// returns an error wrapping the context's error, and the close carries on.
//
// # Delivery semantics
//
// Delivery is at-least-once. A call that timed out or lost its answer may have reached the
// consumer, and the dispatcher's retry or a redrive from the dead-letter queue sends the same event
// again, with the same id. A consumer should therefore be idempotent on Event.id (it also arrives as
// the "fanbridge-event-id" header): when it sees an id it already processed it answers OK, or
// AlreadyExists, which the Sink also counts as delivered (a Server handler returns
// fanbridge.ErrDuplicate for that). Calls for different events are independent and may arrive in
// any order, and with several addresses at different servers.
//
// # Performance
//
// Send costs what the same delivery written by hand costs: the request built from the event and
// one call through the generated client, with the event id and trace context as metadata. On top
// of that it checks that the event's text can be encoded (so that a bad event fails permanently,
// without a call) and counts the calls in flight for Close: about 0.25 to 0.3 µs per call on the
// client, with as many allocations as the hand-written call (9 against 9, or 13 against 13 with a
// timer), counting the copies of the call's header and trailer metadata that grpc-go makes for
// grpc.Header and grpc.Trailer, which Send reads for the error classification. The header's
// copy, three allocations a call on a real connection (testing.AllocsPerRun, client and server
// together), came last, with the interceptor New adds to read each call's options, which
// allocates nothing; the timings below were measured before Send read the header or the
// trailer, four allocations fewer, and before the interceptor, and have not been measured since.
//
// BenchmarkOverhead measures the difference end to end on the least favourable path: a loopback
// connection to an in-process consumer that does nothing, where a call takes about 55 µs alone and
// 27 µs per call with 8 at once. The two sides alternate in short batches within one run. Wall
// time overhead of Send, the median of 5 runs (and their range):
//
//	how each call is bounded                              1 caller             8 callers
//	a deadline of the caller (fanout's Sync mode)         +0.0% (-2.4, +3.4)   +0.5% (+0.2, +2.7)
//	no caller deadline: Send's call timeout, and the      -0.2% (-2.1, +2.9)   -0.7% (-2.3, +2.0)
//	  hand-written call under the same context.WithTimeout
//	no caller deadline, WithCallTimeout(0), no bound      -1.7% (-5.3, +1.8)   +1.4% (-0.1, +2.2)
//
// Against a hand-written call with no deadline at all, Send with its call timeout takes 7 to 9%
// longer (+6.8% and +8.7%; single runs +4% to +12%). That is what grpc-go spends on any deadline
// (a grpc-timeout header, and timers on both ends), not Send's own work; without it a consumer
// that never answers holds the call for ever. WithCallTimeout(0) removes the bound and its cost
// together. Over a real network, where a call takes milliseconds, none of these differences shows.
//
// The figures come from a shared machine with 2 cores that was running other builds and tests at
// the time (load average 2 to 4), with Go 1.26 and grpc-go 1.85:
//
//	go test -run='^$' -bench='BenchmarkOverhead|BenchmarkClientSide' -count=5 -benchtime=3s ./sink/grpcsink/
//
// BenchmarkClientSide measures the client's own work alone (extra-ns/op), over a connection that
// answers at once.
package grpcsink
