package eventbridge

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Why a request was refused before dispatch: the reason attribute of the rejected counter.
type reason uint8

const (
	reasonMethod reason = iota
	reasonSize
	reasonContentType
	reasonMalformed
	reasonRead
	reasonSource
	reasonAccount
	nReasons
)

var reasonNames = [nReasons]string{"method", "size", "content_type", "malformed", "read", "source", "account"}

// What Dispatch reported: the outcome attribute of the dispatched counter.
type outcome uint8

const (
	outcomeDelivered outcome = iota
	outcomeIgnored
	outcomeDuplicate
	outcomeOverloaded
	outcomeClosed
	outcomeTimeout
	outcomeFailed
	outcomeQueued
	nOutcomes
)

var outcomeNames = [nOutcomes]string{"delivered", "ignored", "duplicate", "overloaded", "closed", "timeout", "failed", "queued"}

// statuses are the codes a Handler answers with; their histogram options are built up front.
var statuses = []int{200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 400, 403, 405, 413, 415, 503}

// telemetry holds the instruments and the attribute options, all made once in NewHandler so that
// recording on the hot path does not allocate.
type telemetry struct {
	metrics    bool
	requests   metric.Int64Counter
	rejected   metric.Int64Counter
	dispatched metric.Int64Counter
	duration   metric.Float64Histogram

	requestOpts []metric.AddOption
	reasonOpts  [nReasons][]metric.AddOption
	outcomeOpts [nOutcomes][]metric.AddOption
	statusOpts  map[int][]metric.RecordOption
	attrs       []attribute.KeyValue // WithMetricAttributes, on every measurement

	tracer     trace.Tracer
	propagator propagation.TraceContext
}

const instrumentationName = "github.com/fanbridge/fanbridge/eventbridge"

func newTelemetry(c *config) (*telemetry, error) {
	t := &telemetry{}
	if c.tracerProvider != nil {
		t.tracer = c.tracerProvider.Tracer(instrumentationName)
	}
	if c.meterProvider == nil {
		return t, nil
	}
	m := c.meterProvider.Meter(instrumentationName)
	var err error
	if t.requests, err = m.Int64Counter("fanbridge.eventbridge.requests",
		metric.WithDescription("Requests received."), metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if t.rejected, err = m.Int64Counter("fanbridge.eventbridge.rejected",
		metric.WithDescription("Requests refused before dispatch, by reason."), metric.WithUnit("{request}")); err != nil {
		return nil, err
	}
	if t.dispatched, err = m.Int64Counter("fanbridge.eventbridge.dispatched",
		metric.WithDescription("Events handed to the dispatcher, by outcome."), metric.WithUnit("{event}")); err != nil {
		return nil, err
	}
	// In seconds, so the SDK's default buckets (meant for milliseconds) would put every request in
	// one: these span 250 µs to past the 4 s dispatch budget.
	if t.duration, err = m.Float64Histogram("fanbridge.eventbridge.request.duration",
		metric.WithDescription("Time from request to answer."), metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 5, 10)); err != nil {
		return nil, err
	}
	t.attrs = c.metricAttrs
	t.requestOpts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(t.attrs...))}
	for i, name := range reasonNames {
		t.reasonOpts[i] = []metric.AddOption{metric.WithAttributeSet(t.set(attribute.String("reason", name)))}
	}
	for i, name := range outcomeNames {
		t.outcomeOpts[i] = []metric.AddOption{metric.WithAttributeSet(t.set(attribute.String("outcome", name)))}
	}
	t.statusOpts = make(map[int][]metric.RecordOption, len(statuses))
	for _, code := range statuses {
		t.statusOpts[code] = []metric.RecordOption{metric.WithAttributeSet(t.statusSet(code))}
	}
	t.metrics = true
	return t, nil
}

// set is the attribute set of a measurement: kv and the attributes of WithMetricAttributes.
func (t *telemetry) set(kv attribute.KeyValue) attribute.Set {
	return attribute.NewSet(append([]attribute.KeyValue{kv}, t.attrs...)...)
}

// statusSet is the attribute set of a request's duration, answered with code.
func (t *telemetry) statusSet(code int) attribute.Set {
	return t.set(attribute.Int("http.response.status_code", code))
}
