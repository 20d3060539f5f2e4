package eventbridge

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures a Handler.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// Defaults of the Handler's options.
const (
	DefaultMaxBodySize     = 260 << 10
	DefaultDispatchTimeout = 4 * time.Second
	DefaultRetryAfter      = time.Second
)

type config struct {
	maxBody         int64
	exactSources    map[string]struct{}
	prefixSources   []string
	accounts        map[string]struct{}
	ignoredStatus   int
	retryAfter      time.Duration
	dispatchTimeout time.Duration
	formats         []Format
	logger          *slog.Logger
	meterProvider   metric.MeterProvider
	tracerProvider  trace.TracerProvider
	metricAttrs     []attribute.KeyValue
	queuing         bool
	binaryMode      bool
	errs            []error
}

func (c *config) fail(format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
}

// WithMaxBodySize limits the request body to n bytes; a larger body is answered 413 without being
// read to the end. The default, 260 KiB, takes the largest event EventBridge accepts (256 KiB)
// with the envelope an API destination wraps it in.
//
// Behind signature.Verify, raising it alone changes nothing: Verify reads the body first, with
// its own limit (signature.WithMaxBodyBytes, also 260 KiB by default, whatever the verifier),
// and answers a larger body 413 itself, which EventBridge does not retry. Raise both to the same
// n: signature.Verify(v, signature.WithMaxBodyBytes(n)) in front of a Handler built with
// WithMaxBodySize(n). The same holds for an http.MaxBytesHandler or a proxy in front.
func WithMaxBodySize(n int64) Option {
	return optionFunc(func(c *config) {
		if n <= 0 {
			c.fail("max body size must be positive, got %d", n)
			return
		}
		c.maxBody = n
	})
}

// WithAllowedSources accepts only events whose Source is one of sources; any other is answered
// 403, which EventBridge does not retry. An entry ending in "/" or "*" is a prefix (the "*" is
// dropped), so "aws.partner/genesys.com/cloud/<org-id>/" admits every event bus of one Genesys
// organisation; any other entry must match exactly. An event without a Source (a bare
// notification, a webhook without one) never matches. Source is what the body claims: this is a
// filter against misrouted traffic, not authentication (put signature.Verify in front for that).
// Calls add up. The default is to accept every source.
func WithAllowedSources(sources ...string) Option {
	return optionFunc(func(c *config) {
		for _, src := range sources {
			switch {
			case strings.TrimRight(src, "*") == "":
				c.fail("allowed source %q would match everything", src)
			case strings.HasSuffix(src, "*"):
				c.prefixSources = append(c.prefixSources, strings.TrimSuffix(src, "*"))
			case strings.HasSuffix(src, "/"):
				c.prefixSources = append(c.prefixSources, src)
			default:
				if c.exactSources == nil {
					c.exactSources = make(map[string]struct{})
				}
				c.exactSources[src] = struct{}{}
			}
		}
	})
}

// WithAllowedAccounts accepts only events whose AWS account (the EventBridge envelope's "account",
// in Metadata[fanbridge.MetaAccount]) is one of accounts; any other, or none, is answered 403.
// Each entry must be a 12-digit account ID: a typo would otherwise refuse every event, and
// EventBridge does not retry a 403.
// Like WithAllowedSources it filters on what the body claims. Calls add up. The default is to
// accept every account.
func WithAllowedAccounts(accounts ...string) Option {
	return optionFunc(func(c *config) {
		for _, a := range accounts {
			if !ValidAccountID(a) {
				c.fail("allowed account %q: want the 12 digits of an AWS account ID", a)
				continue
			}
			if c.accounts == nil {
				c.accounts = make(map[string]struct{})
			}
			c.accounts[a] = struct{}{}
		}
	})
}

// ValidAccountID reports whether WithAllowedAccounts accepts a: an AWS account ID, exactly 12
// decimal digits. It lets a configuration be checked before a Handler is built.
func ValidAccountID(a string) bool {
	if len(a) != 12 {
		return false
	}
	for i := range len(a) {
		if a[i] < '0' || a[i] > '9' {
			return false
		}
	}
	return true
}

// WithIgnoredStatus sets the status answered when the Dispatcher reports fanbridge.ErrNoMatch. It
// must be a 2xx code: the sender must not retry an event nobody wants. With 204 the answer has no
// body; otherwise it is {"status":"ignored"}. The default is 200.
func WithIgnoredStatus(code int) Option {
	return optionFunc(func(c *config) {
		if code < 200 || code > 299 {
			c.fail("ignored status must be 2xx, got %d", code)
			return
		}
		c.ignoredStatus = code
	})
}

// WithQueuingDispatcher tells the Handler that a nil error from its Dispatcher means the event
// was queued, not delivered, as with fanout's Async mode: the Handler then answers 200
// {"status":"queued","id":"..."} and counts the dispatch with the outcome "queued", so that
// neither the sender nor the metrics take an event held in memory for one its sinks have.
//
// A Dispatcher that implements Queuer and reports true (an Async fanout.Dispatcher) is answered
// so without this option; it is needed for one that cannot tell, such as a DispatcherFunc or a
// wrapper around an Async Dispatcher. It only ever turns queuing on: a Dispatcher that reports
// it queues is never answered "delivered". The default is what the Dispatcher reports through
// Queuer, and off when it does not implement it: nil means delivered or dead-lettered, answered
// {"status":"delivered",...}.
func WithQueuingDispatcher() Option {
	return optionFunc(func(c *config) { c.queuing = true })
}

// WithCloudEventsBinaryMode accepts CloudEvents sent in the HTTP binding's binary content mode:
// a request with a ce-specversion header and a Content-Type other than application/cloudevents*
// is decoded with Decoder.DecodeCloudEventsBinary, its attributes from the ce-* headers and its
// data from the body. The Handler must accept FormatCloudEvents (NewHandler fails otherwise).
// Without this option such a request is answered 415, naming structured mode, and is never read
// as another format.
//
// A signature over the body (signature.HMAC, GitHub, OpenMessaging, StandardWebhooks) does not
// cover the ce-* headers: whoever has seen one signed request, without knowing the secret, can
// send its body again with another id, type or source, and a changed id is not deduplicated. With
// a verifier that only reads headers (APIKey, Basic, Bearer) the same person holds the key and
// could send anything anyway. Turn binary mode on behind those, or mutual TLS; behind a body
// signature, only when the senders and the path are trusted.
func WithCloudEventsBinaryMode() Option {
	return optionFunc(func(c *config) { c.binaryMode = true })
}

// WithRetryAfter sets the Retry-After sent with a 503 when the Dispatcher's error does not carry
// its own wait (retry.After); it is rounded up to whole seconds. The default is 1 s.
func WithRetryAfter(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fail("retry-after must be positive, got %v", d)
			return
		}
		c.retryAfter = d
	})
}

// WithDispatchTimeout bounds each Dispatch call: its context's deadline is this long after the
// body has been decoded. Keep it under the sender's own timeout (5 s for EventBridge), so that the
// answer, not a timeout, tells the sender what happened. The default is 4 s.
func WithDispatchTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) {
		if d <= 0 {
			c.fail("dispatch timeout must be positive, got %v", d)
			return
		}
		c.dispatchTimeout = d
	})
}

// WithFormats restricts the Handler to the given envelope formats; a body of any other format is
// answered 400. The default is every format.
func WithFormats(formats ...Format) Option {
	return optionFunc(func(c *config) {
		if len(formats) == 0 {
			c.fail("WithFormats needs at least one format")
			return
		}
		c.formats = append(c.formats, formats...)
	})
}

// WithLogger logs rejected requests (at Debug) and failed dispatches (at Warn), with the event id
// and type but never the body. The default is to log nothing.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(c *config) {
		if l == nil {
			c.fail("logger must not be nil")
			return
		}
		c.logger = l
	})
}

// WithMeterProvider records the Handler's metrics with mp: counters
// fanbridge.eventbridge.requests, fanbridge.eventbridge.rejected{reason} and
// fanbridge.eventbridge.dispatched{outcome}, and the histogram
// fanbridge.eventbridge.request.duration{http.response.status_code} in seconds. The default is to
// record nothing.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) {
		if mp == nil {
			c.fail("meter provider must not be nil")
			return
		}
		c.meterProvider = mp
	})
}

// WithMetricAttributes adds attrs to every measurement the Handler records (see
// WithMeterProvider), so that Handlers sharing one MeterProvider, say one per intake path, have
// series of their own: WithMetricAttributes(attribute.String("intake", "/events")). The keys
// the Handler sets itself (reason, outcome, http.response.status_code) cannot be given, nor can
// an empty key or one key twice. Several calls add up.
func WithMetricAttributes(attrs ...attribute.KeyValue) Option {
	return optionFunc(func(c *config) {
		for _, kv := range attrs {
			switch k := string(kv.Key); {
			case !kv.Valid():
				c.fail("metric attribute %q has no key or no value", k)
				return
			case k == "reason" || k == "outcome" || k == "http.response.status_code":
				c.fail("metric attribute %q is set by the Handler itself", k)
				return
			}
			for _, have := range c.metricAttrs {
				if have.Key == kv.Key {
					c.fail("metric attribute %q is given twice", string(kv.Key))
					return
				}
			}
			c.metricAttrs = append(c.metricAttrs, kv)
		}
	})
}

// WithTracerProvider starts one server span per request with tp, a child of the request's W3C
// trace context, and passes it to the Dispatcher in the context. The default is no spans.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return optionFunc(func(c *config) {
		if tp == nil {
			c.fail("tracer provider must not be nil")
			return
		}
		c.tracerProvider = tp
	})
}
