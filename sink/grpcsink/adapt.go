package grpcsink

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Adapt returns a Sink that delivers each event through a method of a gRPC client you already
// have, for a consumer whose service speaks its own proto rather than fanbridge.v1.EventSink.
//
// call is the generated client method, such as client.RecordInteraction; convert turns an event
// into its request. Each Send converts, then calls with the same deadline (WithCallTimeout),
// outgoing metadata (event id, traceparent, tracestate), call options and classification as a
// Sink built with New: Classify, told the call's header and trailer metadata through a
// grpc.Header and a grpc.Trailer that Adapt adds to the call options, and the request's encoded
// size when it is a proto.Message (see the package documentation's Errors), so call must pass its
// options on to the client, and send the request it is given as it is. A convert error is
// returned marked retry.Permanent, since converting the same event again gives the same result;
// so convert should refuse what its request cannot carry (such as text that is not valid UTF-8 in
// a proto3 string field), which gRPC would otherwise report as a retryable Internal encoding
// error. The response is discarded.
//
// The client's connection stays the caller's: the adapter has no Close. Options about the
// connection or the fanbridge.v1 request (WithTLS, WithInsecure, WithDialOptions, WithoutRaw,
// WithName) do not apply and make Adapt fail with ErrInvalidOption.
func Adapt[Req, Resp any](
	call func(ctx context.Context, req Req, opts ...grpc.CallOption) (Resp, error),
	convert func(e *fanbridge.Event) (Req, error),
	opts ...Option,
) (sink.Sink, error) {
	if call == nil || convert == nil {
		return nil, fmt.Errorf("%w: Adapt needs a call and a convert function", ErrInvalidOption)
	}
	cfg := newConfig(opts)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if misplaced := append(append([]string(nil), cfg.connOnly...), cfg.deliverOnly...); len(misplaced) > 0 {
		return nil, fmt.Errorf("%w: %s do not apply to Adapt", ErrInvalidOption, strings.Join(misplaced, ", "))
	}
	return &adapter[Req, Resp]{
		call:    call,
		convert: convert,
		caller:  newCaller(cfg),
		opts:    cfg.callOptions,
	}, nil
}

type adapter[Req, Resp any] struct {
	call    func(ctx context.Context, req Req, opts ...grpc.CallOption) (Resp, error)
	convert func(e *fanbridge.Event) (Req, error)
	caller  caller
	opts    []grpc.CallOption
}

func (a *adapter[Req, Resp]) Send(ctx context.Context, e *fanbridge.Event) error {
	if e == nil {
		return retry.Permanent(ErrNilEvent)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("grpcsink: deliver: %w", err)
	}
	req, err := a.convert(e)
	if err != nil {
		return retry.Permanent(fmt.Errorf("grpcsink: convert event %q: %w", e.ID, err))
	}
	callCtx, cancel := a.caller.prepare(ctx, e)
	var header, trailer metadata.MD
	_, err = a.call(callCtx, req, append(a.opts[:len(a.opts):len(a.opts)], grpc.Header(&header), grpc.Trailer(&trailer))...)
	cancel()
	if err == nil {
		return nil
	}
	request, _ := any(req).(proto.Message)
	return a.caller.finish(ctx, callCtx, e, err, sentCall{header: header, trailer: trailer, request: request, options: a.caller.options})
}
