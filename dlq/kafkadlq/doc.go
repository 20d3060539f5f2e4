// Package kafkadlq is a dead-letter queue in a Kafka topic, written and read with franz-go.
//
//	client, _ := kgo.NewClient(kgo.SeedBrokers("kafka:9092")) // acks=all, idempotent: the defaults
//	q, err := kafkadlq.New(client, "fanbridge-dlq")
//	...
//	err = q.Put(ctx, entry) // nil: every in-sync replica has the record
//
// New takes the caller's *kgo.Client rather than wrapping its many settings; the queue never
// closes it. A Queue implements dlq.Queue and dlq.Reader.
//
// # Records
//
// Each entry is one record. Its value is the event's Raw envelope, byte for byte, so that any
// Kafka tool shows the event as the sender posted it. Its key is the event's ID (the entry's ID for
// an event without one; WithKey changes it), so that the entries of one event share a partition.
// Everything else travels in headers, each left out when empty:
//
//	dlq.v               format version, "1"
//	dlq.id              entry ID
//	dlq.sink, dlq.route the sink that failed and the route that chose it
//	dlq.class           retry.Class of the last error
//	dlq.error           its text, at most dlq.MaxErrorText bytes
//	dlq.attempts        decimal
//	dlq.first-attempt   RFC 3339 in UTC, to the nanosecond; so are dlq.last-attempt and event.time
//	dlq.last-attempt
//	dlq.condition       attempts | age | permanent | circuit-open
//	dlq.trace-id        W3C trace id
//	event.id, event.type, event.topic, event.source, event.time
//	event.data-span     "<offset>:<length>" of Event.Data within the value, when Data is part of Raw
//	event.data          Event.Data itself otherwise
//	meta.<key>          each Event.Metadata entry
//
// Times with an offset, from another producer, are read as the same instant in UTC. A record
// without dlq.v was not written by this package; one with a newer version, or with
// headers that do not parse, is not an entry this version can read. List and Get skip such
// records and report them (WithOnDamage, the logger).
//
// # Reading and removing
//
// Reading a topic is natural in Kafka: List and Get read every partition from its start offset to
// the end offset it had when the read began, with a short-lived direct consumer (no consumer group,
// no committed offsets). Records that retention deletes meanwhile are not waited for: a partition
// whose unread records are all gone is done, and one that lost a prefix is read from its new start
// offset. That client is built from the options of the queue's client (Client.Opts), without its
// producer, consumer and group options, so it reaches the same brokers with the same TLS, SASL and
// dialer; WithReadOpts adds more. The offsets come from each partition's leader, asked through
// another such client, one for each listing, which never sends a ListOffsets again by itself
// (franz-go would retry NOT_LEADER_FOR_PARTITION inside one ask for up to its kgo.RetryTimeout,
// 30 s by default, or what WithReadOpts sets); its other requests keep the retry timeouts of the
// queue's client. Until something fails the asks have only ctx and 30 s for the whole listing for
// a limit, so a broker that answers slowly but well is waited for. The first failure is the first
// one the listing meets: a retriable error an ask returns, or one its client meets inside an ask,
// a dial that failed or timed out (kgo.DialTimeout, 10 s by default, or the timeout of a
// kgo.Dialer), a request it could not write or an answer it could not read, a broker that let the
// client's read deadline pass (kgo.RequestTimeoutOverhead, 10 s by default) among them. An ask
// that meets a leader that has just moved (an election, a broker restarted or removed), which
// answers with a retriable error such as NOT_LEADER_FOR_PARTITION, or a broken connection, is
// asked again with fresh metadata, waiting 20 ms and then twice as long each time, up to 1 s, as
// long as 2.5 s from the first failure allow; every ask, the one under way at the first failure
// included, is cut short when the 2.5 s end. A read whose asks still fail when the 2.5 s are
// spent, or would be before its next wait ends, fails, retryable, with the last error a broker or
// the client gave, no later than 2.5 s after the first failure and 30 s after the listing began,
// so a listing that nothing answered or failed in 30 s (a kgo.Dialer without a timeout, into a
// network that drops packets) fails then too, retryable, saying that no answer came; when ctx ends
// first, with an error wrapping ctx's.
// Any other error fails the read at once: an unknown topic (permanent), and a dial error an ask
// itself returns, such as a refused connection to a broker that is restarting (retryable: the
// caller may read again). At the client's defaults a cluster whose dials time out thus fails a
// read about 12.5 s after it began.
// Each listing has a budget and a limit of its own: a pass over the topic lists the offsets when
// it begins, and again when retention deleted records it was about to read; Get makes one pass,
// and List two (one for the removal records, see below, then one for the entries). Once the
// offsets are listed, the records they show are fetched. franz-go retries on its own what goes
// wrong there (a dropped connection, a leader that moved, a storage error) without reporting it,
// so a pass that reads none of the records it wants for as long as one fetch may take under the
// reading client's own timeouts (kgo.DialTimeout, kgo.FetchMaxWait and
// kgo.RequestTimeoutOverhead: 25 s at franz-go's defaults) plus 5 s fails, retryable, saying
// so, rather than waiting until ctx ends. Records written after the pass began, in partitions it
// has read to their end, are not fetched and do not count as reading.
//
// Removing a record is not: Kafka deletes only whole prefixes of a partition. Delete therefore
// appends removal records for each ID (key: the ID, no value, headers dlq.v, dlq.op = "remove"
// and dlq.id), and readers hide every entry whose ID has a removal record; List reads the topic
// twice for that, once for removals and once for entries. Records, removed or not, stay until the
// topic's retention deletes them. Use the delete cleanup policy with a retention long enough to
// redrive in: under the compact policy a removal record, which has no value, would be taken for a
// tombstone of its key.
//
// Retention trims each partition on its own: were a removal on another partition than its entry,
// retention could delete the removal and keep the entry, and a delivered entry would reappear to be
// redriven again. Delete therefore writes each removal to every partition of the topic, after
// whatever entries with its ID each holds, whatever partitioner the queue's client uses, so that
// retention deletes an entry no later than its removal. An ID may have entries on more than one
// partition (a Put retried after an unclear failure can land elsewhere), and no reader can be
// sure it saw them all. Delete writes through a short-lived client of its own, built like the
// readers', with acks=all and a partitioner that keeps the partition each removal names.
//
// # Errors
//
// New returns ErrInvalidOption for a nil client, a bad topic name or a nil logger, and ErrWeakAcks
// for a client that does not produce with acks=all, unless WithAllowWeakAcks is given. Put and
// Delete classify failures like a sink: permanent (retry.Permanent) for an invalid entry
// (dlq.ErrInvalidEntry), an unknown topic, a denied authorization, a record too large on its own
// and any other broker error Kafka marks not retriable; an error wrapping dlq.ErrClosed for a
// closed client; the context's error when ctx ends first; unmarked, so retryable, otherwise
// (franz-go has already retried what kerr.IsRetriable allows). A full client buffer is waited out
// within ctx; a Put whose ctx ends first returns an error wrapping ErrBufferFull and ctx's error,
// and its record, which never reached the client, is never written. Get returns dlq.ErrNotFound.
//
// The broker judges whole batches, and when it refuses one the client fails every record it holds
// for the partition: those of the refused batch and those queued behind it. A refusal that does
// not show the record itself at fault is therefore retryable: a MESSAGE_TOO_LARGE for a batch
// larger than the record alone; every RECORD_LIST_TOO_LARGE, which comes with no size; and every
// refusal for what a record holds (INVALID_RECORD, INVALID_TIMESTAMP, POLICY_VIOLATION,
// CORRUPT_MESSAGE), the client keeping none of the broker's per-record errors. A Put refused for
// another record is written by a later attempt (fanout retries a dead-letter write within its own
// timeout); one the broker refuses for itself fails every attempt. Keep the client's
// kgo.ProducerBatchMaxBytes at or below the topic's max.message.bytes and segment.bytes, and the
// broker refuses no batch for its size.
//
// Put and Delete wait for the broker's acknowledgement only as long as ctx lasts: when it ends
// first they return at once, with an error that wraps ctx's error (retry.Classify calls it
// canceled) and says the record may still be written, because the client keeps producing it.
// A Put also stops waiting once the client's kgo.RecordDeliveryTimeout, its kgo.ProducerLinger and
// a margin of up to 5 s have passed, whatever ctx allows, with an error wrapping
// ErrNoAcknowledgement and context.DeadlineExceeded: franz-go fails a record at its delivery
// timeout, but not one in a produce request a crashed broker never answered, which it keeps until
// a broker answers. Without a delivery timeout (franz-go's default) only ctx bounds a Put.
//
// A Put hands its record to the client only when the client's buffer has room for it, and waits
// for that room within ctx. The queue holds a token for each of its records the client has not yet
// reported on, as many as the client's kgo.MaxBufferedRecords, and offers a record with
// kgo.Client.TryProduce once it holds one. The client refuses it when records of others (a client
// shared with a sink) or their bytes (kgo.MaxBufferedBytes) fill the buffer, or in the instant
// between the client's report on one of the queue's records and its counting that record out; the
// Put then offers it again, at intervals growing to 50 ms. A Put that gives up before the client
// took its record leaves nothing behind: no goroutine waits to hand the record over later, and it
// is never written, however long the broker stays away. What an outage holds is thus bounded by
// the client's buffer: with the broker gone, Puts beyond it fail, with ErrBufferFull, once their
// ctx ends or their delivery-timeout bound passes (see below); a kgo.RecordDeliveryTimeout
// bounds how long the records in the buffer are tried.
//
// Give the queue a client of its own (the service does). On a client shared with producers that
// wait in kgo.Client.Produce for room, such as a kafkasink at its defaults, those producers are
// woken first whenever the buffer frees a place, and a Put, which only offers again at intervals,
// can find it full until its ctx ends: under sustained load dead-letter writes then fail with
// ErrBufferFull. If the client must be shared, keep the other producers below its buffer
// (kafkasink.WithMaxInFlight under kgo.MaxBufferedRecords), so that the queue always finds room.
//
// # Concurrency
//
// A Queue is safe for concurrent use, as is the client beneath it. Concurrent Puts are batched by
// the client into the same produce requests; the client gets each record with a context that
// keeps the caller's values but never ends, so one Put's cancellation or deadline cannot fail the
// records of others batched with it. For the same reason a record, once the client has it, cannot
// be taken back: a Put that gives up waiting for its acknowledgement leaves it to the client, which
// may still write it. Each Put waits for room in the client's buffer within its own ctx, on its own
// goroutine: it starts none. Every List, Get and Delete uses clients of its own, so reads
// run beside Puts and beside each other, and Delete may be called from List's callback.
//
// A Queue has no Close: it holds nothing but the caller's client, and shutting it down is closing that client, once, after the last Put has returned. A
// Put or Delete still waiting when the client closes, from any goroutine, fails with an error
// wrapping dlq.ErrClosed (a Delete's own client is closed with it); it never reports as stored a
// record the broker did not acknowledge.
//
// # Delivery semantics
//
// Put returns nil once the partition leader acknowledged the record with the client's acks; with
// acks=all, which New insists on, every in-sync replica has it, so it survives the crash of this
// process, of this machine and of any broker short of losing all in-sync replicas. Set the topic's
// min.insync.replicas to 2 or more for that to mean more than one copy. A Put that fails may still
// have been written (the acknowledgement was lost, or ctx ended before it came): the sender
// retries, and the topic may then hold the event twice; it never holds none. A Put whose error
// wraps ErrBufferFull is the exception: its record never reached the client and is never written.
package kafkadlq
