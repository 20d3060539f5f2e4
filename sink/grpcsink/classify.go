package grpcsink

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
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
// gRPC's own report of a message over the size limit (grpc-go's "larger than max", or another
// gRPC implementation's words for it, as the package documentation lists them), and err unchanged
// otherwise; a retryable err whose status carries the google.rpc.ErrorInfo detail a Server adds
// for a handler's sink.Refused (domain "fanbridge", reason "REFUSED") is also marked sink.Refused.
// An error without a gRPC status (a context error, say) is returned unchanged. Use it
// in a Sink of your own over another gRPC client; Adapt already does.
//
// Classify sees the status alone, so it takes every size refusal for a refusal of the request,
// permanent. grpc-go words two refusals of the consumer's answer, which come after the consumer
// took the event, as it words refusals of the request: the client's refusal of an answer over its
// receive limit (grpc.MaxCallRecvMsgSize), and the consumer's server refusing to send an answer
// over its own send limit (grpc.MaxSendMsgSize), which reaches the client in the words of the
// client's refusal to send a request. Classify marks both permanent, and the event is
// dead-lettered though the consumer has it. Nor is the trailer in which a server asks for a wait
// (grpc-retry-pushback-ms) part of the status. Send and Adapt also know the call's request, its
// header and trailer metadata, and the options they see (the client's receive and send limits,
// its codec), and read them for all three (see the package documentation); a Sink of your own
// that can meet any of them should do the same.
func Classify(err error) error {
	return classify(err, nil)
}

// sentCall is what Send and Adapt know of a call beyond its error.
type sentCall struct {
	// header and trailer are the call's header and trailer metadata (grpc.Header, grpc.Trailer).
	header, trailer metadata.MD
	// request is the call's request, when it is a proto.Message.
	request proto.Message
	// options is what the call's options say, as far as they are seen.
	options optionsView
}

// requestSize returns the request's encoded size, when gRPC's protobuf codec encoded it, which
// makes its size on the wire known.
func (c *sentCall) requestSize() (int64, bool) {
	if c.request == nil || !c.options.protoCodec {
		return 0, false
	}
	return int64(proto.Size(c.request)), true
}

// classify is Classify, told what Send or Adapt know of the call when call is not nil: a size
// refusal is then retryable when it refused the consumer's answer, and a grpc-retry-pushback-ms
// trailer asks for a wait as RetryInfo does.
func classify(err error, call *sentCall) error {
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
	if proxyRefusedSize(st) {
		return retry.Permanent(err) // the event is as large on every attempt
	}
	d, hinted := retryDelay(st)
	if call != nil {
		if p, ok := pushback(call.trailer); ok {
			d, hinted = max(d, p), true
		}
	}
	if hinted {
		return refusedIfMarked(st, retry.After(err, d))
	}
	switch size := sizeRefusal(st.Code(), st.Message()); {
	case size == refusedToSend && call != nil && call.answerUnsent(st):
		return sink.Refused(&answerRefusal{err: err, limit: "its server's send limit (grpc.MaxSendMsgSize)"})
	case size == refusedToSend:
		return retry.Permanent(err)
	case size == refusedOnReceipt && call != nil && call.answerRefused(st):
		return sink.Refused(&answerRefusal{err: err, limit: "the client's receive limit (grpc.MaxCallRecvMsgSize)"})
	case size == refusedOnReceipt:
		return retry.Permanent(err)
	}
	return refusedIfMarked(st, err)
}

// refusedIfMarked returns err, a retryable failure whose status is st, marked sink.Refused when a
// Server's handler marked the error it answered with (st carries the detail it adds).
func refusedIfMarked(st *status.Status, err error) error {
	if hasRefusedMark(st) {
		return sink.Refused(err)
	}
	return err
}

// answerRefusal is the error of a call whose answer a size limit refused after the consumer took
// the event: retryable, as a lost answer is, and marked sink.Refused, since the consumer is up
// and every attempt of the event fails alike, so that it does not open a dispatcher's breaker. Its type is what StatusOf goes by when a handler
// relays it, since the status it carries is also how a server refuses a request too large.
type answerRefusal struct {
	err   error
	limit string // the limit that refused the answer
}

func (a *answerRefusal) Error() string {
	return "the consumer's answer is over " + a.limit + ", and the consumer may have the event: " + a.err.Error()
}

func (a *answerRefusal) Unwrap() error { return a.err }

// httpStatusPrefix begins grpc-go's message for an answer that was plain HTTP, not gRPC, whose
// status it mapped to a code (404 to Unimplemented).
const httpStatusPrefix = "unexpected HTTP status code received from server"

// proxyRefusedSize reports whether st is grpc-go's report of a plain HTTP 413 (Content Too Large)
// or 431 (Request Header Fields Too Large) answer: something in front of the consumer (a proxy's
// or an ingress's body or header size limit) refused the request for its size before any gRPC
// server saw it. grpc-go maps both to Unknown.
func proxyRefusedSize(st *status.Status) bool {
	if st.Code() != codes.Unknown {
		return false
	}
	rest, ok := strings.CutPrefix(st.Message(), httpStatusPrefix+": ")
	if !ok {
		return false
	}
	code, _, _ := strings.Cut(rest, " ")
	return code == "413" || code == "431"
}

// sizeRefusalKind says which side of a call refused a message over a size limit, if one did.
type sizeRefusalKind int

const (
	notSizeRefusal   sizeRefusalKind = iota
	refusedToSend                    // a send limit: the client's on the request, or the server's on the answer
	refusedOnReceipt                 // a receive limit: the server's on the request, or the client's on the answer
)

// sizeRefusal reports whether a status of code and msg is gRPC's refusal of a message over a size
// limit: grpc-go's "trying to send message larger than max" from the sending side, and from the
// receiving side grpc-go's "grpc: received message larger than max" and its variants after
// decompression, or what another gRPC implementation says in its place (receiveRefusal), as a
// consumer's server written in another language refuses the request. An event is as large on
// every attempt, so retrying a request that was refused, or redriving it later, only fails again;
// a server that throttles instead says ResourceExhausted with another message, or attaches
// RetryInfo, and stays retryable.
func sizeRefusal(code codes.Code, msg string) sizeRefusalKind {
	if code != codes.ResourceExhausted {
		return notSizeRefusal
	}
	if strings.HasPrefix(msg, sendRefusal) {
		return refusedToSend
	}
	if receiveRefusal(msg) {
		return refusedOnReceipt
	}
	return notSizeRefusal
}

// receiveRefusal reports whether msg begins as a gRPC implementation's refusal of a received
// message over its size limit, in any case and with or without a "grpc:" prefix; whatever follows
// (grpc-go's " (N vs. M)", another's " (N vs M)" or ": N") does not matter. A server's own message
// that merely mentions a maximum does not count.
func receiveRefusal(msg string) bool {
	msg = strings.ToLower(msg)
	if rest, found := strings.CutPrefix(msg, "grpc:"); found {
		msg = strings.TrimLeft(rest, " ")
	}
	for _, prefix := range receiveRefusals {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// sendRefusal is how grpc-go's messages for a send limit begin.
const sendRefusal = "trying to send message larger than max"

// receiveRefusals are how gRPC implementations word the refusal of a received message over a
// size limit, in lower case and without grpc-go's "grpc: " prefix.
var receiveRefusals = []string{
	// grpc-go on the wire ("... (N vs. M)", or "... length allowed on current machine (N vs.
	// M)"); gRPC core, under C++, Python, Ruby and PHP, and @grpc/grpc-js ("Received message
	// larger than max (N vs. M)", or "(N vs M)").
	"received message larger than max",
	// grpc-go after decompression.
	"message after decompression larger than max",
	"received message after decompression larger than max",
	// @grpc/grpc-js after decompression ("... larger than M").
	"received message that decompresses to a size larger than",
	// grpc-java on the wire ("gRPC message exceeds maximum size M: N"), after decompression
	// ("Decompressed gRPC message exceeds maximum size M"), and before it in older versions.
	"grpc message exceeds maximum size",
	"decompressed grpc message exceeds maximum size",
	"compressed grpc message exceeds maximum size",
	// grpc-dotnet ("Received message exceeds the maximum configured message size.").
	"received message exceeds the maximum configured message size",
}

// The forms of grpc-go's receive refusals, which alone can be the client's own refusal of an
// answer: over the limit on the wire (the first also over what the machine can address), or
// after decompression, with both numbers or the limit alone.
const (
	wireRefusal             = "grpc: received message larger than max"
	wireRefusalOnMachine    = "grpc: received message larger than max length allowed on current machine"
	decompressedRefusal     = "grpc: message after decompression larger than max"
	decompressedRefusalBare = "grpc: received message after decompression larger than max"
)

// answerRefused reports whether st, a receive-size refusal that ended the call, can only be the
// client's refusal of the consumer's answer, which grpc-go raises locally after the consumer took
// the event: the limit it names is the client's own, the message refused cannot be the request,
// and nothing shows that a server sent the status. How the answer was framed proves nothing: a
// server behind grpc.Server.ServeHTTP, or a proxy, sends headers before a refusal as before an
// answer. When in doubt it is the server's refusal, permanent: a request no attempt can deliver
// is not retried until it expires, and a dead-lettered event the consumer took only comes back as
// a duplicate.
func (c *sentCall) answerRefused(st *status.Status) bool {
	encoded, known := c.requestSize()
	if !known || len(st.Proto().GetDetails()) > 0 || trailersOnly(c.trailer) {
		return false
	}
	size, limit, ok := refusedSizes(st.Message())
	if !ok {
		return false
	}
	// A limit other than the client's is a server's, which refused the request whatever the sizes
	// say (a codec the options do not show, on a connection of the caller's, makes the request
	// larger than its encoded size). Over what the machine can address, the limit named is the
	// machine's, on either side.
	if limit != c.options.recvLimit && !strings.HasPrefix(st.Message(), wireRefusalOnMachine) {
		return false
	}
	if size < 0 {
		// A refusal after decompression: the request decompresses to its encoded size, and a
		// server refuses it only when that is over its limit.
		return encoded <= limit
	}
	// The wire size of a refused request is its encoded size, or what a compressor made of it.
	return size > encoded+compressionSlack(encoded)
}

// answerUnsent reports whether st, a send-size refusal that ended the call, is the consumer's
// server refusing to send its answer over its own send limit (grpc.MaxSendMsgSize), after the
// consumer took the event, rather than the client refusing to send the request over its limit:
// grpc-go words the two alike.
//
// A refusal that names the client's send limit, as the options show it, is the client's: grpc-go
// sends the request headers before it encodes the request and checks its size, so a server that
// answers from the headers alone (a rate limiter in grpc.InTapHandle, an unknown method, an
// authenticating proxy) may put a gRPC content-type in the metadata while the error is still the
// client's own. Otherwise a status from the server comes after response headers or in a
// Trailers-Only response, and grpc-go takes either only with a gRPC content-type, which it keeps
// in the header or trailer metadata; the client's refusal, of a limit the options do not show (a
// service config's, or a connection's default given to NewFromConn or Adapt), arises before
// anything comes back unless such a server raced it. So the refusal is the server's when a
// content-type came. The size it names proves nothing: a codec the options do not show makes the
// request larger than its encoded size. grpc-go's own refusals carry no status details: one that
// does is a server relaying another refusal (NewServer adds a detail), of a request as large on
// every attempt. A server whose send limit is the client's is taken for the client: its refusal
// is permanent, and a redrive brings the consumer a duplicate.
func (c *sentCall) answerUnsent(st *status.Status) bool {
	if len(st.Proto().GetDetails()) > 0 {
		return false
	}
	_, limit, ok := sendRefusalSizes(st.Message())
	if !ok || limit == c.options.sendLimit {
		return false
	}
	return len(c.header.Get("content-type")) > 0 || trailersOnly(c.trailer)
}

// sendRefusalSizes reads grpc-go's send refusal msg: the refused message's size and the limit it
// was over. ok is false when msg is not in the form grpc-go writes.
func sendRefusalSizes(msg string) (size, limit int64, ok bool) {
	rest, found := strings.CutPrefix(msg, sendRefusal)
	if !found {
		return 0, 0, false
	}
	return sizeVsLimit(rest)
}

// compressionSlack is how much more than n bytes a compressor may send for n bytes it cannot
// shrink: gzip and zstd add a few bytes per block, snappy's block format at most a sixth and 32
// bytes. A quarter and 256 bytes cover them all.
func compressionSlack(n int64) int64 {
	return n/4 + 256
}

// refusedSizes reads grpc-go's receive refusal msg: size is the refused message's size on the
// wire, or -1 for a refusal after decompression, which names no wire size; limit is the limit it
// was over. ok is false when msg is not in a form grpc-go writes, as for a refusal in another gRPC
// implementation's words: the client is grpc-go, so only a server can have sent that one.
func refusedSizes(msg string) (size, limit int64, ok bool) {
	if rest, found := strings.CutPrefix(msg, decompressedRefusal); found {
		_, limit, ok = sizeVsLimit(rest)
		return -1, limit, ok
	}
	if rest, found := strings.CutPrefix(msg, decompressedRefusalBare+" "); found {
		limit, err := strconv.ParseInt(rest, 10, 64)
		return -1, limit, err == nil && limit >= 0
	}
	for _, prefix := range []string{wireRefusalOnMachine, wireRefusal} {
		if rest, found := strings.CutPrefix(msg, prefix); found {
			return sizeVsLimit(rest)
		}
	}
	return 0, 0, false
}

// sizeVsLimit reads " (N vs. M)", how grpc-go names the size and limit of a refused message.
func sizeVsLimit(s string) (size, limit int64, ok bool) {
	inner, found := strings.CutPrefix(s, " (")
	if !found {
		return 0, 0, false
	}
	inner, found = strings.CutSuffix(inner, ")")
	if !found {
		return 0, 0, false
	}
	n, m, found := strings.Cut(inner, " vs. ")
	if !found {
		return 0, 0, false
	}
	size, errN := strconv.ParseInt(n, 10, 64)
	limit, errM := strconv.ParseInt(m, 10, 64)
	if errN != nil || errM != nil || size < 0 || limit < 0 {
		return 0, 0, false
	}
	return size, limit, true
}

// trailersOnly reports whether trailer, the trailer metadata of a call, came in a Trailers-Only
// response: a status the server sent before any answer. Such a response carries the content-type
// that otherwise comes with the response headers, and grpc-go keeps it in the trailer metadata;
// trailers after an answer never carry it, and a status the client raises has no trailer of its
// own. Its absence proves nothing: a server may send headers first.
func trailersOnly(trailer metadata.MD) bool {
	return len(trailer.Get("content-type")) > 0
}

// pushbackTrailer is the trailer with which a gRPC server asks a client to wait before trying a
// call again (gRFC A6), in milliseconds.
const pushbackTrailer = "grpc-retry-pushback-ms"

// pushback returns the wait trailer's grpc-retry-pushback-ms asks for: one value, a non-negative
// integer. gRFC A6 reads a negative or unreadable value, or several, as "do not retry"; for
// grpc-go's own retries that ends the call, which here has ended already, and the dispatcher's
// policy, breaker and dead-letter queue decide what comes next, so such a value gives no wait.
func pushback(trailer metadata.MD) (time.Duration, bool) {
	v := trailer.Get(pushbackTrailer)
	if len(v) != 1 {
		return 0, false
	}
	ms, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil || ms < 0 {
		return 0, false
	}
	return time.Duration(min(ms, math.MaxInt64/int64(time.Millisecond))) * time.Millisecond, true
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
