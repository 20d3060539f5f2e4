// Package dlq keeps what could not be delivered: the Queue interface, Entry, inspection (Reader)
// and redrive.
//
// A dispatcher builds one Entry per event and sink that failed, usually with NewEntry from the
// *retry.Error the sink's Retrier gave up with, and calls Queue.Put. An intake acknowledges the
// event to its sender on the strength of Put returning nil, so a Queue returns nil only once the
// entry is as durable as its driver promises. Drivers live in sub-packages: filedlq (JSON Lines
// files with fsync and rotation) and kafkadlq (a Kafka topic). Both pass the conformance suite in
// dlqtest, which also offers an in-memory queue for tests.
//
// A Reader lists, fetches and removes entries; Redrive re-sends selected entries, each to the one
// sink it failed on, and removes those that got through. Together they are what the reference
// service's `dlq list`, `dlq show` and `dlq redrive` commands are made of.
//
// # Entries
//
// An Entry carries the event as dispatched with its Raw envelope, the sink and route names, the
// last error's class and text (capped at MaxErrorText bytes on a UTF-8 boundary), the number of
// attempts, the first and last attempt times, the Condition that ended delivery and the trace id.
// Prepare is what every driver applies first in Put: it rejects entries that cannot be stored
// (ErrInvalidEntry), assigns an ID when there is none (NewID: 26 characters, sortable by time),
// caps the error text, replaces invalid UTF-8 in text fields, and converts times to UTC. Raw and
// Data are never touched: drivers keep them byte for byte.
//
// # JSON shape, version 1
//
// MarshalJSON, AppendJSON and UnmarshalJSON use one documented shape, which filedlq writes one
// per line and tools may read. An entry is a single-line JSON object:
//
//	{"v":1,                                  format version; readers reject newer versions
//	 "id":"01J...","sink":"kafka-orders","route":"orders",
//	 "class":"retryable","error":"...",      retry.Class and the capped error text
//	 "attempts":5,
//	 "first_attempt":"2026-03-01T10:00:00.123456789Z",   RFC 3339 in UTC, to the nanosecond
//	 "last_attempt":"...",
//	 "condition":"attempts",                  attempts | age | permanent | circuit-open
//	 "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736",
//	 "event":{"id":"...","type":"...","topic":"...","source":"...","time":"...",
//	          "metadata":{"account":"...","region":"..."},   keys sorted
//	          "data":{...},                   or "data_text":"..." or "data_b64":"..."
//	          "raw":{...}}}                   or "raw_text":"..." or "raw_b64":"..."
//
// Members with empty or zero values are left out ("v", "id" and "event" always appear); readers
// ignore members they do not know, so version 1 may gain members. Event.Raw and Event.Data come
// back byte for byte in one of three forms: embedded as a JSON value ("raw") when they are compact
// JSON in valid UTF-8 without <, >, &, U+2028 or U+2029 (so that encoding/json, which compacts and
// escapes embedded values, cannot change them either) and without terminal controls (below), as
// a JSON string ("raw_text") when they are other valid UTF-8 (pretty-printed JSON, for one), and
// as standard base64 ("raw_b64") otherwise. A nil Raw is left out; an empty one is "raw_text":"".
// Decoded times are in UTC; the instant is kept, the time zone is not.
//
// The encoding holds no character a terminal acts on rather than shows: strings escape, as
// \uXXXX, the C0 controls, DEL, the C1 controls U+0080 to U+009F and the bidirectional
// embeddings, overrides and isolates U+202A to U+202E and U+2066 to U+2069, and Raw or Data
// holding one of them is written as a string. An entry can therefore be printed as it is, and
// decoding the printed text still gives Raw and Data byte for byte. Other invisible characters
// (a no-break space, a joiner, a soft hyphen) are written as they are. Readers accept these
// characters raw as well, as earlier writers of version 1 left them.
//
// # Errors
//
// Drivers wrap the sentinels of this package: ErrInvalidEntry (Put refused the entry, nothing was
// stored), ErrNotFound (Get), ErrUnsupported (an operation the driver cannot do), ErrClosed (the
// queue was closed). UnmarshalJSON returns ErrMalformed or ErrUnknownVersion. Errors a driver gets
// from its storage are classified like a sink's with package retry: a Put error marked permanent
// will not succeed by trying again; any other may.
//
// # Concurrency
//
// Queues and Readers are safe for concurrent use. A Reader's Delete may run while a List is in
// progress, which Redrive relies on to remove entries in batches as it goes. Entry values are
// plain data; an Entry from NewEntry shares its event's Data, Raw and Metadata, which nobody
// modifies.
//
// # Delivery semantics
//
// A nil error from Put means the entry is durable to the degree its driver documents (see filedlq
// and kafkadlq). A non-nil error means it may or may not be stored: the sender will be asked to
// retry, so the queue may end up holding the same event twice, never none.
//
// Redrive re-sends each selected entry to sinks[entry.Sink] only, removes it after the sink
// accepted it, and leaves failed and skipped entries unchanged, so a redrive that fails changes
// nothing. Removal follows delivery: an interruption between the two leaves a delivered entry in
// the queue to be sent again by the next redrive. Sinks therefore see at-least-once delivery and
// deduplicate on Event.ID.
//
// Removal is by ID, so an ID names one entry. Put assigns unique ones (NewID); a caller that sets
// Entry.ID itself must keep it unique, and not use it again after the entry was removed either:
// a driver may remember removals by ID (kafkadlq hides every entry with a removed ID). Entries
// with the same ID, Sink and Event.ID are taken for one entry written twice, and sent once.
// Entries that share an ID but not their sink or event are neither sent nor removed by Redrive,
// which reports them with OutcomeConflict (ErrIDConflict): removing one would remove the others,
// delivered or not. Redrive finds them among the entries it lists, which may not include one put
// under a shared ID while it runs: that one is removed with the entry Redrive delivered, unsent
// (see Redrive).
package dlq
