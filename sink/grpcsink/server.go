package grpcsink

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracectx"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
)

// Server implements the fanbridge.v1.EventSink service on the consumer's side: it turns each
// Deliver call back into a *fanbridge.Event, hands it to a Sink of the consumer's (often a
// sink.Func), and answers with a status code that a grpcsink.Sink classifies the way the handler's
// error was classified (a gRPC status the error carries decides: see NewServer). Register it on a
// *grpc.Server.
type Server struct {
	fanbridgev1.UnimplementedEventSinkServer
	handler sink.Sink
}

// NewServer returns a Server that hands every delivered event to handler. handler is called
// concurrently, once per call, with the call's context (its deadline, cancellation and incoming
// gRPC metadata); the event it receives is its own. What handler returns becomes the answer:
//
//   - nil, or an error wrapping fanbridge.ErrNoMatch (the event was taken and dropped on
//     purpose, as a fanbridge Dispatcher's Dispatch reports it): OK.
//   - an error carrying a gRPC status (status.Error, or one wrapping it): that status, with its
//     own code, message and details (the wrapping text is not added: the sending Sink reads gRPC's
//     own size refusals by their message, so a handler relaying what another grpcsink.Sink
//     returned is classified as that Sink classified it). The status decides the class, even
//     under a retry.Permanent mark; a retry.After mark on a retryable status without a
//     google.rpc.RetryInfo adds that detail. gRPC's reports of a message over a size limit
//     ("grpc: received message larger than max", or another gRPC implementation's words for it
//     as the package documentation lists them, and "trying to send message larger than max") are
//     the exception, as the status cannot say whose limit refused the message. When the error
//     is what a grpcsink.Sink (New, NewFromConn or Adapt) returned for an answer refused after
//     its consumer took the event (over the Sink's receive limit, or its consumer's server's
//     send limit), the status's message becomes the error's text, and the sending Sink reads a
//     retryable ResourceExhausted. Any other such refusal (what a grpcsink.Sink returned for a
//     refusal of the request, or the error of a generated client of the handler's own, as it
//     came) goes as it is, permanent for the sending Sink, with a google.rpc.ErrorInfo detail
//     (domain "fanbridge", reason "MESSAGE_TOO_LARGE") when it has none, which shows the
//     sending Sink that a server relays it.
//   - an error wrapping fanbridge.ErrDuplicate: AlreadyExists, which the sending Sink counts as
//     delivered.
//   - an error marked retry.Permanent: FailedPrecondition, which the sending Sink treats as
//     permanent.
//   - an error marked retry.After(err, d): ResourceExhausted with a google.rpc.RetryInfo detail of
//     d, which the sending Sink returns marked retry.After(d).
//   - an error wrapping context.Canceled or context.DeadlineExceeded: Canceled or DeadlineExceeded.
//   - any other error: Unavailable (retryable).
//
// An error marked sink.Refused whose answer is retryable (any of the above but OK, AlreadyExists
// and a permanent status) also gets a google.rpc.ErrorInfo detail (domain "fanbridge", reason
// "REFUSED"), unless its status has one already, and the sending Sink marks its error
// sink.Refused again: a refusal relayed through any number of consumers counts against no
// dispatcher's breaker, as it would not in the consumer. The detail goes beside the status's
// others (RetryInfo, say), and the code stays what it would be without the mark.
//
// The error's text becomes the status message that the sender sees and may record in its
// dead-letter queue: keep secrets out of it. A status message must be valid UTF-8, or grpc-go
// cannot send the status's details (under grpc.Server.ServeHTTP it panics): each sequence of
// bytes that is not is replaced by U+FFFD, in the error's text as in the message of a status it
// carries. A request without an event, or with an invalid timestamp, is answered InvalidArgument
// without calling handler.
func NewServer(handler sink.Sink) (*Server, error) {
	if handler == nil {
		return nil, fmt.Errorf("%w: NewServer needs a handler", ErrInvalidOption)
	}
	return &Server{handler: handler}, nil
}

// Register registers s as the fanbridge.v1.EventSink service on r, usually a *grpc.Server.
func (s *Server) Register(r grpc.ServiceRegistrar) {
	fanbridgev1.RegisterEventSinkServer(r, s)
}

// Deliver implements fanbridgev1.EventSinkServer.
func (s *Server) Deliver(ctx context.Context, req *fanbridgev1.DeliverRequest) (*fanbridgev1.DeliverResponse, error) {
	if req.GetEvent() == nil {
		return nil, status.Error(codes.InvalidArgument, "grpcsink: request has no event")
	}
	e, err := FromProto(req.GetEvent())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "grpcsink: event %q: invalid time: %v", req.GetEvent().GetId(), err)
	}
	if name := req.GetSink(); name != "" {
		ctx = context.WithValue(ctx, sinkNameKey{}, name)
	}
	ctx = continueTrace(ctx, e)
	if err := StatusOf(s.handler.Send(ctx, e)); err != nil {
		return nil, err
	}
	return &fanbridgev1.DeliverResponse{}, nil
}

// continueTrace takes the call's W3C trace context (the sender's delivery attempt, see the package
// documentation) into e's metadata, in place of the trace context the event was sent with, and
// into ctx as the remote parent: the handler's spans, and those of a Dispatcher it relays to, then
// hang under the delivery that reached the consumer, as a Kafka consumer's do through
// kafkasink.EventFromRecord. A call without a valid traceparent (sent once) leaves both alone.
func continueTrace(ctx context.Context, e *fanbridge.Event) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	tps := md.Get(fanbridge.MetaTraceparent)
	if len(tps) != 1 {
		return ctx
	}
	tp, ok := tracectx.Parent(tps[0])
	if !ok {
		return ctx
	}
	if e.Metadata == nil {
		e.Metadata = make(map[string]string, 2)
	}
	e.Metadata[fanbridge.MetaTraceparent] = tp
	delete(e.Metadata, fanbridge.MetaTracestate)
	if tss := md.Get(fanbridge.MetaTracestate); len(tss) == 1 {
		if ts, ok := tracectx.State(tss[0]); ok && ts != "" {
			e.Metadata[fanbridge.MetaTracestate] = ts
		}
	}
	return propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier(e.Metadata))
}

type sinkNameKey struct{}

// SinkName returns, inside a Server's handler, the name the sending sink was given with WithName,
// or "" when it has none.
func SinkName(ctx context.Context) string {
	name, _ := ctx.Value(sinkNameKey{}).(string)
	return name
}

// StatusOf returns the gRPC status error a Server answers for a handler's error, as NewServer
// describes; nil for nil. Use it in a service of your own so that fanbridge classifies your
// answers the way you classified the errors.
func StatusOf(err error) error {
	if err == nil || errors.Is(err, fanbridge.ErrNoMatch) {
		return nil
	}
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		st := gs.GRPCStatus()
		if st == nil || st.Code() == codes.OK {
			// A status of OK attached to a failure would acknowledge an event the handler
			// refused.
			return status.Error(codes.Unknown, validUTF8(err.Error()))
		}
		// The status's own message, not the wrapping text: the sender reads some messages
		// (gRPC's size refusals) to classify them.
		st = withValidMessage(st)
		answer := st.Err()
		if CodeClass(st.Code()) == Delivered {
			return answer
		}
		if sizeRefusal(st.Code(), st.Message()) != notSizeRefusal {
			var refused *answerRefusal
			switch {
			case errors.As(err, &refused):
				// The status alone cannot say whose limit refused a message, and the sender
				// reads a receive refusal as this server's refusal of the request: permanent.
				// This one is a grpcsink.Sink's refusal of an answer its consumer sent, or its
				// consumer's server refusing to send one, after taking the event: retryable; the
				// handler's text keeps the account.
				st = withMessage(st, err.Error())
			case len(st.Proto().GetDetails()) == 0:
				// A sending Sink takes a receive refusal for its own refusal of an answer when
				// the message refused cannot be its request, and the request this handler made
				// may be larger than the one it got; and a send refusal that a server sent for
				// that server's refusal to send its answer. A detail shows that this server
				// relays a refusal instead.
				if marked, derr := st.WithDetails(sentByServer); derr == nil {
					st = marked
				}
			}
			answer = st.Err()
		}
		judged := Classify(answer)
		if retry.IsPermanent(judged) {
			return answer
		}
		if d, ok := retry.RetryAfter(err); ok && d > 0 {
			if _, has := retry.RetryAfter(judged); !has {
				if withDelay, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); derr == nil {
					st = withDelay
				}
			}
		}
		return markRefused(st, err).Err()
	}
	msg := validUTF8(err.Error())
	switch {
	case errors.Is(err, fanbridge.ErrDuplicate):
		return status.Error(codes.AlreadyExists, msg)
	case retry.IsPermanent(err):
		return status.Error(codes.FailedPrecondition, msg)
	}
	var st *status.Status
	if d, ok := retry.RetryAfter(err); ok {
		st = status.New(codes.ResourceExhausted, msg)
		if withDelay, detailErr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); detailErr == nil {
			st = withDelay
		}
	} else {
		switch {
		case errors.Is(err, context.Canceled):
			st = status.New(codes.Canceled, msg)
		case errors.Is(err, context.DeadlineExceeded):
			st = status.New(codes.DeadlineExceeded, msg)
		default:
			st = status.New(codes.Unavailable, msg)
		}
	}
	return markRefused(st, err).Err()
}

// refusedMark is the detail a Server adds to a retryable answer for a handler's error marked
// sink.Refused, which the status's code cannot carry: Classify marks the sender's error
// sink.Refused again, so that a refusal relayed through consumers does not count against the
// first sender's breaker.
var refusedMark = &errdetails.ErrorInfo{Domain: "fanbridge", Reason: "REFUSED"}

// markRefused returns st, a retryable answer for err, with refusedMark among its details when err
// is marked sink.Refused and st has none yet.
func markRefused(st *status.Status, err error) *status.Status {
	if !sink.IsRefused(err) || hasRefusedMark(st) {
		return st
	}
	if marked, derr := st.WithDetails(refusedMark); derr == nil {
		return marked
	}
	return st
}

// hasRefusedMark reports whether st carries refusedMark: its consumer's handler marked the error
// it answered for sink.Refused.
func hasRefusedMark(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == refusedMark.GetDomain() && info.GetReason() == refusedMark.GetReason() {
			return true
		}
	}
	return false
}

// sentByServer is the detail a Server adds to a size refusal it relays, which grpc-go's own
// refusals never carry.
var sentByServer = &errdetails.ErrorInfo{Domain: "fanbridge", Reason: "MESSAGE_TOO_LARGE"}

// withMessage returns st with msg, made valid UTF-8, as its message, its code and details kept. A
// msg that still begins as gRPC's report of a size refusal is prefixed, so that the sender does
// not read it as one.
func withMessage(st *status.Status, msg string) *status.Status {
	msg = validUTF8(msg)
	if sizeRefusal(st.Code(), msg) != notSizeRefusal {
		msg = "grpcsink: " + msg
	}
	p := st.Proto()
	p.Message = msg
	return status.FromProto(p)
}

// validUTF8 returns msg with each sequence of bytes that is not valid UTF-8 replaced by U+FFFD. A
// status travels as a google.rpc.Status, whose message proto3 encodes only as valid UTF-8: with
// anything else grpc-go drops the status's details under grpc.Server.Serve (RetryInfo, the
// REFUSED mark), and panics under grpc.Server.ServeHTTP.
func validUTF8(msg string) string {
	return strings.ToValidUTF8(msg, "\uFFFD")
}

// withValidMessage returns st, with its message made valid UTF-8 when it is not (a status a
// handler relays may come from anywhere), its code and details kept.
func withValidMessage(st *status.Status) *status.Status {
	if utf8.ValidString(st.Message()) {
		return st
	}
	p := st.Proto()
	p.Message = validUTF8(p.Message)
	return status.FromProto(p)
}
