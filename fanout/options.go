package fanout

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// Mode chooses when Dispatch returns.
type Mode int

const (
	// Sync: Dispatch returns when every matched sink has the event or the dead-letter queue has
	// it for each sink that failed. A nil error means the event is safe.
	Sync Mode = iota
	// Async: Dispatch returns once every matched sink's queue has accepted the event; workers
	// deliver, retry and dead-letter it afterwards. A nil error means the event is in memory.
	Async
)

func (m Mode) String() string {
	switch m {
	case Sync:
		return "sync"
	case Async:
		return "async"
	default:
		return "unknown"
	}
}

// Defaults of the Dispatcher's options.
const (
	DefaultBudget        = 4 * time.Second
	DefaultDLQReserve    = 500 * time.Millisecond
	DefaultDLQTimeout    = 2 * time.Second
	DefaultOverloadAfter = time.Second
	DefaultDedupWindow   = time.Hour
	DefaultDedupEntries  = 100_000
)

// Option configures a Dispatcher.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	mode          Mode
	budget        time.Duration
	dlqReserve    time.Duration
	dlqTimeout    time.Duration
	overloadAfter time.Duration
	orderingKey   func(*fanbridge.Event) string
	dedup         DedupStore
	dedupSet      bool
	clock         retry.Clock
	logger        *slog.Logger
	meters        metric.MeterProvider
	tracers       trace.TracerProvider
	closeSinks    bool
}

func defaultConfig() config {
	return config{
		mode:          Sync,
		budget:        DefaultBudget,
		dlqReserve:    DefaultDLQReserve,
		dlqTimeout:    DefaultDLQTimeout,
		overloadAfter: DefaultOverloadAfter,
		clock:         retry.SystemClock,
		closeSinks:    true,
	}
}

// WithMode chooses Sync or Async dispatch. The default is Sync. An Async Dispatcher reports it
// through Queues, so that an eventbridge Handler in front of it answers "queued".
func WithMode(m Mode) Option {
	return optionFunc(func(c *config) { c.mode = m })
}

// WithBudget sets the time a Sync dispatch may take when its context has no deadline; a context
// deadline always wins. The default is 4s, under Amazon EventBridge's 5s timeout.
func WithBudget(d time.Duration) Option {
	return optionFunc(func(c *config) { c.budget = d })
}

// WithDLQReserve sets how long before a Sync dispatch's deadline retrying stops, so that the
// dead-letter write still fits in the budget. It never takes more than half of what is left of the
// budget when the dispatch starts. The default is 500ms.
func WithDLQReserve(d time.Duration) Option {
	return optionFunc(func(c *config) { c.dlqReserve = d })
}

// WithDLQTimeout bounds each dead-letter write. The write runs under a context detached from the
// dispatch's cancellation, so that our own cancellation never loses an event, and is retried with
// backoff until this timeout. Once Close's context has ended, it is also how long Close waits for
// a dead-letter queue that takes no entry (see Dispatcher.Close). The default is 2s.
func WithDLQTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.dlqTimeout = d })
}

// WithOverloadRetryAfter sets the wait suggested (with retry.After) to a sender refused because a
// sink's queue is full, or because an event with the same ID is still in flight. The default is
// 1s.
func WithOverloadRetryAfter(d time.Duration) Option {
	return optionFunc(func(c *config) { c.overloadAfter = d })
}

// WithOrderingKey makes events with the same key (a conversation id, say) reach each sink in the
// order they were dispatched: each sink keeps one FIFO lane per key, and an event that is failing
// holds up only its own lane. An empty key means unordered. The default is no ordering.
func WithOrderingKey(key func(*fanbridge.Event) string) Option {
	return optionFunc(func(c *config) { c.orderingKey = key })
}

// WithDedup sets the store that remembers, per event ID, which sinks already have the event, so
// that a sender's retry is acknowledged without redelivery and a retry of a partly failed event
// goes only to the sinks that lack it. WithDedup(nil) turns deduplication off. The default is an
// in-memory store of DefaultDedupEntries IDs for DefaultDedupWindow (see NewMemoryDedup).
func WithDedup(s DedupStore) Option {
	return optionFunc(func(c *config) { c.dedup, c.dedupSet = s, true })
}

// WithClock sets the clock of retry waits, event ages, circuit-breaker cooldowns, durations and
// the default deduplication window. Context deadlines (the Sync budget, Close's deadline) always
// follow real time. The default is retry.SystemClock.
func WithClock(clk retry.Clock) Option {
	return optionFunc(func(c *config) { c.clock = clk })
}

// WithLogger sets where the Dispatcher logs dead-lettered and lost deliveries and shutdown
// progress. It never logs an event's body. The default is silence.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}

// WithMeterProvider sets where the Dispatcher's metrics go: matched events per route; delivered,
// retried, dead-lettered and failed per sink; delivery latency per sink; queue depth per sink
// name, counting the events a sink an Update changed or removed still holds (a removed sink is
// reported until it has finished them and stopped, and every sink is while Close drains it);
// breaker state per sink of the current configuration. The default is no metrics.
func WithMeterProvider(p metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meters = p })
}

// WithTracerProvider sets where the Dispatcher's spans go: one per dispatch, a child of the span
// the caller's context carries (or, without one, of the event's traceparent), and one per sink
// attempt. The default is no tracing.
func WithTracerProvider(p trace.TracerProvider) Option {
	return optionFunc(func(c *config) { c.tracers = p })
}

// WithSinkClosing chooses whether the Dispatcher closes the sinks it was given, once their work
// has drained: with their Close, or with their CloseContext(ctx) once Close has begun (see
// Dispatcher.Close) and when they have no Close (then, before Close begins, under a context that
// ends after 30s, or when Close gives up waiting if that comes first). It closes them on
// Close, and when Update removes a sink and no running sink reaches the sink it wraps (see "Who
// closes what" in the package documentation). With it on, New and Update refuse a Sink value
// that has a Close method but cannot be compared, nor wraps a sink that can (see
// SinkConfig.Sink), as whether another sink still uses it cannot be known. The default is true.
func WithSinkClosing(on bool) Option {
	return optionFunc(func(c *config) { c.closeSinks = on })
}
