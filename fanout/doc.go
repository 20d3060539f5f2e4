// Package fanout delivers each event to every sink that wants it, each sink on its own, and to
// the dead-letter queue where a sink cannot take it, so that no acknowledged event is lost.
//
// A Dispatcher is built from a Config (named sinks, routes, a dead-letter queue) and options:
//
//	d, err := fanout.New(fanout.Config{
//		Sinks: []fanout.SinkConfig{
//			{Name: "kafka", Sink: kafkaSink},
//			{Name: "crm", Sink: crmSink, Retry: retry.Policy{MaxAttempts: 8}, Concurrency: 16},
//		},
//		Routes: []fanout.Route{
//			{Name: "ended", Pattern: []byte(`{"detail-type":[{"suffix":".customer.end"}]}`), Sinks: []string{"kafka", "crm"}},
//			{Name: "presence", Filter: presence, Sinks: []string{"kafka"}},
//		},
//		DLQ: queue,
//	})
//
// It implements the Dispatcher interface of package eventbridge (Dispatch(ctx, e) error) without
// importing it, so an eventbridge.Handler, a WebSocket source or any other intake can drive it.
//
// # Routing
//
// An event goes to the union of the sinks of every route that matches it, each sink once, in
// route order. A route matches with a filter.Predicate (Filter; All matches everything) or an
// Amazon EventBridge event pattern (Pattern, or a Filter that is a *filter.Pattern). All the
// pattern routes of a configuration are compiled together into one filter.Matcher, so a thousand
// of them cost about what one does. The routes whose Filter is a CEL *filter.Expression are
// evaluated together (filter.MatchExprs), over one decoding of the event's body; other
// predicates run one by one. For each sink, results and
// dead-letter entries name the first route (in configuration order) that chose it. An event no
// route matches is reported with fanbridge.ErrNoMatch and forgotten. A route whose filter panics
// on an event (a Go predicate, a CEL expression, any Filter but a pattern) does not match it:
// the event still goes to the other routes that match it (when none does, it is reported with
// fanbridge.ErrNoMatch), and the panic never reaches the caller of Dispatch. It is counted in
// fanbridge.fanout.route.filter_panicked and logged at Error with the route's name and the
// stack, at most once a minute per route (the line says how many panics went unlogged since the
// last one). An event that repeats a key,
// or spells one path two ways, at a path some pattern route of the configuration reads matches
// no pattern route (see "Ambiguous events" in package filter): adding a pattern route can thus
// make such an event, which no sender of Genesys events writes, miss a route it matched before.
//
// New checks the whole configuration once and names what is wrong: an unknown sink in a route, a
// name used twice, a nil sink, an invalid retry policy or pattern, a sink with a Close method
// that cannot be compared and wraps none that can (pass a pointer), a sink whose Unwrap never
// reaches the sink it wraps. Update (a whole new Config)
// and SetRoutes (new routes over the same sinks) swap configurations at run time atomically:
// each dispatch uses the configuration it started with from beginning to end.
//
// # Per-sink isolation
//
// Each sink has its own retry.Policy, its own limit of Sends in flight (Concurrency, default 32),
// its own queue (QueueSize, default 1024) and workers, and its own circuit breaker (Breaker:
// opens after 20 consecutive retryable failures, lets one probe through after 5s). No lock is held
// across a Send, and no sink's backlog takes a worker, a queue slot or a Send slot from another:
// a dead or slow sink never slows a healthy one. The retry loop wraps each sink's Send alone,
// never the fan-out, so a sink that has the event is never sent it again by the same dispatch
// (a tutorial fan-out that retries everything makes about 1.7 duplicate deliveries per event
// when three sinks each fail a fifth of their sends; see BenchmarkTutorialFanout).
//
// While a sink's breaker is open its events go straight to the dead-letter queue with
// dlq.ConditionCircuitOpen and no attempt: nothing waits on a sink known to be down. A sink that
// answers is up, so a permanent failure does not count against it, and ends a run of failures;
// nor does a retryable failure the sink marks with sink.Refused, its destination's refusal of the
// event or of a batch the event shared (a Kafka broker refusing a batch for what one record
// holds), which is still retried as the policy says: events refused for what they hold do not
// open the breaker and dead-letter the valid events behind them. The other side of it: a
// destination that refuses every event (a Kafka broker whose record validation lost its own
// backend, answering INVALID_RECORD for every batch) never opens the breaker either, and every
// event pays its whole retry policy before it is dead-lettered with dlq.ConditionAttempts. The
// metrics count by sink, not by condition: such a sink shows .dead_lettered rising with every
// event, .retried rising by the policy's attempts less one for each, .delivered flat and
// breaker.state 0 (Stats gives the same counters); the dead-letter entries and the log of each
// name the condition and the refusal. A sink that joins the errors of several destinations must
// not put a refusal in the join when another destination is down (see sink.Refused). A Sync
// attempt that its dispatch's budget cut short counts as a failure when it had at least half of
// that budget and at least 250ms, so a sink that hangs opens its breaker even without a
// Policy.AttemptTimeout, while a caller that comes with little time left opens none;
// attempts cut by shutdown or by the caller going away count for nothing. A Send that
// panics is a bug in the sink, but it fails only that delivery: it counts as a permanent failure
// (dead-lettered, logged with its stack), and the process and its queues live on. So does a Send
// whose error panics when read (a nil *T returned as an error, say): the error is replaced by a
// permanent one that names its type. A panic in a dead-letter queue's Put, or an error from it
// that panics when read, fails that write (as an error would), and one in a sink's Close is
// that sink's failure to close, which Settle or Close reports (an Update returns before the
// sinks it removed are closed). A route's filter that panics fails only that route's match (see
// Routing). A panicking ordering-key function panics in the caller of Dispatch, before any
// queue slot is taken.
//
// # Delivery semantics
//
// Sync mode (the default) answers when every matched sink has the event or the dead-letter queue
// has it for each sink that failed. Async mode (WithMode(Async)) answers as soon as every matched
// sink's queue has accepted it; workers then deliver, retry and dead-letter it.
//
// What a nil from Dispatch promises, exactly:
//
//   - Sync: each matched sink's Send returned nil, or the dead-letter queue's Put returned nil for
//     it (as durable as that queue promises: for filedlq, written and fsynced), or an earlier
//     dispatch of the same ID did one of the two. A crash after the answer loses nothing. A crash
//     before it loses nothing either, because the sender, having no answer, retries; the sinks
//     that had the event before the crash get it again (deduplication lives in memory unless a
//     shared DedupStore is plugged in): delivery is at least once.
//   - Async: the event is in memory, in the queue of every matched sink. A crash (or a kill that
//     skips Close) loses what is still queued, and the sender will not retry what it was told was
//     accepted. Use Async only where the intake cannot wait and the loss on a crash is acceptable,
//     or where the source redelivers on its own; behind Amazon EventBridge, which retries for 24
//     hours, use Sync. After acceptance, a delivery that neither reaches its sink nor the
//     dead-letter queue (none configured, or its Put failed) is lost: it is logged, counted in
//     fanout.sink.failed and reported by Close.
//
// Budgets. A Sync dispatch's budget is its context's deadline (eventbridge.Handler gives 4s,
// under EventBridge's 5s timeout), or WithBudget (default 4s) when the context has none. Retrying
// stops WithDLQReserve (default 500ms, at most half the budget) before the deadline, so that the
// dead-letter write fits; an event still failing then is dead-lettered with dlq.ConditionAge, and
// one that waited in a long queue past the budget is dead-lettered without an attempt. Those
// writes run side by side, each bounded by WithDLQTimeout, so the answer comes at most
// WithDLQTimeout after retrying stopped, however many sinks needed one; a queue slower than the
// reserve makes it later than the deadline. Retry policies count age (Policy.MaxAge) from the
// event's arrival, in both modes, and no attempt starts past it: an event that waited in a sink's
// queue longer than MaxAge is dead-lettered with dlq.ConditionAge and no attempt, and so is one
// whose attempt waited for a send slot (see Concurrency) until past it. In Async mode
// there is no request budget: give sinks that may hang a Policy.AttemptTimeout (or wrap them with
// sink.Timeout), or a hanging Send holds its worker until Close's deadline.
//
// Cancellation. The dead-letter write runs under a context detached from the dispatch's
// cancellation (context.WithoutCancel), bounded by WithDLQTimeout (default 2s) and retried with
// backoff within it: our own cancellation never loses an event. When a Sync caller's context is
// cancelled (the client went away) retrying stops and the sinks that do not have the event are
// not dead-lettered: the dispatch fails with an error wrapping context.Canceled, the sender
// (having no answer) retries, and deduplication sends the retry only to those sinks. A Send under
// way at the moment of cancellation may or may not have reached its destination; that sink may
// get the event twice. A deadline, by contrast, is a budget running out: dead-letter.
//
// Sender retries. With deduplication on (the default), the Dispatcher remembers per event (its
// Source and ID, see DedupKey) which sinks have the event (delivered or dead-lettered). A retry of
// a fully handled event is answered with fanbridge.ErrDuplicate and sent nowhere; a retry of a
// partly failed one goes only to the sinks that lack it; a retry of a failed one is not a
// duplicate. Sinks are known by name: one that an Update rebuilt under the same name (with a new
// topic, say) counts as having what the sink it replaced had, so a retry after such an Update
// does not reach its new destination; rename the sink when its events must go there again. An
// ID is recorded only
// once its dispatch is over (Sync), or once every queue accepted it (Async: that is what the
// answer promised). See DedupStore and NewMemoryDedup for the window and bounds.
//
// Several intakes sharing one Dispatcher. Source and ID are whatever the sender wrote, so a sender
// authenticated for one intake could send another intake's next Source and ID first, and that
// intake's real event would then be answered as a duplicate and never delivered. Give each intake
// its own scope (WithDedupScope on the context it dispatches with): events are then duplicates
// only of events dispatched under the same scope.
//
// Shutdown. Close refuses new dispatches at once (fanbridge.ErrClosed) and lets in-flight and
// queued deliveries finish, retries included. A dispatch begun before Close that has not handed
// its event to the sinks when Close's deadline passes (held in the caller's code: its
// DedupStore, a route's filter, the ordering-key function, the clock or the context) is refused
// with fanbridge.ErrClosed too when it gets there, unless its filters or DedupStore answer first
// (ErrNoMatch, ErrDuplicate): no sink gets the event and nothing is recorded for its ID; one
// handing its event out at that moment is waited for. When its context ends, retrying stops everywhere:
// deliveries under way are cut short and dead-lettered, and the events still waiting in a sink's
// queue or ordering lane are dead-lettered without an attempt. From then on, in both modes, the
// dead-letter writes are made up to 64 at a time, whatever the sinks' Concurrency and however
// many Sync dispatches wait (a queue that commits concurrent writes together, as filedlq does,
// batches them), besides those of the deliveries a sink's workers had under way (at most its
// Concurrency). After its context ends, Close returns once every accepted event is delivered or
// dead-lettered, each dead-letter write bounded by the DLQ timeout; it stops waiting once the
// dead-letter queue has taken no entry for the DLQ timeout (as when the queue hangs or refuses,
// or what is left is held by sinks that ignore cancellation), plus a grace of 100ms. A backlog
// the queue keeps taking is thus written in full, however long that takes (about its size times
// one write, divided by 64), and nothing accepted is dropped because of our own cancellation.
// Close's error reports what could not even be dead-lettered, the sinks that failed to close
// and that no Settle reported (those Updates removed first, in the order of the Updates, then
// those of the last configuration; within a configuration in the order it lists them, however
// their closes, which run side by side, finish) and, when it stopped waiting, what was still in
// a sink's Send or a dead-letter write, and the dispatches that had not handed their event out
// yet.
//
// Ordering. With WithOrderingKey (a conversation id, say), events with the same key reach each
// sink in the order they were dispatched: each sink keeps one FIFO lane per busy key, and an event
// that keeps failing holds up only its own key. Dispatches of one key that overlap in time have no
// order between them. Lanes go away when empty. An event dead-lettered from its lane leaves it, so
// later events of the key may be delivered before a redrive of it. Once Close's deadline has
// passed, the events waiting in lanes are dead-lettered side by side, in no order across or
// within keys. A sink an Update rebuilds
// (its settings changed, or removed and added again while the old one still runs) starts
// delivering once the sink it replaces has finished what was queued to it, which no other sink
// holds up; until then, new events wait in its queue, and the two count together against its
// QueueSize. Its workers are started only then: a sink rebuilt again and again behind a Send
// that does not return adds no goroutine of its own (each Update keeps one until what it
// replaced has settled).
//
// # Errors
//
// What Dispatch returns, and how an intake should answer (eventbridge.Handler does this):
//
//	nil                                     delivered (or dead-lettered)  200, sender done
//	fanbridge.ErrNoMatch (wrapped)          no route wanted the event     200 ignored
//	fanbridge.ErrDuplicate (wrapped)        already handled               200 duplicate
//	fanbridge.ErrOverloaded, retry.After    a matched queue is full       503 + Retry-After
//	fanbridge.ErrClosed (wrapped)           shutting down                 503, retry elsewhere
//	ErrInFlight, retry.After                same ID still in flight       503 + Retry-After
//	*DeliveryError (ErrUndelivered)         a sink failed, DLQ missing    503, sender retries
//	                                        (ErrNoDLQ) or refused (ErrDLQ)
//	                                        or client gone (context.Canceled)
//	retry.Permanent error                   nil event, or a Time outside  (never from an intake)
//	                                        the years 0001 to 9999: a
//	                                        caller's bug, refused before
//	                                        anything is accepted
//
// An overloaded event was given to no sink at all (every matched queue is reserved first, all or
// nothing), so the sender's retry duplicates nothing. A *DeliveryError lists the failed sinks; it
// never unwraps to a sink's own error, so a sink's retry.Permanent mark cannot make an intake drop
// the event. It carries (for retry.RetryAfter) the longest wait a failed sink's last error asked
// for with retry.After, each within its sink's MaxRetryAfter, but not a wait on an error marked
// sink.Refused: that one parts the events of a batch the destination refused (kafkasink's) and
// asks nothing of the sender, whose intake then answers with its own default wait. For the
// outcome at every sink (delivered, dead-lettered, failed, skipped-duplicate, attempts, last
// error, duration), call Deliver instead of Dispatch: the eventbridge contract fixes Dispatch's
// signature, so the per-sink Result comes from this second method, which behaves as Dispatch in
// Sync mode.
//
// # Concurrency
//
// A Dispatcher is safe for concurrent use. Each sink has Concurrency workers fed by its queue; a
// Sync dispatch hands every sink but one to the workers and runs the remaining one on its own
// goroutine (it would otherwise only wait), then takes back any task no worker has started yet.
// A semaphore per sink keeps the number of Sends in flight within Concurrency wherever they run.
// Dispatching costs a few microseconds and no goroutine per event (see BenchmarkDispatch3Sinks).
//
// Two dispatches of the same event ID never run at once: the second waits for the first's outcome
// and then is a duplicate, or delivers to the sinks the first failed; if its own context ends
// first it returns ErrInFlight, wrapped with retry.After. A DedupStore shared by several processes
// sees concurrent duplicates across processes only through its records.
//
// Update and SetRoutes swap an immutable snapshot behind an atomic pointer. A sink that a new
// configuration no longer uses (or uses with other settings) is stopped once every dispatch that
// could reach it has finished and its queue has drained, and then closed.
//
// Who closes what: the Dispatcher closes the sinks it was given (those with a Close or a
// CloseContext method, see WithSinkClosing), once drained, on Close and on removal by Update,
// unless WithSinkClosing(false). It counts them by the sink at the bottom of their middleware: a
// Sink with an Unwrap() sink.Sink method (as the sink package's middleware has: see
// sink.Innermost) counts as the sink it wraps, followed down to one that wraps nothing. So a sink
// shared by several sink names, or wrapped anew for each Config a reload builds (the same
// sink.Chain(crm, sink.Timeout(d)) built again), is closed once, when the last Sink value that
// reaches it goes. The Dispatcher then closes the sink at the bottom itself, as it would close it
// given bare (with CloseContext where it has one), not the wrappers: a wrapper whose Close does
// more than pass it on (flushes a buffer of its own, say) loses that work, so keep such work out
// of Close, or give the wrapper no Unwrap. Only when the sink at the bottom has no close method is
// a wrapper closed: the last to go with one. A sink none of whose values has one is not closed.
// Sinks are told apart with ==: one at the bottom that cannot be compared and has no close method
// (a sink.Func, say) cannot be counted, so the Sink value given is counted instead, as though it
// wrapped nothing (wrapped anew by each reload, it is closed by each reload); one at the bottom
// that cannot be compared and has a close method (a struct holding a slice, say) is refused,
// bare or wrapped, and so is a value with a close method that cannot be compared and wraps no
// sink that can: pass a pointer. So is a value whose Unwrap chain loops, runs more than 1000
// wrappers deep or panics.
// The dead-letter queue is never closed by the Dispatcher: close it after Close returns. One that
// an Update replaced is still written to by the events accepted before it (in Async mode, for as
// long as they wait in a queue), so it cannot be closed when Update returns: Settle says when
// nothing uses it any more.
//
// # Observability
//
// WithLogger (silent by default) logs dead-lettered and lost deliveries, panics in user code and
// shutdown, never an event's body. WithMeterProvider records fanbridge.fanout.route.matched per
// route (an accepted event, once: not a duplicate, nor one refused as overloaded, nor a Sync
// dispatch answered with a failure, whose route the sender's retry counts once it gets the event
// to every sink of the route; a dedup record that could not be written, which sends the retry
// to every sink again, can count a route twice) and fanbridge.fanout.route.filter_panicked per route (see Routing;
// it counts evaluations, a duplicate's and a refused event's included);
// fanbridge.fanout.sink.delivered, .retried, .dead_lettered, .failed and the
// fanbridge.fanout.sink.delivery.duration histogram per sink (.failed counts a delivery that
// ended with neither the sink nor the dead-letter queue having the event: in Async mode a lost
// event; in Sync mode a dispatch answered with the failure, which the sender retries, so each
// failed retry of one event counts again; a dead-letter write that ignores its context and
// returns after Close's deadline is counted when it returns, after Close); and the gauges
// fanbridge.fanout.sink.queue.depth (the events accepted for a sink and not finished, those a
// sink of the same name that an Update changed or removed still holds included: a removed sink is
// reported until it has finished them and stopped) and fanbridge.fanout.sink.breaker.state (0
// closed, 1 half-open, 2 open). WithTracerProvider starts a span per dispatch, the child of the
// span the caller's context carries (an intake's receive span), or, when it carries none, of the
// event's traceparent when it has one; and a span per sink attempt. The attempt's span travels in
// the context given to Send: kafkasink and grpcsink send it on as the traceparent of the record or call (see
// sink.TraceContext), so a consumer's spans become its children. The Event itself is never
// modified, so its traceparent metadata stays as received. A dead-letter entry's TraceID names
// the dispatch's trace: the caller's span's or the sender's when there is one, else the one the
// dispatch span began. A dispatch that fails records its error on the span with an Error status;
// an event no route matched, or a duplicate, is no failure: its span carries the attribute
// fanout.outcome, "ignored" or "duplicate", instead.
//
// Without these options the hot path does no telemetry work at all. Stats returns per-sink
// counters (delivered, dead-lettered, failed, retried, queued, breaker state) without any metrics
// pipeline, for health endpoints and for reconciling a run. They count by name, as the metrics do:
// a sink an Update changes, or adds again, carries on the counters of the sinks of its name that
// still run, and Queued counts the events they still hold.
package fanout
