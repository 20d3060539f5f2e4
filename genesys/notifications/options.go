package notifications

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/retry"
)

// Option configures a Source.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults of a Source.
const (
	DefaultHeartbeatTimeout = 60 * time.Second // twice Genesys' 30-second heartbeat
	DefaultExpiryMargin     = 10 * time.Minute
	DefaultOverlap          = 5 * time.Second
	DefaultBufferSize       = 256
	DefaultDedupWindow      = 10000
	DefaultMaxChannels      = MaxChannels
	DefaultDrainTimeout     = 10 * time.Second
	DefaultReadLimit        = 1 << 20
)

// Upper bounds of WithBufferSize and WithDedupWindow: Run reserves memory for each in full when it
// starts (an event pointer per place in the buffer, an id per place in the window), so New refuses
// a value beyond them with ErrInvalidConfig rather than have Run fail for want of memory.
const (
	MaxBufferSize  = 1_000_000
	MaxDedupWindow = 1_000_000
)

// MaxChannels is the most channels a source may hold (WithMaxChannels): half the 20 Genesys allows
// per OAuth client, so that every channel can be replaced at the same time without evicting one
// still in use.
const MaxChannels = genesys.MaxChannels / 2

// DefaultReconnectPolicy retries opening a channel for ever (until the context ends), from 1s up to
// 1 minute apart with full jitter; an exhausted API quota may ask for up to an hour.
var DefaultReconnectPolicy = retry.Policy{
	InitialInterval: time.Second,
	MaxInterval:     time.Minute,
	MaxAttempts:     -1,
	MaxRetryAfter:   time.Hour,
}

// DefaultDispatchPolicy retries a failed Dispatch for ever (until shutdown), from 100ms up to 30s
// apart with full jitter.
var DefaultDispatchPolicy = retry.Policy{
	InitialInterval: 100 * time.Millisecond,
	MaxInterval:     30 * time.Second,
	MaxAttempts:     -1,
	MaxRetryAfter:   time.Minute,
}

type config struct {
	logger           *slog.Logger
	meterProvider    metric.MeterProvider
	heartbeatTimeout time.Duration
	pingInterval     time.Duration
	expiryMargin     time.Duration
	overlap          time.Duration
	reconnect        retry.Policy
	dispatch         retry.Policy
	bufferSize       int
	dedupWindow      int
	maxChannels      int
	drainTimeout     time.Duration
	readLimit        int64
	clock            retry.Clock
	lateGrace        time.Duration // see lateCreationGrace; only tests change it
}

func defaultConfig() config {
	return config{
		logger:           slog.New(slog.DiscardHandler),
		heartbeatTimeout: DefaultHeartbeatTimeout,
		expiryMargin:     DefaultExpiryMargin,
		overlap:          DefaultOverlap,
		reconnect:        DefaultReconnectPolicy,
		dispatch:         DefaultDispatchPolicy,
		bufferSize:       DefaultBufferSize,
		dedupWindow:      DefaultDedupWindow,
		maxChannels:      DefaultMaxChannels,
		drainTimeout:     DefaultDrainTimeout,
		readLimit:        DefaultReadLimit,
		clock:            retry.SystemClock,
		lateGrace:        lateCreationGrace,
	}
}

// WithLogger sets the logger for connections, reconnections, dispatch retries and failures. Event
// bodies and tokens are never logged. The default discards everything.
func WithLogger(l *slog.Logger) Option { return optionFunc(func(c *config) { c.logger = l }) }

// WithMeterProvider sets where the source's OpenTelemetry metrics go:
// fanbridge.notifications.messages (by kind), .events (by outcome), .reconnects (by reason),
// .heartbeats_missed, .dispatch_retries, .channels (by origin) and .channel_limit_waits. The
// default is a no-op provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.meterProvider = mp })
}

// WithHeartbeatTimeout sets how long a socket may stay silent (no heartbeat, no message) before it
// is considered dead and replaced, and how long the answer to a WebSocket handshake may take
// before the attempt counts as failed and is retried. The default is DefaultHeartbeatTimeout (60s,
// two heartbeats).
func WithHeartbeatTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.heartbeatTimeout = d })
}

// WithPingInterval makes the source send {"message":"ping"} this often; Genesys answers with a
// pong, which counts as a sign of life. Zero disables pings, leaving liveness to Genesys'
// heartbeats. The default is zero.
func WithPingInterval(d time.Duration) Option {
	return optionFunc(func(c *config) { c.pingInterval = d })
}

// WithExpiryMargin sets how long before a channel's 24-hour expiry it is replaced by a new one.
// A channel that lives shorter than twice the margin is replaced halfway through its life. The
// default is DefaultExpiryMargin (10 minutes).
func WithExpiryMargin(d time.Duration) Option {
	return optionFunc(func(c *config) { c.expiryMargin = d })
}

// WithOverlap sets how long, in all, the reader of an old channel's socket must have waited in
// Read for the next message, once its replacement is subscribed, before the socket is closed, so
// that messages already on their way over it are still read. Only time spent waiting for the
// socket counts, not time spent waiting for room in the buffer: behind a slow dispatcher the old
// socket stays open until it has been read to the end (see the package documentation). Messages
// that arrive on both are dispatched once. The default is DefaultOverlap (5s).
func WithOverlap(d time.Duration) Option { return optionFunc(func(c *config) { c.overlap = d }) }

// WithReconnectPolicy sets how opening a channel (create, connect, subscribe) is retried. A
// permanent error (refused credentials, a 4xx) ends Run with that error. A MaxAttempts of zero
// means no limit here, where package retry would read it as its default of 5: an outage of a
// few seconds must not end Run. A limit set on purpose (MaxAttempts above zero, or MaxAge) is
// kept, and when it runs out Run ends with the last error. The policy's interval also sets how
// long a lane waits before opening another channel after channels in a row were replaced within
// the heartbeat timeout of being subscribed (see the package documentation); the policy's
// attempt and age budgets neither end nor shorten that wait. The default is
// DefaultReconnectPolicy.
func WithReconnectPolicy(p retry.Policy) Option {
	p = unlimitedByDefault(p)
	return optionFunc(func(c *config) { c.reconnect = p })
}

// WithDispatchPolicy sets how a failed Dispatch is retried. An error marked retry.Permanent stops
// the retries for that event, which is then logged and counted as failed. A MaxAttempts of zero
// means no limit here, where package retry would read it as its default of 5: an event read from
// a channel has no sender to send it again, so a dispatcher overloaded for a while must not lose
// it. A limit set on purpose (MaxAttempts above zero, or MaxAge) is kept: an event still failing
// when it runs out is given up, logged and counted as failed. The default is
// DefaultDispatchPolicy, which never gives up on a retryable error.
func WithDispatchPolicy(p retry.Policy) Option {
	p = unlimitedByDefault(p)
	return optionFunc(func(c *config) { c.dispatch = p })
}

// unlimitedByDefault makes a zero MaxAttempts unlimited.
func unlimitedByDefault(p retry.Policy) retry.Policy {
	if p.MaxAttempts == 0 {
		p.MaxAttempts = -1
	}
	return p
}

// WithBufferSize sets how many decoded events may wait for the dispatcher. When the buffer is full,
// the sockets are not read until there is room again. It must be between 1 and MaxBufferSize
// (1,000,000). The default is DefaultBufferSize (256).
func WithBufferSize(n int) Option { return optionFunc(func(c *config) { c.bufferSize = n }) }

// WithDedupWindow sets how many recent event IDs are remembered to drop a message that arrives
// twice (on an old and a new channel during a replacement). It must be between 1 and
// MaxDedupWindow (1,000,000). The default is DefaultDedupWindow (10,000).
func WithDedupWindow(n int) Option { return optionFunc(func(c *config) { c.dedupWindow = n }) }

// WithMaxChannels caps how many channels the source holds at once; each subscribes up to 1,000
// topics. It must be between 1 and MaxChannels (10): Genesys allows 20 channels per OAuth client
// and evicts the oldest beyond that, and every channel needs a successor open beside it while it
// is replaced, which after a maintenance notice or at expiry happens to all of them at once. The
// default is DefaultMaxChannels (10).
func WithMaxChannels(n int) Option { return optionFunc(func(c *config) { c.maxChannels = n }) }

// WithDrainTimeout sets how long, once Run's context ends or Close is called, the source keeps
// dispatching events it has already read. Events still undelivered then are logged and counted
// as lost. The default is DefaultDrainTimeout (10s).
func WithDrainTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.drainTimeout = d })
}

// WithReadLimit sets the largest WebSocket message accepted, in bytes; a larger one closes the
// socket, which is then replaced. The default is DefaultReadLimit (1 MiB).
func WithReadLimit(n int64) Option { return optionFunc(func(c *config) { c.readLimit = n }) }

// WithClock sets the clock of the reconnect and dispatch retries and of the heartbeat timeout. The
// default is retry.SystemClock.
func WithClock(clk retry.Clock) Option { return optionFunc(func(c *config) { c.clock = clk }) }
