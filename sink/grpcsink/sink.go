package grpcsink

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/closeonce"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Sink delivers events to one consumer service over gRPC, one fanbridge.v1.EventSink/Deliver call
// per Send. Build one per logical consumer with New or NewFromConn; it is safe for concurrent use.
type Sink struct {
	owned *grpc.ClientConn // the connection New made, which Close closes; nil for NewFromConn
	conn  grpc.ClientConnInterface
	call  caller
	// opts are the options of every call, prepared once: what the generated client would build
	// per call (grpc.StaticMethod, then the caller's), which costs an allocation each time.
	opts   []grpc.CallOption
	raw    bool
	name   string
	logger *slog.Logger

	mu       sync.RWMutex // guards closed against in-flight's Add
	closed   bool
	inFlight sync.WaitGroup
	// done is the end of the first Close, which every Close waits for and returns.
	done *closeonce.Done
}

var (
	_ sink.Sink = (*Sink)(nil)
	_ io.Closer = (*Sink)(nil)
)

// New returns a Sink that delivers to the consumer at target, on a connection of its own that
// Close closes.
//
// target is either one gRPC target, such as "consumer.internal:8443", "dns:///consumer:8443"
// (every address the name resolves to is used) or "unix:///run/consumer.sock", or a
// comma-separated list of host:port addresses, such as "10.0.0.1:8443,10.0.0.2:8443". Calls are
// spread round-robin over all the addresses either form yields. The addresses must be replicas of
// one consumer: each answer is taken as the consumer's, so one replica answering a permanent code
// for every event (stale credentials, PermissionDenied; an old version without the service,
// Unimplemented) has its share of the events dead-lettered at their first attempt, while a replica
// that is down or unreachable only costs retries that the next address serves.
//
// The connection uses TLS with the system roots unless WithTLS or WithInsecure says otherwise.
// New does not connect: the first Send does, and a consumer that is down shows as a retryable
// Unavailable error from Send, not as an error here. New fails with an error wrapping
// ErrInvalidTarget or ErrInvalidOption for a target or options it cannot use.
func New(target string, opts ...Option) (*Sink, error) {
	addrs, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	cfg := newConfig(opts)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var creds credentials.TransportCredentials
	switch {
	case cfg.insecure && cfg.tlsSet:
		return nil, fmt.Errorf("%w: WithTLS and WithInsecure exclude each other", ErrInvalidOption)
	case cfg.insecure:
		creds = insecure.NewCredentials()
	default:
		tc := cfg.tls
		if tc == nil {
			tc = &tls.Config{}
		}
		creds = credentials.NewTLS(tc)
	}
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultServiceConfig(roundRobin),
	}
	grpcTarget := target
	if addrs != nil {
		grpcTarget = staticScheme + ":///"
		dial = append(dial, grpc.WithResolvers(&staticResolver{addrs: addrs}))
	}
	dial = append(dial, cfg.dialOptions...)
	// The interceptor comes last, innermost, so that it sees the options the caller's own
	// interceptors pass on.
	dial = append(dial, grpc.WithChainUnaryInterceptor(seeOptions))
	conn, err := grpc.NewClient(grpcTarget, dial...)
	if err != nil {
		return nil, fmt.Errorf("%w: %q: %w", ErrInvalidTarget, target, err)
	}
	s := newSink(conn, cfg)
	s.owned = conn
	return s, nil
}

// NewFromConn returns a Sink that delivers over conn, a connection the caller made and keeps:
// Close never closes it. Use it to share one connection between several sinks, or to reach a
// consumer through credentials, balancers or interceptors New does not offer. WithTLS,
// WithInsecure and WithDialOptions do not apply and make it fail with ErrInvalidOption.
func NewFromConn(conn grpc.ClientConnInterface, opts ...Option) (*Sink, error) {
	if conn == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	cfg := newConfig(opts)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(cfg.connOnly) > 0 {
		return nil, fmt.Errorf("%w: %s only apply to New", ErrInvalidOption, strings.Join(cfg.connOnly, ", "))
	}
	return newSink(conn, cfg), nil
}

func newSink(conn grpc.ClientConnInterface, cfg config) *Sink {
	return &Sink{
		conn:   conn,
		call:   newCaller(cfg),
		opts:   append([]grpc.CallOption{grpc.StaticMethod()}, cfg.callOptions...),
		raw:    !cfg.withoutRaw,
		name:   cfg.name,
		logger: cfg.logger,

		done: closeonce.New(),
	}
}

// validate checks what every constructor shares.
func (c *config) validate() error {
	if c.callTimeout < 0 {
		return fmt.Errorf("%w: WithCallTimeout(%v) is negative", ErrInvalidOption, c.callTimeout)
	}
	if !utf8.ValidString(c.name) {
		return fmt.Errorf("%w: WithName: the name is not valid UTF-8", ErrInvalidOption)
	}
	return nil
}

// Send delivers e with one Deliver call and returns nil once the consumer answered OK or
// AlreadyExists. Otherwise the error is classified as the package documentation's table says:
// marked retry.Permanent, marked retry.After when the server asked for a wait (RetryInfo, or the
// grpc-retry-pushback-ms trailer), unmarked when retryable, and wrapping the context's error when
// ctx ended the call. After Close, Send returns an error wrapping sink.ErrClosed, whatever the
// event.
func (s *Sink) Send(ctx context.Context, e *fanbridge.Event) error {
	if e == nil {
		return retry.Permanent(ErrNilEvent)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("grpcsink: deliver: %w", err)
	}
	// Closed before anything about the event: a closed sink refuses every event alike, and a
	// permanent refusal of this one during shutdown would dead-letter it for no fault of its own.
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("grpcsink: send: %w", sink.ErrClosed)
	}
	s.inFlight.Add(1)
	s.mu.RUnlock()
	defer s.inFlight.Done()
	if err := checkEncodable(e); err != nil {
		return retry.Permanent(err)
	}

	d := new(delivery)
	fillProto(&d.event, &d.time, e)
	if !s.raw {
		d.event.Raw = nil
	}
	d.req.Event, d.req.Sink = &d.event, s.name
	callCtx, cancel := s.call.prepare(ctx, e)
	// The generated client's Deliver, without its two allocations per call: the response lives
	// in d, and the options are prepared, but for the header's and trailer's, which point into d.
	opts := append(append(d.opts[:0], s.opts...), grpc.Header(&d.header), grpc.Trailer(&d.trailer))
	if s.owned != nil {
		// New's connection has the interceptor that fills it in.
		opts = append(opts, &d.seen)
	}
	err := s.conn.Invoke(callCtx, fanbridgev1.EventSink_Deliver_FullMethodName, &d.req, &d.resp, opts...)
	cancel()
	if err == nil {
		return nil
	}
	call := sentCall{header: d.header, trailer: d.trailer, request: &d.req, options: s.call.options}
	if d.seen.seen {
		call.options = d.seen.view
	}
	return s.call.finish(ctx, callCtx, e, err, call)
}

// Close stops the Sink: later Sends fail with sink.ErrClosed, Sends in flight are waited for (each
// is bounded by its context and the call timeout), and then the connection New made is closed. A
// connection given to NewFromConn stays open. Close may be called more than once, and
// concurrently: every call returns only once the Sink is closed, with the first call's result,
// the connection's close error if any. Close is CloseContext with a context that never ends.
func (s *Sink) Close() error {
	return s.CloseContext(context.Background())
}

// CloseContext closes the Sink as Close does, but waits for it only as long as ctx lasts: when
// ctx ends first, it returns an error wrapping ctx's error, and the close carries on, whichever
// call began it, until the Sends in flight have returned. Otherwise it returns what Close
// returns, the same result for every call.
func (s *Sink) CloseContext(ctx context.Context) error {
	s.mu.Lock()
	first := !s.closed
	s.closed = true
	s.mu.Unlock()
	if first {
		s.done.Start(ctx, s.shutdown)
	}
	return s.done.Wait(ctx, "grpcsink")
}

// shutdown does the work of the first Close.
func (s *Sink) shutdown() error {
	s.inFlight.Wait()
	if s.owned != nil {
		s.logger.Debug("grpcsink: closing connection", slog.String("target", s.owned.Target()))
		if err := s.owned.Close(); err != nil {
			return fmt.Errorf("grpcsink: close: %w", err)
		}
	}
	return nil
}
