// Package eventbridge takes events in over HTTP: a Handler decodes each POST into a
// *fanbridge.Event, hands it to a Dispatcher (usually a fanout.Dispatcher), and answers the sender
// so that it retries exactly when the event is not safe yet.
//
//	d, err := fanout.New(fanout.Config{...})   // or any other eventbridge.Dispatcher
//	...
//	h, err := eventbridge.NewHandler(d,
//		eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/<org-id>/"))
//	...
//	v := signature.Must(signature.APIKey("X-Api-Key", apiKey))
//	mux.Handle("POST /events", signature.Verify(v)(h))
//
// With "POST " in the pattern, net/http answers any other method itself, before the credentials
// are checked: 405 with Allow: POST and a text/plain body. Mounted as "/events", the request is
// verified first (401 without credentials) and the Handler answers 405 in JSON (see HTTP answers).
//
// The decoders are exported too (Decode, DecodeNotification, Decoder), so that the WebSocket
// source in genesys/notifications and any other intake turn the same bytes into the same events
// (but for the IDs of the events nothing tells apart: see Event IDs).
//
// # Formats
//
// A body must be one JSON object, in UTF-8, nested at most MaxDepth (64) deep. The format is
// detected from its top-level keys, in this order (a Content-Type of
// application/cloudevents+json selects CloudEvents directly):
//
//   - EventBridge ("detail-type", or "detail" without "specversion"): the envelope an Amazon EventBridge API destination
//     POSTs, with a Genesys notification as detail. ID = id, Type = detail-type (the topic
//     template rules match on), Topic = detail.topicName (the concrete topic), Source = source,
//     Data = detail.eventBody when it is an object, else the whole detail: any EventBridge event
//     decodes. A detail with both topicName and eventBody is a Genesys notification, and those
//     fields, timestamp and metadata.CorrelationId must have the types Genesys gives them; in
//     any other detail they are used only when they do), Metadata: correlation-id =
//     detail.metadata.CorrelationId, account, region.
//     id, detail-type, source and detail are required. Time is the envelope's time; when
//     detail.timestamp falls within the same second it is used instead (EventBridge truncates time
//     to seconds, Genesys' timestamp has milliseconds); with no time, detail.timestamp; with
//     neither, detail.eventBody.eventTime. When detail-type and topicName disagree (the
//     negative-test sample), the event still decodes: Type follows detail-type, because that is
//     what the EventBridge rule matched, and Topic follows topicName. Nothing is added to Metadata
//     for it; TopicTemplate(e.Topic) != e.Type detects it where it matters.
//   - CloudEvents ("specversion"): CloudEvents 1.0 in structured JSON mode. specversion must be
//     "1.0"; id, source and type are required. ID = id, Type = type, Source = source, Topic =
//     subject, Time = time, Data = data; datacontenttype and dataschema go to Metadata under the
//     same names, and every extension attribute (lower-case a-z0-9 names of at most 64
//     characters, at most 64 extensions; string, number or boolean values) too, numbers and
//     booleans as their JSON text, passed on as sent (a number that is not a 32-bit integer, an
//     empty subject or dataschema, a source or dataschema that is not a URI are not refused);
//     the extensions account, region, format and database64 are ignored, as only envelope facts and the decoder set those keys; the
//     traceparent and tracestate extensions are checked as trace context (see below).
//     data_base64 is decoded: when the content type is JSON (or absent) and the bytes are valid
//     JSON they become Data; otherwise Data is the base64 text as a JSON string and
//     Metadata[MetaDataBase64] is "true". Both data and data_base64 is an error. Batches
//     (application/cloudevents-batch+json) are refused. The HTTP binding's binary content mode
//     (a request with a ce-specversion header and a Content-Type not application/cloudevents*:
//     attributes in ce-* headers, data in the body) is decoded with
//     WithCloudEventsBinaryMode, as the same event in structured mode (see
//     Decoder.DecodeCloudEventsBinary; Raw is then that structured rendering), and refused 415
//     without it, so that its body is never read as another format.
//   - Notification ("topicName" or "eventBody"): a bare Genesys notification as the WebSocket
//     Notification API sends it. topicName and eventBody are required. Topic = topicName, Type =
//     TopicTemplate(topicName), Data = eventBody, correlation-id from metadata.CorrelationId, Time
//     = timestamp when present, else eventBody.eventTime (epoch milliseconds or RFC 3339; see
//     EventTime). There is no id (see Event IDs): what tells notifications apart is
//     metadata.CorrelationId, which every notification of the WebSocket API carries, and, in one
//     without it, timestamp. When the CorrelationId is there and not empty, ID is derived from the
//     content: the first 32 hex digits of the SHA-256 of topicName and metadata.CorrelationId, each
//     preceded by its length as 4 big-endian bytes, then the eventBody bytes; the timestamp is not
//     part of it. Without a CorrelationId (absent, null or empty) but with a timestamp, ID is
//     derived the same way from topicName, an empty CorrelationId and the timestamp as sent (the
//     JSON string, quotes and escapes included), then eventBody. A redelivery of the same message
//     gets the same ID and deduplication works; a body that repeats an earlier one (a user's
//     conversation summary going back to one active call) comes with another CorrelationId or
//     timestamp, so distinct events do not collide. Heartbeats (topic "channel.metadata") decode as
//     events of that type; IsHeartbeat and IsSocketClosing let a WebSocket reader drop or act on
//     them.
//   - Webhook ("event"): {"event","data","metadata"}. Type = event, Data = data (any JSON value,
//     required). There is no id (see Event IDs): what tells webhooks apart is the metadata
//     members correlationId (any case), timestamp and time, whatever their type, but for null and
//     the empty string; when there is one, ID is derived as for notifications from event, those
//     members' keys and values as sent (in key order), and data. The
//     string values of metadata go to Metadata (other types are skipped), except that "source"
//     becomes Source, an RFC 3339 "timestamp" or "time" becomes Time, "correlationId" (any case)
//     becomes correlation-id, and the keys account, region, format, database64 and correlation-id
//     are ignored: only decoders set them; traceparent and tracestate are checked as trace
//     context (see below). A metadata key that differs from source, timestamp or time only in case
//     is refused (see the case rule below).
//   - Webhook with attributes ("eventType"): {"id","eventType","timestamp","source","attributes"}.
//     id, eventType and attributes are required; Data = attributes; timestamp is RFC 3339 or epoch
//     milliseconds.
//   - Open Messaging ("channel", an object, with "direction"): a Genesys Cloud Open Messaging
//     message as Genesys POSTs it to an integration's outbound webhook, signed with
//     X-Hub-Signature-256 (signature.OpenMessaging), in Genesys' Outbound Open NormalizedMessage
//     format: {"id","channel":{"platform","type","to","from","time",...},"type","text",
//     "direction",...}. Type = type ("Text", "Structured", "Receipt", "Event", ... as sent; a
//     string, required), Data = the whole message (without the whitespace around it), Time =
//     channel.time when it is an RFC 3339 string (otherwise none: the message is Genesys' to
//     shape). The message's id is not the event's (see Event IDs): a receipt carries the id of
//     the message it is about, so ID is derived from the whole message, the first 32 hex digits
//     of the SHA-256 of the body without the whitespace around it. A redelivery is the same bytes
//     and gets the same ID; two messages differ in their id or their time. There is no Source: a
//     sink that needs one takes its default (kafkasink: "urn:fanbridge:open-messaging").
//   - Standard Webhooks ("type" with "data"): the payload the Standard Webhooks specification
//     recommends, {"type","timestamp","data"}, also with an "id" beside them, as many senders'
//     events have (a Stripe event: {"id","object","type","created","data",...}). Type = type (a
//     string, required), Data = data (any JSON value, required), Time = timestamp (an RFC 3339
//     string, optional; when the event happened). ID = id, as a CloudEvent's (unescaped, as sent),
//     when it is a string that is not empty and keeps the bounds of every string below: it names
//     the event, and the sender's retry repeats it, so it is the ID whether a webhook-id names the
//     message or not (rule 1 of Event IDs is for payloads without one, and Decode and the Handler
//     agree). A top-level id must therefore be unique per event: one that names something else (a
//     user, an order) makes all the events about it one, and all but the first are answered
//     "duplicate". Any other id (empty, over 1024 bytes, with a control or bidirectional formatting
//     character, or not a string) is the sender's data like any other member, and is not refused.
//     Without such an id the payload has none (see Event IDs): the sender's webhook-id names the
//     message, and what tells events apart in the body is its timestamp or id (of any value but
//     null and ""); when either is there, ID is derived, as for Open Messaging, from the whole
//     payload: the first 32 hex digits of the SHA-256 of the body without the whitespace around it.
//     Two payloads that differ anywhere, in a member the decoder does not read too, are two events;
//     a redelivery of the same bytes is a duplicate, and one re-serialised in between (another key
//     order or spacing inside) is delivered again. There is no Source, a top-level "source" being
//     the sender's data (kafkasink's default: "urn:fanbridge:standard-webhooks").
//
// A body with the keys of several formats is the first of them in the order above:
// {"event","data","type"} is a webhook, {"channel","direction","type","data"} an Open Messaging
// message. The formats added later come later, so that none takes a body an earlier one decoded.
//
// Every event gets Metadata[fanbridge.MetaFormat] (the Format name) and Raw, the body exactly as
// received (a CloudEvent in binary mode: its structured rendering, a new slice). Raw and Data are not copies: Data is a sub-slice of Raw, so the body must not be
// reused or pooled by whoever owns it while the event lives (the Handler never reuses it).
//
// Strings copied into the event (ID, Type, Topic, Source, Metadata values) must hold at most 1024
// bytes (trace context from the headers too: a traceparent is kept to 55, a tracestate to 512),
// Metadata keys from a webhook's metadata 1 to 256 bytes, and neither may hold control characters
// (C0, DEL or C1) nor bidirectional formatting characters (which reorder the text around them
// when shown), nor a \u escape of an unpaired UTF-16 surrogate (which would decode to U+FFFD,
// making "\uDEAD" and "\uDEAE" one ID). A key the decoder reads must appear only once in its
// object (also when spelled with escapes, like "i\u0064"): a duplicate is rejected rather than resolved,
// because a proxy in front that reads the first copy and a decoder that reads the last would
// disagree about what was checked. Duplicate keys inside Data are the sender's business and pass
// through unchanged. JSON null counts as an absent member, also when the format is picked. Keys
// match exactly (case-sensitive). As encoding/json's struct decoding matches them ignoring case
// (Unicode folding: "ſource" is "source" to it) and keeps the last, a key that differs only in
// case from one the decoder reads by name is refused too, whether that key is there or not, in
// the objects whose shape is the format's (an envelope, a CloudEvent, a webhook and its metadata,
// a notification and its metadata, an Open Messaging message (channel, direction, type) and its
// channel (time), a Standard Webhooks payload, and an envelope's detail holding both topicName
// and eventBody, in any case and null or not, which is a Genesys notification); in a generic
// event's detail such keys are the sender's data, and the detail's topicName, eventBody,
// metadata or timestamp, or its metadata's CorrelationId, is not read at all when a case variant
// of it is there.
//
// Decoding validates the whole body in one pass and extracts only the fields above; eventBody is
// never materialised. That is what makes the Handler several times faster than code that
// unmarshals into map[string]any, with a small fixed number of allocations per event.
//
// # Event IDs
//
// The formats that carry no id of their own (notification, webhook, Open Messaging, and a
// Standard Webhooks payload without an id that may be an ID) get an ID by the first of these
// rules that applies, always 32 lower-case hex digits:
//
//  1. The request was verified by a signature.Verifier that names the sender's message id
//     (signature.Identity.MessageID in the request's context, see signature.IdentityFrom): the
//     Standard Webhooks webhook-id, which a sender repeats on each retry of a message and never
//     gives to another. ID is then the first 32 hex digits of the SHA-256 of "webhook-id" and the
//     message id, each preceded by its length as 4 big-endian bytes: the sender's retry is a
//     duplicate, and two messages are two events, whatever their bodies.
//  2. The body holds something that tells it from another event with the same content (named with
//     each format above): ID is derived from the content as described there, so that a
//     redelivery gets the same ID and deduplication works.
//  3. Nothing tells a redelivery from a new event with the same content (a presence going
//     AVAILABLE, AWAY and AVAILABLE again, posted with no metadata), and taking the third for a
//     duplicate of the first would acknowledge it and lose it. ID is then 128 random bits, unique
//     to the request: such an event is delivered at least once, and a sender's retry of it is
//     delivered again. To have retries deduplicated, send a correlationId or a timestamp in a
//     webhook's metadata (a CorrelationId in a notification's metadata or a timestamp in the
//     notification, an id or a timestamp in a Standard Webhooks payload), or sign with Standard
//     Webhooks. An Open Messaging message always has something: the whole of it.
//
// Decode, DecodeNotification and Decoder.Decode have no request, so rule 1 is the Handler's
// alone; they decode the same bytes to the same ID, except under rule 3.
//
// # HTTP answers
//
//	situation                                              status  body
//	Dispatch returned nil (delivered or dead-lettered)      200     {"status":"delivered","id":"..."}
//	the same from a queuing Dispatcher (see below)          200     {"status":"queued","id":"..."}
//	Dispatch returned fanbridge.ErrNoMatch                  200*    {"status":"ignored"}
//	Dispatch returned fanbridge.ErrDuplicate                200     {"status":"duplicate"}
//	method other than POST                                  405     error, Allow: POST
//	body over the limit (WithMaxBodySize)                   413     error, Connection: close
//	Content-Type not JSON / CloudEvents JSON, or non-UTF-8  415     error (any type in binary mode)
//	Content-Type sent more than once                        415     error
//	CloudEvents binary mode, not enabled (ce-specversion)   415     error
//	body unreadable, not JSON, unknown format, bad field    400     error
//	Source or account not allowed                           403     error
//	any other Dispatch error: overload, shutdown, failure   503     error with id, Retry-After
//	body too slow for the server's ReadTimeout              503     error, Retry-After, Connection: close
//
// (*) WithIgnoredStatus picks another 2xx; 204 has no body. Error bodies are
// {"error":"...","id":"..."}, where id is there only for 503 (the event was decoded). They name
// what is wrong (a field, an offset) and never echo the body, a header value or the
// Dispatcher's error text, which can name internal hosts. A missing Content-Type is taken as JSON:
// some senders leave it out, and the body is validated as JSON anyway. Amazon EventBridge does
// not retry 400, 403, 405, 413 and 415, so none of these is ever used for a condition that could
// heal; it retries 503 for up to 24 hours, honouring Retry-After. Connection: close is for
// HTTP/1.x, whose connection then closes once the rest of the body came or two seconds passed,
// whichever is first (a ResponseWriter that does not unwrap to the server's, such as
// http.TimeoutHandler's, leaves only the server's ReadTimeout); over HTTP/2 the request's stream
// alone is reset, and the connection stays for other requests. The 405 and 415 answers leave a
// body no verifier read in the same way.
//
// Retry-After is the wait the Dispatcher asked for with retry.After, or WithRetryAfter's default
// (1 s), rounded up to whole seconds.
//
// A queuing Dispatcher is one whose nil means the event is only queued in memory (an Async
// fanout.Dispatcher): one that implements Queuer and reports true, or any Dispatcher when the
// Handler is built with WithQueuingDispatcher. Its nil is answered "queued" and counted with the
// outcome "queued", never "delivered".
//
// # Options
//
//	WithMaxBodySize(n)            260 KiB  larger bodies: 413; behind signature.Verify, raise
//	                                       signature.WithMaxBodyBytes to n too (Verify reads
//	                                       the body first, with its own 260 KiB limit)
//	WithAllowedSources(s...)      any      exact, or prefix when ending in "/" or "*"; else 403
//	WithAllowedAccounts(a...)     any      EventBridge account must be listed; else 403
//	WithIgnoredStatus(code)       200      answer for ErrNoMatch (2xx only)
//	WithQueuingDispatcher()       off      nil from Dispatch is answered "queued"; on by itself
//	                                       for a Dispatcher whose Queues() reports true
//	WithRetryAfter(d)             1 s      Retry-After when the error carries none
//	WithDispatchTimeout(d)        4 s      deadline of the Dispatch context
//	WithFormats(f...)             all      formats the Handler accepts
//	WithLogger(l)                 silent   Debug: rejections; Warn: failed dispatches
//	WithMeterProvider(mp)         none     requests, rejected{reason}, dispatched{outcome}, duration
//	WithMetricAttributes(kv...)   none     attributes on every measurement (one Handler per path)
//	WithTracerProvider(tp)        none     one server span per request, child of traceparent
//	                                       (a body's trace context is linked); a rejection
//	                                       sets fanbridge.rejected.reason, and an error
//	                                       status only with a 5xx answer
//
// Source and account checks filter on what the body claims; they keep misrouted traffic out but
// do not authenticate. Authenticate with signature.Verify in front of the Handler: when it has
// read the body already, r.Body offers a Bytes() []byte method, and the Handler uses those bytes
// instead of reading or copying again. Verify refuses a body over its own limit
// (signature.WithMaxBodyBytes, 260 KiB by default) before the Handler sees it, so a larger
// WithMaxBodySize needs the same limit given to Verify.
//
// The memory the Handler holds for a body follows the bytes that arrive, never the Content-Length,
// which is only the client's claim: an event of up to 16 KiB is read straight into one slice of its
// size, and a larger body is collected in pooled 16 KiB chunks as it arrives and copied into one
// slice of its exact size once complete. A client that announces a large body and sends little
// holds little memory; set the http.Server's ReadTimeout to bound how long it can hold the
// connection.
//
// Valid W3C traceparent and tracestate request headers are copied to
// Metadata[fanbridge.MetaTraceparent] and Metadata[fanbridge.MetaTracestate], replacing the trace
// context of the body (webhook metadata or CloudEvents extensions of the same names), so sinks can
// carry the sender's trace on. Trace context from headers and bodies alike is checked against the
// W3C Trace Context grammar before it reaches an event, so it is printable ASCII that fits a Kafka
// header or gRPC metadata:
//   - traceparent: "vv-<32 hex>-<16 hex>-<2 hex>" in lower case, ids not all zeros, version not ff.
//     Version 00 is exactly 55 characters; a later version may go on with "-" and more fields,
//     which are dropped: the first 55 characters are kept. Anything else is dropped, and its
//     tracestate with it.
//   - tracestate: kept only beside a valid traceparent, and only when it is a valid list: at most
//     512 characters and 32 members; each member key=value with a W3C key (a lower-case letter
//     then up to 255 of a-z 0-9 _ - * /, or tenant@system with a tenant of up to 241 and a system
//     of up to 14 such characters, the system starting with a letter) and a value of up to 256
//     printable characters other than "," and "="; no key twice; spaces around members and empty
//     members allowed, tabs not. It is kept as its members joined by commas, without the empty
//     ones and the spaces: the list OpenTelemetry reads, so that spans and sinks carry the same.
//     A version 00 traceparent keeps only the sampled and random flags (the reserved bits are
//     cleared).
//
// # Errors
//
// Decoding errors wrap exactly one of ErrMalformed (not one valid JSON document, invalid UTF-8, too
// deep), ErrUnknownFormat (valid JSON, but no accepted envelope), ErrInvalidField (a known
// envelope with a missing, mistyped, duplicated or out-of-bounds field) and
// ErrUnsupportedMediaType; test them with errors.Is. NewHandler and NewDecoder return errors
// wrapping ErrInvalidConfig, all problems at once. Trace context that fails its checks is not an
// error: it is left out of the event, which is decoded and dispatched as usual.
//
// # Concurrency
//
// Handler and Decoder are immutable after construction and safe for concurrent use; the package
// functions are too. Each request is served on its own goroutine by net/http; the Handler starts no
// goroutines of its own. The Dispatcher is called once per accepted request, concurrently for
// concurrent requests.
//
// # Delivery semantics
//
// The Handler answers 2xx only when Dispatch returned nil (every matching sink has the event, or
// it is durably dead-lettered; from a queuing Dispatcher, answered "queued": it is held in
// memory, only as safe as that Dispatcher keeps it), fanbridge.ErrNoMatch (nobody wants it) or
// fanbridge.ErrDuplicate (it was accepted before). Any other outcome, including the dispatch
// budget running out, is 503 with Retry-After, so the sender, which delivers at least once,
// tries again: EventBridge for up to 24 hours. Requests refused before dispatch (400, 403, 405,
// 413, 415) are never retried by EventBridge, and are used only for requests no retry could fix.
// An event whose ID is random (rule 3 of Event IDs) is never taken for a duplicate: the sender's
// retry of it is delivered again.
//
// Dispatch runs with a context that carries the request's values (the trace span) and a deadline
// of WithDispatchTimeout (4 s, under EventBridge's 5 s timeout) but not the request's
// cancellation: a sender hanging up does not stop a fan-out halfway, which would leave some sinks
// with the event and force a retry to deliver it again.
package eventbridge
