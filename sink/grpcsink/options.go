package grpcsink

import (
	"crypto/tls"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc"
)

// DefaultCallTimeout bounds each Deliver call when no WithCallTimeout option is given. It is longer
// than fanbridge's default in-request budget (4 s), so a caller's own deadline normally decides;
// it stops a call whose caller set no deadline at all from hanging on a stalled server.
const DefaultCallTimeout = 5 * time.Second

// Option configures a Sink built with New or NewFromConn, or an adapter built with Adapt.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// config is what the options set; New, NewFromConn and Adapt validate it.
type config struct {
	tls         *tls.Config
	tlsSet      bool
	insecure    bool
	dialOptions []grpc.DialOption
	callOptions []grpc.CallOption
	callTimeout time.Duration
	withoutRaw  bool
	name        string
	logger      *slog.Logger

	// connOnly names the options given that only make sense when the package dials the
	// connection itself, so that NewFromConn and Adapt can refuse them instead of ignoring them.
	connOnly []string
	// deliverOnly names the options that only shape the fanbridge.v1 request, which Adapt does
	// not build.
	deliverOnly []string
}

func newConfig(opts []Option) config {
	c := config{callTimeout: DefaultCallTimeout}
	for _, o := range opts {
		if o != nil {
			o.apply(&c)
		}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c *config) markConnOnly(name string) {
	if !slices.Contains(c.connOnly, name) {
		c.connOnly = append(c.connOnly, name)
	}
}

func (c *config) markDeliverOnly(name string) {
	if !slices.Contains(c.deliverOnly, name) {
		c.deliverOnly = append(c.deliverOnly, name)
	}
}

// WithTLS secures the connection with TLS using cfg, which New clones. Put client certificates in
// cfg.Certificates (or cfg.GetClientCertificate) for mutual TLS, and a private CA in cfg.RootCAs.
// When cfg.ServerName is empty the host of each address is verified. A nil cfg means the system
// roots and Go's defaults. WithTLS and WithInsecure exclude each other. Only New accepts it.
// The default is TLS with the system roots, as WithTLS(nil).
func WithTLS(cfg *tls.Config) Option {
	return optionFunc(func(c *config) {
		c.markConnOnly("WithTLS")
		c.tlsSet = true
		if cfg != nil {
			c.tls = cfg.Clone()
		} else {
			c.tls = nil
		}
	})
}

// WithInsecure sends in plaintext, without TLS: for a consumer on the same host, or one behind a
// sidecar or mesh that encrypts for it. Plaintext is never chosen any other way. WithTLS and
// WithInsecure exclude each other. Only New accepts it. The default is TLS with the system roots.
func WithInsecure() Option {
	return optionFunc(func(c *config) {
		c.markConnOnly("WithInsecure")
		c.insecure = true
	})
}

// WithDialOptions adds gRPC dial options to the connection New makes, after the package's own
// (transport credentials, round-robin service config), so that they win: keepalive, connect
// backoff (grpc.WithConnectParams), interceptors, stats handlers, or other transport credentials.
// New then adds a unary interceptor of its own, innermost, that changes nothing: it reads each
// call's options, default call options (grpc.WithDefaultCallOptions) included, for the error
// classification (see the package documentation's Errors). Only New accepts it. The default is
// none.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return optionFunc(func(c *config) {
		c.markConnOnly("WithDialOptions")
		c.dialOptions = append(c.dialOptions, opts...)
	})
}

// WithCallOptions adds gRPC call options to every Deliver call, such as grpc.WaitForReady,
// grpc.UseCompressor or grpc.MaxCallSendMsgSize. Every constructor's error classification sees a
// codec or a receive limit (grpc.MaxCallRecvMsgSize) given here, as it does not one set on a
// connection of the caller's (see the package documentation's Errors). The default is none.
func WithCallOptions(opts ...grpc.CallOption) Option {
	return optionFunc(func(c *config) {
		c.callOptions = append(c.callOptions, opts...)
	})
}

// WithCallTimeout bounds each call with its own deadline; the caller's context still ends it
// sooner when its deadline comes first. A call that runs out of time fails with DeadlineExceeded,
// which is retryable. Zero means no deadline of the sink's own; a negative d is refused.
// The default is DefaultCallTimeout (5 s).
func WithCallTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) { c.callTimeout = d })
}

// WithoutRaw leaves Event.raw out of each request, to save bandwidth when the consumer needs only
// the decoded fields and the body. Adapt does not accept it (its convert function decides what to
// send). The default is to send the raw envelope.
func WithoutRaw() Option {
	return optionFunc(func(c *config) {
		c.markDeliverOnly("WithoutRaw")
		c.withoutRaw = true
	})
}

// WithName names the sink in each request (DeliverRequest.sink), so that a consumer fed by
// several fanbridge sinks can tell them apart; a Server handler reads it with SinkName. Adapt does
// not accept it. The default is no name.
func WithName(name string) Option {
	return optionFunc(func(c *config) {
		c.markDeliverOnly("WithName")
		c.name = name
	})
}

// WithLogger logs, at debug level, deliveries the consumer answered with AlreadyExists (counted as
// delivered) and the closing of an owned connection. Errors are returned, not logged; event bodies
// are never logged. The default is a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) { c.logger = l })
}
