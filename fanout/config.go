package fanout

import (
	"math"
	"time"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/filter"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Config is what a Dispatcher routes over: its sinks, its routes and its dead-letter queue. New
// takes the first one; Update swaps in another at run time.
type Config struct {
	// Sinks are the named destinations. Each delivers on its own, with its own settings.
	Sinks []SinkConfig
	// Routes select sinks for each event. An event goes to the union of the sinks of every route
	// that matches it, each sink once.
	Routes []Route
	// DLQ takes what a sink could not deliver. With none, a failed sink makes the dispatch fail so
	// that the sender retries. The Dispatcher never closes it. Events accepted under this Config
	// keep writing to it after an Update replaced it: see Dispatcher.Settle for when it may be
	// closed.
	DLQ dlq.Queue
}

// SinkConfig is one named sink and how it is delivered to.
type SinkConfig struct {
	// Name identifies the sink in routes, results, dead-letter entries, logs and metrics.
	Name string
	// Sink is the destination. The Dispatcher closes it (see WithSinkClosing) once no sink that
	// reaches the same sink through its middleware (see "Who closes what" in the package
	// documentation) is used any more, and their work has drained. It tells one sink from another
	// with ==, so, unless WithSinkClosing(false), a value with a Close (or CloseContext) method
	// must be comparable, or wrap a sink that is: a struct holding a slice, map or func (directly
	// or in an interface) is refused with ErrInvalidConfig; pass a pointer to it.
	Sink sink.Sink
	// Retry is the sink's own retry policy; the zero Policy takes retry's defaults (5 attempts,
	// 100ms growing twice up to 10s, full jitter). Its MaxAge counts from the event's arrival.
	// Its AttemptTimeout starts when the attempt holds a send slot (see Concurrency): waiting
	// for one is no attempt, and only the dispatch's budget and MaxAge bound it.
	Retry retry.Policy
	// Concurrency is the most Sends in flight to this sink at once, at most MaxConcurrency. The
	// default is 32. In Sync mode each dispatch waiting on the sink holds one, so a sink that
	// batches concurrent Sends (the Kafka sink does) delivers more cheaply when this is at least
	// the number of requests the intake serves at once.
	Concurrency int
	// QueueSize bounds the events accepted for this sink and not yet finished (waiting, parked
	// behind an ordering key, or being delivered). A dispatch that finds it full is refused with
	// fanbridge.ErrOverloaded. At most MaxQueueSize; the default is 1024.
	QueueSize int
	// Breaker configures the sink's circuit breaker.
	Breaker Breaker
}

// Breaker configures a sink's circuit breaker. While open, events skip the sink and go straight to
// the dead-letter queue with dlq.ConditionCircuitOpen and no attempt; after Cooldown one probe at a
// time is let through, and its success closes the breaker again.
type Breaker struct {
	// Failures is how many consecutive failed attempts open the breaker, at most
	// MaxBreakerFailures; a negative value turns the breaker off. Only retryable failures count: a
	// permanent failure proves the sink answers, and an attempt cut short by our own context says
	// nothing about the sink. The default is 20.
	Failures int
	// Cooldown is how long the breaker stays open before it lets a probe through. The default is
	// 5s.
	Cooldown time.Duration
}

// Route sends the events its filter matches to the sinks it names.
type Route struct {
	// Name identifies the route in results, dead-letter entries, logs and metrics.
	Name string
	// Filter decides which events the route wants; use All for a route that wants every event.
	// A *filter.Pattern here is matched together with every other pattern route (see Pattern);
	// it must come from filter.ParsePattern: a zero one is refused with ErrInvalidConfig.
	// A Filter that panics on an event does not match it; the panic is logged and counted.
	Filter filter.Predicate
	// Pattern is an Amazon EventBridge event pattern (JSON source), an alternative to Filter:
	// exactly one of the two must be set. All the pattern routes of a configuration (and the
	// Filters that are a *filter.Pattern) are compiled into one filter.Matcher, so that matching
	// a thousand pattern routes costs about as much as matching one. Filters that are a CEL
	// *filter.Expression are evaluated together, over one decoding of the event's body; other
	// Filters one by one, in route order.
	Pattern []byte
	// Sinks names the sinks the route delivers to.
	Sinks []string
}

// All is a Predicate that matches every event, for catch-all routes.
var All filter.Predicate = filter.PredicateFunc(matchAll)

func matchAll(*fanbridge.Event) bool { return true }

// Defaults of a SinkConfig's zero fields.
const (
	DefaultConcurrency     = 32
	DefaultQueueSize       = 1024
	DefaultBreakerFailures = 20
	DefaultBreakerCooldown = 5 * time.Second
)

// Limits of a SinkConfig: each unit of Concurrency is a goroutine, and each of QueueSize two
// slots of a channel, allocated when the sink starts. A larger value is refused with
// ErrInvalidConfig rather than exhausting memory (or panicking) at New or Update.
const (
	MaxConcurrency = 4096
	MaxQueueSize   = 1 << 20
)

// MaxBreakerFailures is the largest Breaker.Failures: the breaker counts failures in 32 bits. A
// larger value is refused with ErrInvalidConfig rather than cut down to a threshold nobody set.
const MaxBreakerFailures = math.MaxInt32
