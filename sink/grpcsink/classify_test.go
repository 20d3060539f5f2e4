package grpcsink_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// codeTable is the documented classification of every gRPC code.
var codeTable = []struct {
	code codes.Code
	want retry.Class // "" means delivered
}{
	{codes.OK, ""},
	{codes.AlreadyExists, ""},
	{codes.Unavailable, retry.ClassRetryable},
	{codes.DeadlineExceeded, retry.ClassRetryable},
	{codes.ResourceExhausted, retry.ClassRetryable},
	{codes.Aborted, retry.ClassRetryable},
	{codes.Internal, retry.ClassRetryable},
	{codes.Unknown, retry.ClassRetryable},
	{codes.Canceled, retry.ClassRetryable},
	{codes.InvalidArgument, retry.ClassPermanent},
	{codes.NotFound, retry.ClassPermanent},
	{codes.PermissionDenied, retry.ClassPermanent},
	{codes.Unauthenticated, retry.ClassPermanent},
	{codes.FailedPrecondition, retry.ClassPermanent},
	{codes.Unimplemented, retry.ClassPermanent},
	{codes.OutOfRange, retry.ClassPermanent},
	{codes.DataLoss, retry.ClassPermanent},
}

func TestEveryStatusCodeFromARealServer(t *testing.T) {
	require.Len(t, codeTable, 17, "every gRPC code has a documented class")
	// The consumer answers each event with the code named by its Type.
	rec := newRecorder()
	rec.err = func(e *fanbridge.Event) error {
		n, err := strconv.Atoi(e.Type)
		if err != nil {
			return err
		}
		return status.Error(codes.Code(n), "answer "+e.Type)
	}
	s := newSink(t, startServer(t, rec))

	for _, tt := range codeTable {
		t.Run(tt.code.String(), func(t *testing.T) {
			e := &fanbridge.Event{ID: "id-" + tt.code.String(), Type: strconv.Itoa(int(tt.code))}

			err := s.Send(testContext(t), e)

			assert.Equal(t, tt.want, retry.Classify(err), "class of %v", err)
			assert.Equal(t, tt.want == retry.ClassPermanent, retry.IsPermanent(err))
			if err != nil {
				assert.Equal(t, tt.code, status.Code(err), "the status code survives wrapping")
				_, hinted := retry.RetryAfter(err)
				assert.False(t, hinted, "no RetryInfo was sent")
			}
		})
	}
}

func TestHandlerErrorsRoundTrip(t *testing.T) {
	tests := []struct {
		name      string
		handler   error
		wantCode  codes.Code
		wantClass retry.Class
		wantAfter time.Duration
	}{
		{"nil", nil, codes.OK, "", 0},
		{"plain error", errors.New("database down"), codes.Unavailable, retry.ClassRetryable, 0},
		{"permanent", retry.Permanent(errors.New("unknown queue")), codes.FailedPrecondition, retry.ClassPermanent, 0},
		{"after", retry.After(errors.New("slow down"), 1500*time.Millisecond), codes.ResourceExhausted, retry.ClassRetryable, 1500 * time.Millisecond},
		{"duplicate", fmt.Errorf("seen it: %w", fanbridge.ErrDuplicate), codes.OK, "", 0},
		{"explicit status", fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "no such agent")), codes.NotFound, retry.ClassPermanent, 0},
		{"explicit status beats permanent mark", retry.Permanent(status.Error(codes.Aborted, "conflict")), codes.Aborted, retry.ClassRetryable, 0},
		{"context canceled in the handler", fmt.Errorf("gave up: %w", context.Canceled), codes.Canceled, retry.ClassRetryable, 0},
		// A handler relaying what its own grpcsink.Sink returned for an event too large
		// downstream: the status goes on with its own message, which says so.
		{"relayed size refusal", retry.Permanent(fmt.Errorf("grpcsink: deliver: %w",
			status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4000)"))),
			codes.ResourceExhausted, retry.ClassPermanent, 0},
		// A receive refusal is a grpcsink.Sink's refusal of an answer, retryable, only as the
		// error that Sink returned (TestRelayedAnswerOverTheReceiveLimitStaysRetryable), never
		// by its text or the lack of a mark: from a call of the handler's own, as it came, it
		// is the refusal of a request, as large on every attempt.
		{"receive refusal in a text saying the consumer may have the event", fmt.Errorf("grpcsink: deliver: the consumer may have the event: %w",
			status.Error(codes.ResourceExhausted, "grpc: received message larger than max (131080 vs. 65536)")),
			codes.ResourceExhausted, retry.ClassPermanent, 0},
		{"receive refusal not marked permanent", status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4000)"),
			codes.ResourceExhausted, retry.ClassPermanent, 0},
		{"receive refusal as the error's own text", sizeStatusError{}, codes.ResourceExhausted, retry.ClassPermanent, 0},
		{"after on a status without RetryInfo", retry.After(status.Error(codes.Unavailable, "busy"), 2*time.Second),
			codes.Unavailable, retry.ClassRetryable, 2 * time.Second},
		// What a fanbridge Dispatcher's Dispatch returns for an event no route wants: taken.
		{"no match", fmt.Errorf("dropped: %w", fanbridge.ErrNoMatch), codes.OK, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			rec.err = func(*fanbridge.Event) error { return tt.handler }
			s := newSink(t, startServer(t, rec))

			err := s.Send(testContext(t), &fanbridge.Event{ID: "e1"})

			assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
			if tt.wantCode != codes.OK {
				assert.Equal(t, tt.wantCode, status.Code(err))
			}
			d, ok := retry.RetryAfter(err)
			assert.Equal(t, tt.wantAfter != 0, ok)
			assert.Equal(t, tt.wantAfter, d)
			assert.Equal(t, 1, rec.count())
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tt := range codeTable {
		t.Run(tt.code.String(), func(t *testing.T) {
			err := grpcsink.Classify(status.Error(tt.code, "x"))
			assert.Equal(t, tt.want, retry.Classify(err))
			wantClass := map[retry.Class]grpcsink.Class{"": grpcsink.Delivered, retry.ClassRetryable: grpcsink.Retryable, retry.ClassPermanent: grpcsink.Permanent}[tt.want]
			assert.Equal(t, wantClass, grpcsink.CodeClass(tt.code))
		})
	}
	t.Run("nil", func(t *testing.T) { assert.NoError(t, grpcsink.Classify(nil)) })
	t.Run("not a gRPC error", func(t *testing.T) {
		err := fmt.Errorf("dial: %w", context.Canceled)
		assert.Same(t, err, grpcsink.Classify(err))
	})
	t.Run("RetryInfo on a retryable code", func(t *testing.T) {
		st, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
		require.NoError(t, err)
		d, ok := retry.RetryAfter(grpcsink.Classify(st.Err()))
		assert.True(t, ok)
		assert.Equal(t, 3*time.Second, d)
	})
	t.Run("RetryInfo on a permanent code is ignored", func(t *testing.T) {
		st, err := status.New(codes.InvalidArgument, "bad").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
		require.NoError(t, err)
		classified := grpcsink.Classify(st.Err())
		assert.True(t, retry.IsPermanent(classified))
		_, ok := retry.RetryAfter(classified)
		assert.False(t, ok)
	})
	t.Run("invalid RetryInfo is ignored", func(t *testing.T) {
		st, err := status.New(codes.ResourceExhausted, "x").WithDetails(&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1, Nanos: -5}})
		require.NoError(t, err)
		_, ok := retry.RetryAfter(grpcsink.Classify(st.Err()))
		assert.False(t, ok)
	})
	// Wrapped, as a call function given to Adapt or an interceptor may return it, the status is
	// read as it is: status.FromError would give the whole wrapping text as its message, which
	// hides a proxy's 404 and a size refusal from the checks on the message.
	t.Run("wrapped", func(t *testing.T) {
		proxy404 := status.Error(codes.Unimplemented, "unexpected HTTP status code received from server: 404 (Not Found)")
		assert.Equal(t, retry.ClassRetryable, retry.Classify(grpcsink.Classify(fmt.Errorf("call: %w", proxy404))))
		big := status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)")
		assert.Equal(t, retry.ClassPermanent, retry.Classify(grpcsink.Classify(fmt.Errorf("call: %w", big))))
		st, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)})
		require.NoError(t, err)
		d, ok := retry.RetryAfter(grpcsink.Classify(fmt.Errorf("call: %w", st.Err())))
		assert.True(t, ok)
		assert.Equal(t, 2*time.Second, d)
	})
	t.Run("a failure carrying OK acknowledges nothing", func(t *testing.T) {
		err := grpcsink.Classify(okStatusError{})
		require.Error(t, err)
		assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	})
	t.Run("class names", func(t *testing.T) {
		assert.Equal(t, "delivered", grpcsink.Delivered.String())
		assert.Equal(t, "retryable", grpcsink.Retryable.String())
		assert.Equal(t, "permanent", grpcsink.Permanent.String())
	})
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want codes.Code
	}{
		{"nil", nil, codes.OK},
		{"plain", errors.New("x"), codes.Unavailable},
		{"permanent", retry.Permanent(errors.New("x")), codes.FailedPrecondition},
		{"after", retry.After(errors.New("x"), time.Second), codes.ResourceExhausted},
		{"duplicate", fanbridge.ErrDuplicate, codes.AlreadyExists},
		{"deadline", context.DeadlineExceeded, codes.DeadlineExceeded},
		{"canceled", context.Canceled, codes.Canceled},
		{"status", status.Error(codes.PermissionDenied, "x"), codes.PermissionDenied},
		{"status OK on a failure", okStatusError{}, codes.Unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := grpcsink.StatusOf(tt.err)
			assert.Equal(t, tt.want, status.Code(got))
			if tt.err != nil {
				assert.Error(t, got)
			}
		})
	}
}

// A consumer may ask for a wait with gRPC's standard trailer grpc-retry-pushback-ms (gRFC A6), as
// well as with RetryInfo: a non-negative value is a retry.After of that many milliseconds, the
// longer one when both come. gRFC A6 reads any other value as "do not retry", which for a call
// that has already failed leaves the dispatcher's policy to decide: no wait is asked for, and
// the code keeps its class.
func TestRetryPushbackTrailer(t *testing.T) {
	throttled := status.New(codes.ResourceExhausted, "throttled")
	withRetryInfo, err := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(3 * time.Second)})
	require.NoError(t, err)
	for _, tt := range []struct {
		name      string
		answer    *status.Status
		pushback  []string
		wantClass retry.Class
		wantAfter time.Duration // 0: no wait asked for
	}{
		{"ResourceExhausted", throttled, []string{"5000"}, retry.ClassRetryable, 5 * time.Second},
		{"Unavailable", status.New(codes.Unavailable, "restarting"), []string{"250"}, retry.ClassRetryable, 250 * time.Millisecond},
		{"RetryInfo asks for less", withRetryInfo, []string{"4500"}, retry.ClassRetryable, 4500 * time.Millisecond},
		{"RetryInfo asks for more", withRetryInfo, []string{"1000"}, retry.ClassRetryable, 3 * time.Second},
		{"a size refusal with a wait", status.New(codes.ResourceExhausted, "grpc: received message larger than max (5000 vs. 4000)"),
			[]string{"2000"}, retry.ClassRetryable, 2 * time.Second},
		{"negative: do not retry", throttled, []string{"-1"}, retry.ClassRetryable, 0},
		{"not a number", throttled, []string{"soon"}, retry.ClassRetryable, 0},
		{"two values", throttled, []string{"100", "200"}, retry.ClassRetryable, 0},
		{"on a permanent code", status.New(codes.InvalidArgument, "bad"), []string{"1000"}, retry.ClassPermanent, 0},
	} {
		for built, build := range sinkBuilders {
			t.Run(tt.name+"/"+built, func(t *testing.T) {
				consumer := sink.Func(func(ctx context.Context, _ *fanbridge.Event) error {
					md := metadata.MD{}
					md.Append("grpc-retry-pushback-ms", tt.pushback...)
					assert.NoError(t, grpc.SetTrailer(ctx, md))
					return tt.answer.Err()
				})
				s := build(t, startServer(t, consumer))

				err := s.Send(testContext(t), &fanbridge.Event{ID: "e1"})

				require.Error(t, err)
				assert.Equal(t, tt.answer.Code(), status.Code(err))
				assert.Equal(t, tt.wantClass, retry.Classify(err), "class of %v", err)
				d, hinted := retry.RetryAfter(err)
				assert.Equal(t, tt.wantAfter != 0, hinted, "a wait asked for")
				assert.Equal(t, tt.wantAfter, d)
			})
		}
	}
}

// okStatusError is a broken error type that claims status OK.
type okStatusError struct{}

func (okStatusError) Error() string              { return "broken" }
func (okStatusError) GRPCStatus() *status.Status { return status.New(codes.OK, "") }

// sizeStatusError is an error whose text is the message of the gRPC status it carries: gRPC's
// report of a message over a receive limit.
type sizeStatusError struct{}

func (sizeStatusError) Error() string {
	return "grpc: received message after decompression larger than max 4000"
}

func (e sizeStatusError) GRPCStatus() *status.Status {
	return status.New(codes.ResourceExhausted, e.Error())
}

func TestServerWithoutEventSinkIsPermanent(t *testing.T) {
	lis := listen(t)
	gs := grpc.NewServer() // a gRPC server that does not implement fanbridge.v1.EventSink
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	s := newSink(t, lis.Addr().String())

	err := s.Send(testContext(t), &fanbridge.Event{ID: "lost"})

	assert.Equal(t, codes.Unimplemented, status.Code(err))
	assert.True(t, retry.IsPermanent(err), "a misconfigured consumer needs an operator, not retries")
}
