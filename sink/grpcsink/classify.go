package grpcsink

import (
	"errors"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge/retry"
)

// Errors returned by the constructors, and by Send for input it can never deliver.
var (
	// ErrInvalidTarget is wrapped by the error New returns for a target it cannot use.
	ErrInvalidTarget = errors.New("grpcsink: invalid target")
	// ErrInvalidOption is wrapped by the error a constructor returns for a bad or misplaced option.
	ErrInvalidOption = errors.New("grpcsink: invalid option")
	// ErrNilEvent is returned, marked permanent, by Send when the event is nil.
	ErrNilEvent = errors.New("grpcsink: nil event")
	// ErrInvalidEvent is wrapped, marked permanent, by Send for an event that proto3 cannot
	// encode: a text field (ID, Type, Topic, Source, a Metadata key or value) that is not valid
	// UTF-8. Encoding it again would fail again, so no retry is spent on it.
	ErrInvalidEvent = errors.New("grpcsink: event cannot be encoded")
)

// Class is what Classify decides for a gRPC status code.
type Class int

const (
	// Delivered: the consumer has the event (OK, and AlreadyExists: it had it already).
	Delivered Class = iota
	// Retryable: another attempt may succeed.
	Retryable
	// Permanent: no retry can cure it; the event belongs in the dead-letter queue.
	Permanent
)

func (c Class) String() string {
	switch c {
	case Delivered:
		return "delivered"
	case Retryable:
		return "retryable"
	case Permanent:
		return "permanent"
	}
	return "unknown"
}

// CodeClass returns the class of a gRPC status code, as the table in the package documentation
// gives it. A code this package does not know is Retryable. It sees the code alone: Classify also
// reads the status, and makes a ResourceExhausted that reports a message over gRPC's size limit
// permanent.
func CodeClass(c codes.Code) Class {
	switch c {
	case codes.OK, codes.AlreadyExists:
		return Delivered
	case codes.InvalidArgument, codes.NotFound, codes.PermissionDenied, codes.Unauthenticated,
		codes.FailedPrecondition, codes.Unimplemented, codes.OutOfRange, codes.DataLoss:
		return Permanent
	default:
		// Unavailable, DeadlineExceeded, ResourceExhausted, Aborted, Internal, Unknown, Canceled.
		return Retryable
	}
}

// Classify turns the error of a gRPC call into what a sink.Sink returns: nil when the consumer has
// the event (AlreadyExists included), err marked with retry.Permanent for a permanent code, err
// marked with retry.After when the server attached a google.rpc.RetryInfo detail to a retryable
// code, err marked with retry.Permanent for a ResourceExhausted without RetryInfo whose message is
// gRPC's own report of a message over the size limit ("larger than max"), and err unchanged
// otherwise. An error without a gRPC status (a context error, say) is returned unchanged. Use it
// in a Sink of your own over another gRPC client; Adapt already does.
func Classify(err error) error {
	if err == nil {
		return nil
	}
	// The status itself, not status.FromError's, whose message is the whole wrapping text when
	// err wraps the status: the proxy and size checks below read the status's own message.
	var gs interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &gs) {
		return err
	}
	st := gs.GRPCStatus()
	if st == nil || st.Code() == codes.OK {
		return err // a failure that says OK acknowledges nothing: tried again
	}
	switch CodeClass(st.Code()) {
	case Delivered:
		return nil
	case Permanent:
		if st.Code() == codes.Unimplemented && strings.HasPrefix(st.Message(), httpStatusPrefix) {
			return err // a proxy's 404: no gRPC server has answered yet
		}
		return retry.Permanent(err)
	}
	if d, ok := retryDelay(st); ok {
		return retry.After(err, d)
	}
	if tooLarge(st) {
		return retry.Permanent(err)
	}
	return err
}

// httpStatusPrefix begins grpc-go's message for an answer that was plain HTTP, not gRPC, whose
// status it mapped to a code (404 to Unimplemented).
const httpStatusPrefix = "unexpected HTTP status code received from server"

// tooLarge reports whether st is gRPC's refusal of a message over a size limit: grpc-go's
// "grpc: received message larger than max" from the receiving side (the server's
// MaxRecvMsgSize), "trying to send message larger than max" from the sending side, and their
// variants after decompression. The same event is as large on every attempt, so retrying it, or
// redriving it later, only fails again; a server that throttles instead says ResourceExhausted
// with another message, or attaches RetryInfo, and stays retryable.
func tooLarge(st *status.Status) bool {
	if st.Code() != codes.ResourceExhausted {
		return false
	}
	msg := st.Message()
	for _, prefix := range sizeRefusals {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// sizeRefusals are how grpc-go's messages for a size limit begin; a server's own message that
// merely mentions a maximum does not count.
var sizeRefusals = []string{
	"grpc: received message larger than max",
	"grpc: message after decompression larger than max",
	"grpc: received message after decompression larger than max",
	"trying to send message larger than max",
}

// retryDelay returns the wait a google.rpc.RetryInfo detail asks for.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, isRI := d.(*errdetails.RetryInfo); isRI && ri.GetRetryDelay() != nil {
			if err := ri.GetRetryDelay().CheckValid(); err != nil {
				continue
			}
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}
