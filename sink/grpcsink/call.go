package grpcsink

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

// gRPC metadata keys sent with every call.
const (
	// MetadataEventID carries the event id, so that a consumer, a proxy or a log can see which
	// event a call delivers without decoding the body.
	MetadataEventID = "fanbridge-event-id"
	// MetadataEventIDBin carries the event id instead of MetadataEventID when the id is not
	// printable ASCII, which plain gRPC metadata values must be.
	MetadataEventIDBin = "fanbridge-event-id-bin"
)

// caller holds what a Sink and an adapter share around one call: the deadline, the outgoing
// metadata and the classification of the result.
type caller struct {
	timeout time.Duration
	logger  *slog.Logger
	// options is what the call options given with WithCallOptions say of each call.
	options optionsView
}

func newCaller(cfg config) caller {
	return caller{timeout: cfg.callTimeout, logger: cfg.logger, options: viewOptions(cfg.callOptions)}
}

// optionsView is what a call's options say of how the client encodes the request, how large an
// answer it takes and how large a request it sends, which tells its own refusals from a server's.
type optionsView struct {
	// protoCodec is set when the options leave the request to gRPC's protobuf codec, so that its
	// size on the wire is known.
	protoCodec bool
	// recvLimit is the client's receive limit: the last grpc.MaxCallRecvMsgSize, or grpc-go's
	// default. A service config may lower it, which no call option shows.
	recvLimit int64
	// sendLimit is the client's send limit: the last grpc.MaxCallSendMsgSize, or grpc-go's
	// default. A service config may lower it too.
	sendLimit int64
}

// defaultRecvLimit and defaultSendLimit are grpc-go's limits for a client when no option sets
// them: 4 MiB received, and what an int32 holds sent.
const (
	defaultRecvLimit = 4 << 20
	defaultSendLimit = math.MaxInt32
)

// viewOptions reads opts as grpc-go applies them, in order: the last receive and send limits
// count, and a forced codec, or a content subtype other than "proto", anywhere leaves the
// request's encoding unknown.
func viewOptions(opts []grpc.CallOption) optionsView {
	v := optionsView{protoCodec: true, recvLimit: defaultRecvLimit, sendLimit: defaultSendLimit}
	for _, o := range opts {
		switch o := o.(type) {
		case grpc.ForceCodecCallOption, grpc.ForceCodecV2CallOption, grpc.CustomCodecCallOption:
			v.protoCodec = false
		case grpc.ContentSubtypeCallOption:
			if o.ContentSubtype != "proto" {
				v.protoCodec = false
			}
		case grpc.MaxRecvMsgSizeCallOption:
			v.recvLimit = int64(o.MaxRecvMsgSize)
		case grpc.MaxSendMsgSizeCallOption:
			v.sendLimit = int64(o.MaxSendMsgSize)
		}
	}
	return v
}

// seenOptions is a call option that asks nothing of gRPC (it is a grpc.EmptyCallOption). Send
// passes it on the connection New made, whose interceptor, seeOptions, fills it in from every
// option of the call, the connection's default call options (grpc.WithDefaultCallOptions, given
// with WithDialOptions) included: gRPC shows those to interceptors, and to nothing else.
type seenOptions struct {
	grpc.EmptyCallOption
	view optionsView
	seen bool
}

// seeOptions is the unary interceptor New installs on its connection, innermost, to fill in the
// call's seenOptions.
func seeOptions(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	for _, o := range opts {
		if seen, ok := o.(*seenOptions); ok {
			seen.view, seen.seen = viewOptions(opts), true
			break
		}
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// prepare returns the context one call runs under: bounded by the call timeout and carrying the
// event id and trace context as outgoing metadata. The cancel func must be called.
func (c *caller) prepare(ctx context.Context, e *fanbridge.Event) (context.Context, context.CancelFunc) {
	cancel := context.CancelFunc(noCancel)
	// A caller's deadline that comes first already bounds the call; a timer of our own would only
	// cost allocations.
	if dl, ok := ctx.Deadline(); c.timeout > 0 && (!ok || time.Until(dl) > c.timeout) {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	var kv [6]string
	md := kv[:0]
	if printableASCII(e.ID) {
		md = append(md, MetadataEventID, e.ID)
	} else {
		md = append(md, MetadataEventIDBin, e.ID)
	}
	// A trace header that is not printable ASCII is not valid W3C trace context either; gRPC would
	// refuse the whole call for it, so it is left out rather than failing delivery.
	tp, ts := sink.TraceContext(ctx, e)
	if tp != "" && printableASCII(tp) {
		md = append(md, fanbridge.MetaTraceparent, tp)
	}
	if ts != "" && printableASCII(ts) {
		md = append(md, fanbridge.MetaTracestate, ts)
	}
	return metadata.AppendToOutgoingContext(ctx, md...), cancel
}

// finish turns the error of a call made under callCtx, derived from the caller's parent, into what
// Send returns. What call holds of the call tells a refusal of the consumer's answer from a
// refusal of the request, and its trailer may ask for a wait. call.request is nil when it is not
// a proto.Message.
func (c *caller) finish(parent, callCtx context.Context, e *fanbridge.Event, err error, call sentCall) error {
	if err == nil {
		return nil
	}
	if ctxErr := callerEnded(parent, callCtx, status.Code(err)); ctxErr != nil {
		// The caller's own context ended the call: say so with the context's error, so that
		// retry.Classify sees a cancellation (never a reason to dead-letter) and errors.Is works.
		return fmt.Errorf("grpcsink: deliver: %w: %w", ctxErr, err)
	}
	if st, _ := status.FromError(err); st.Code() == codes.Canceled && st.Message() == connClosing {
		// The connection was closed by its owner (NewFromConn), as kafkasink says of a client
		// closed under it.
		return fmt.Errorf("grpcsink: deliver: %w: %w", sink.ErrClosed, err)
	}
	classified := classify(err, &call)
	if classified == nil {
		c.logger.LogAttrs(parent, slog.LevelDebug, "grpcsink: consumer already had the event",
			slog.String("event_id", e.ID))
		return nil
	}
	return fmt.Errorf("grpcsink: deliver: %w", classified)
}

// connClosing is grpc-go's message for a call on a ClientConn that was closed (its deprecated
// grpc.ErrClientConnClosing, with code Canceled).
const connClosing = "grpc: the client connection is closing"

// callerEnded returns the caller's context error when it, rather than the sink's call timeout or
// the server, ended a call that failed with code.
func callerEnded(parent, callCtx context.Context, code codes.Code) error {
	if code != codes.Canceled && code != codes.DeadlineExceeded {
		return nil
	}
	if err := parent.Err(); err != nil {
		return err
	}
	// The server learns the deadline from the grpc-timeout header and may give up a moment before
	// the caller's own timer fires. When the caller's deadline was the binding one and has come,
	// give or take that moment, it is still the caller's deadline that ran out; one still ahead
	// was not (the consumer's own backend timed out, and said so).
	if code == codes.DeadlineExceeded {
		pd, ok := parent.Deadline()
		cd, _ := callCtx.Deadline()
		if ok && pd.Equal(cd) && time.Until(pd) <= deadlineSlack {
			return context.DeadlineExceeded
		}
	}
	return nil
}

// deadlineSlack is how long before the caller's deadline a DeadlineExceeded from the server is
// still taken for that deadline: the server's timer, armed from grpc-timeout, and the caller's
// fire at the same instant, but a busy machine runs either late.
const deadlineSlack = 20 * time.Millisecond

func noCancel() {}

// printableASCII reports whether every byte of s is printable ASCII (0x20 to 0x7e), which plain
// gRPC metadata values must be.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
