// Package sinktest is the conformance suite every fanbridge sink runs, including the ones you
// write yourself.
//
// A Sink makes promises a dispatcher relies on: Send returns nil only when the destination has the
// event, intact; it honours its context's cancellation and deadline; it classifies failures
// (retry.Permanent for what no retry cures, unmarked for what another attempt may cure) and never
// retries on its own; it is safe for concurrent use and never modifies the event; once Send has
// returned, the sink does no more work for that event (no retry, no second copy in the
// background); a closed sink has stopped all its work, keeps what it delivered and refuses more
// with an error wrapping sink.ErrClosed. Run checks each promise with a subtest, against a
// destination the sink's author provides.
//
// # How to use it
//
// Write a test that describes your sink with a Harness: how to open a fresh sink with its own
// destination, how to read back what that destination received, how to make it fail or hang,
// and which optional Features your sink has. Then call Run.
//
//	func TestConformance(t *testing.T) {
//		sinktest.Run(t, sinktest.Harness{
//			Features: sinktest.Features{ReadBack: true, Metadata: true, PermanentFailure: true, Close: true},
//			Open: func(tb testing.TB) sinktest.Instance {
//				dest := newFakeDestination(tb)         // yours: an httptest.Server, a kfake cluster ...
//				s, err := mysink.New(dest.URL)
//				if err != nil {
//					tb.Fatal(err)
//				}
//				return sinktest.Instance{
//					Sink:          s,
//					Received:      dest.Events,       // func(ctx) ([]*fanbridge.Event, error)
//					FailPermanent: dest.RejectAll,    // func() (heal func())
//				}
//			},
//		})
//	}
//
// Turn on only the features your sink and harness support; a feature whose hook is missing fails
// the test with a message naming it, and a feature left off skips its subtests (visible with
// go test -v). RunBenchmarks measures the same harness.
//
// # What Run checks
//
//   - Deliver/Intact: events (a full Genesys event, a minimal one, a body with awkward JSON bytes,
//     metadata with W3C trace context, a 64 KiB body) arrive with ID, Type, Topic, Source, Time
//     (the same instant) and Data byte for byte; Metadata and Raw too when Features.Metadata and
//     Features.Raw are on.
//   - Deliver/Many and Deliver/Concurrent: 200 events one by one (in order with Features.Ordered),
//     then 8 goroutines at once; every event arrives exactly once.
//   - Deliver/SharedEvent: one event sent from several goroutines at once (run with -race).
//   - Context/Canceled and Context/Expired: a Send with a done context fails with an error wrapping
//     the context's error, not permanent, and delivers nothing.
//   - Context/Deadline (Features.Hang): with the destination not answering, Send returns by its
//     deadline with an error that is not permanent, and works again once the destination answers;
//     the events acknowledged before and after arrived once each. "By its deadline" allows one
//     second, plus twice the deadline, plus however late the suite's own goroutine saw the
//     deadline pass (a loaded machine under -race wakes everyone late): a sink that waits on
//     for a second or more of its own fails.
//   - Context/CanceledInFlight (Features.Hang): as Context/Deadline, but the Send's context has
//     no deadline and is canceled while the Send waits for the destination (as a dispatcher does
//     when the sender goes away or it shuts down): Send returns as promptly, with an error
//     wrapping context.Canceled. A sink that only turns its context's deadline into a timeout of
//     its client fails here.
//   - Failure/Transient and Failure/Permanent: a destination failure is classified as such
//     (retry.Classify, retry.IsPermanent), and the sink recovers afterwards without delivering
//     an acknowledged event again. The event of the failing Send never arrives: the destination
//     refused every delivery, so it could arrive only if the sink sent it again after Send had
//     returned (a retry, or a copy kept and sent with a later event), which is caught whether or
//     not Instance.Attempts is set. With Instance.Attempts, the failing Send also asked the
//     destination once and did not retry, then or by the end of the subtest.
//   - Close (Features.Close): Close keeps what was delivered; Sends racing Close either succeed
//     (and arrived) or fail with an error that is not permanent; a Send after Close fails promptly
//     with an error wrapping sink.ErrClosed; a second Close is harmless.
//   - Batch (Features.Batch): SendBatch delivers every event without modifying any, an empty
//     batch is a no-op, and a failure gives every event an error (through sink.EventError) of
//     the right class: permanent, or retryable with the destination asked at most once per event
//     (with Instance.Attempts), and read back, none of the failed events there and the
//     acknowledged ones once each; after Close (Features.Close),
//     every event gets an error wrapping sink.ErrClosed and none arrives.
//   - Batch/Hang (Features.Batch and Features.Hang): with the destination not answering, a
//     SendBatch whose context has a short deadline returns by it (within the same slack as Send),
//     and, since the destination acknowledged none of the batch, reports every event as failed:
//     a non-nil error for each, through sink.EventError (one error for all, or a *sink.BatchError
//     with one entry per event and no nil entry), classified retryable or canceled, never
//     permanent. Once the destination answers again, a SendBatch delivers, and the acknowledged
//     events arrived once each.
//   - Batch/CanceledInFlight (Features.Batch and Features.Hang): as Batch/Hang, but the context
//     has no deadline and is canceled while the SendBatch waits: it returns as promptly, each
//     event's error wrapping context.Canceled and not permanent.
//   - The event is left as it was (every subtest): every Send and SendBatch the suite makes,
//     those that fail and those under a done context included, must leave each event it was given
//     exactly as it was; the suite compares it with a copy taken before the call. A dispatcher
//     hands one event to every sink, so a note a failed Send leaves on it (its error in Metadata)
//     reaches the other sinks, and races with their Sends.
//   - Nothing arrives late (every subtest, with Features.ReadBack): after a subtest's last
//     read-back the suite closes the sink, reads the destination again and requires the events of
//     the subtest to be there as many times as before, no fewer (Close keeps what was delivered)
//     and no more. An acknowledged event must not arrive again, and the event of a Send that the
//     destination refused must not arrive at all from then on: either would be work the sink did
//     after Send returned, a retry or a copy in the background. The one exception is an attempt
//     that Send or SendBatch gave up on while the destination did not answer (Context/Deadline,
//     Context/CanceledInFlight, Batch/Hang, Batch/CanceledInFlight): the destination may still
//     complete it, so its event may arrive late, once (any
//     number of times with Instance.Attempts nil), as at-least-once delivery allows. Close must
//     return only once the sink's own work has stopped: the suite sees what lands before its
//     read after Close, and work that outlives Close breaks the promise whether seen or not.
//
// Event IDs carry a prefix unique to each subtest, and Received may return events of earlier
// subtests: Run ignores them, so one destination (one Kafka cluster, one server) can serve all
// subtests. A destination must not hold duplicates of an acknowledged event when nothing failed.
// Received is called again after the sink is closed, so it must read the destination without
// the sink's help.
// Every subtest carries a 30 s deadline. A call into the sink (Send, SendBatch, Close, including
// the Close after each subtest) that has not returned 5 s after its context ended, or after that
// deadline for Close, fails the subtest and names the call: a sink that hangs or ignores its
// context fails rather than stalls the run. A call into the sink that panics fails its subtest
// with the panic's value and stack, and the run goes on to the next subtest.
package sinktest
