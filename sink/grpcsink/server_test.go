package grpcsink_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

func TestServerRefusesMalformedRequests(t *testing.T) {
	rec := newRecorder()
	client := fanbridgev1.NewEventSinkClient(plainConn(t, startServer(t, rec)))

	tests := []struct {
		name string
		req  *fanbridgev1.DeliverRequest
	}{
		{"no event", &fanbridgev1.DeliverRequest{Sink: "x"}},
		{"time out of range", &fanbridgev1.DeliverRequest{Event: &fanbridgev1.Event{Id: "1", Time: &timestamppb.Timestamp{Seconds: 1 << 62}}}},
		{"negative nanos", &fanbridgev1.DeliverRequest{Event: &fanbridgev1.Event{Id: "2", Time: &timestamppb.Timestamp{Nanos: -1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Deliver(testContext(t), tt.req)
			assert.Equal(t, codes.InvalidArgument, status.Code(err), "%v", err)
		})
	}
	assert.Zero(t, rec.count(), "the handler never sees a malformed request")
}

func TestProtoConversion(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		e := sampleEvent(t)
		back, err := grpcsink.FromProto(grpcsink.ToProto(e))
		require.NoError(t, err)
		assertSameEvent(t, e, back)
	})
	t.Run("zero values", func(t *testing.T) {
		pe := grpcsink.ToProto(&fanbridge.Event{ID: "z"})
		assert.Nil(t, pe.GetTime(), "a zero time is left unset")
		back, err := grpcsink.FromProto(&fanbridgev1.Event{Id: "z", Data: []byte{}, Metadata: map[string]string{}})
		require.NoError(t, err)
		assert.Equal(t, &fanbridge.Event{ID: "z"}, back)
		assert.True(t, back.Time.IsZero())
	})
}

// A status message travels in a google.rpc.Status, which proto3 encodes only as valid UTF-8:
// with anything else grpc-go drops the status's details under Serve, and with them the wait and
// the REFUSED mark, and panics under ServeHTTP. A handler's error text may hold anything (a name
// cut in the middle of a character, say), and its classification still comes through, the bytes
// that are not UTF-8 replaced by U+FFFD, whichever way the answer is built.
func TestHandlerErrorTextThatIsNotUTF8KeepsItsClassification(t *testing.T) {
	// next is a Sink whose consumer takes the event and answers over next's receive limit: what
	// it returns is relayed with the error's own text as the status message.
	next := newSink(t, startLargeAnswer(t, false, newRecorder(), 128<<10), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))
	tests := []struct {
		name        string
		handler     func(ctx context.Context, e *fanbridge.Event) error
		wantCode    codes.Code
		wantAfter   time.Duration
		wantRefused bool
		wantMsg     string // the whole status message, or "" to check that it holds "caf\uFFFD"
	}{
		{name: "retry.After", handler: fails(retry.After(errors.New("consumer: busy with caf\xc3"), 3*time.Second)),
			wantCode: codes.ResourceExhausted, wantAfter: 3 * time.Second, wantMsg: "consumer: busy with caf\uFFFD"},
		{name: "sink.Refused", handler: fails(sink.Refused(errors.New("consumer: refused the order of caf\xc3"))),
			wantCode: codes.Unavailable, wantRefused: true, wantMsg: "consumer: refused the order of caf\uFFFD"},
		{name: "sink.Refused and retry.After", handler: fails(sink.Refused(retry.After(errors.New("consumer: full at caf\xc3"), time.Second))),
			wantCode: codes.ResourceExhausted, wantAfter: time.Second, wantRefused: true, wantMsg: "consumer: full at caf\uFFFD"},
		// Without details, grpc-go's encoding of the message header would replace the bytes as
		// well; these two check that every way of building the answer gets a valid message.
		{name: "plain error", handler: fails(errors.New("consumer: caf\xc3 is down")),
			wantCode: codes.Unavailable, wantMsg: "consumer: caf\uFFFD is down"},
		{name: "a status's own message, with retry.After", handler: fails(retry.After(status.Error(codes.Unavailable, "busy with caf\xc3"), 2*time.Second)),
			wantCode: codes.Unavailable, wantAfter: 2 * time.Second, wantMsg: "busy with caf\uFFFD"},
		{name: "a status's own message, with sink.Refused", handler: fails(sink.Refused(status.Error(codes.Aborted, "conflict at caf\xc3"))),
			wantCode: codes.Aborted, wantRefused: true, wantMsg: "conflict at caf\uFFFD"},
		{name: "a status of OK on a failure", handler: fails(fmt.Errorf("caf\xc3: %w", okStatusError{})),
			wantCode: codes.Unknown, wantMsg: "caf\uFFFD: broken"},
		{name: "a relayed refusal of an answer", handler: func(ctx context.Context, e *fanbridge.Event) error {
			return fmt.Errorf("relay to caf\xc3: %w", next.Send(ctx, e))
		}, wantCode: codes.ResourceExhausted, wantRefused: true},
	}
	for _, tt := range tests {
		for transport, viaHTTP := range transports {
			t.Run(tt.name+"/"+transport, func(t *testing.T) {
				s := newSink(t, startServerOn(t, viaHTTP, sink.Func(tt.handler)))

				err := s.Send(testContext(t), &fanbridge.Event{ID: "e1", Data: []byte(`{}`)})

				require.Error(t, err)
				assert.Equal(t, tt.wantCode, status.Code(err), "%v", err)
				assert.Equal(t, retry.ClassRetryable, retry.Classify(err), "class of %v", err)
				d, ok := retry.RetryAfter(err)
				assert.Equal(t, tt.wantAfter != 0, ok, "a wait came: %v", err)
				assert.Equal(t, tt.wantAfter, d)
				assert.Equal(t, tt.wantRefused, sink.IsRefused(err), "marked sink.Refused: %v", err)
				msg := statusMessage(t, err)
				assert.True(t, utf8.ValidString(msg), "%q", msg)
				if tt.wantMsg != "" {
					assert.Equal(t, tt.wantMsg, msg)
				} else {
					assert.Contains(t, msg, "caf\uFFFD")
				}
			})
		}
	}
}

// fails returns a handler that answers every event with err.
func fails(err error) func(context.Context, *fanbridge.Event) error {
	return func(context.Context, *fanbridge.Event) error { return err }
}
