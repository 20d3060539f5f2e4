package grpcsink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/dlq"
	"github.com/fanbridge/fanbridge/dlq/dlqtest"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// A handler's sink.Refused mark is part of its classification, and survives the trip: the sender's
// error is marked sink.Refused too, with the code and wait it had without the mark.
func TestHandlerRefusalStaysRefused(t *testing.T) {
	errRefused := errors.New("the destination refused a batch for what a record holds")
	tests := []struct {
		name      string
		handler   error
		wantCode  codes.Code
		wantAfter time.Duration
	}{
		{"plain", sink.Refused(errRefused), codes.Unavailable, 0},
		// What a kafkasink.Sink returns for a refused batch: a wait that parts batch-mates.
		{"with a wait", retry.After(sink.Refused(errRefused), 30*time.Millisecond), codes.ResourceExhausted, 30 * time.Millisecond},
		{"under a wait", sink.Refused(retry.After(errRefused, 40*time.Millisecond)), codes.ResourceExhausted, 40 * time.Millisecond},
		{"on a retryable status", sink.Refused(status.Error(codes.Aborted, "conflict")), codes.Aborted, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			rec.err = func(*fanbridge.Event) error { return tt.handler }
			s := newSink(t, startServer(t, rec))

			err := s.Send(testContext(t), &fanbridge.Event{ID: "e1", Data: []byte(`{}`)})

			require.Error(t, err)
			assert.Equal(t, tt.wantCode, status.Code(err))
			assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
			assert.True(t, sink.IsRefused(err), "the handler's error was marked sink.Refused; the sender's: %v", err)
			d, ok := retry.RetryAfter(err)
			assert.Equal(t, tt.wantAfter != 0, ok)
			assert.Equal(t, tt.wantAfter, d)
		})
	}
}

// The mark goes on retryable answers alone, once, beside the details a status has: a permanent
// answer is already healthy for a breaker, and what is delivered needs no mark.
func TestStatusOfMarksRefusals(t *testing.T) {
	isRefusedDetail := func(d any) bool {
		info, ok := d.(*errdetails.ErrorInfo)
		return ok && info.GetDomain() == "fanbridge" && info.GetReason() == "REFUSED"
	}
	countMarks := func(err error) int {
		n := 0
		for _, d := range status.Convert(err).Details() {
			if isRefusedDetail(d) {
				n++
			}
		}
		return n
	}
	base := errors.New("refused")

	assert.Equal(t, 0, countMarks(grpcsink.StatusOf(base)), "no mark without sink.Refused")
	assert.Equal(t, 1, countMarks(grpcsink.StatusOf(sink.Refused(base))))
	assert.Equal(t, 0, countMarks(grpcsink.StatusOf(sink.Refused(retry.Permanent(base)))), "a permanent answer")
	assert.Equal(t, codes.FailedPrecondition, status.Code(grpcsink.StatusOf(sink.Refused(retry.Permanent(base)))))
	dup := grpcsink.StatusOf(sink.Refused(fmt.Errorf("seen: %w", fanbridge.ErrDuplicate)))
	assert.Equal(t, codes.AlreadyExists, status.Code(dup), "a duplicate is delivered")
	assert.Equal(t, 0, countMarks(dup))

	// A status marked already (a relay returning what its own grpcsink.Sink returned) keeps one
	// mark, and its RetryInfo.
	once := grpcsink.StatusOf(retry.After(sink.Refused(base), time.Second))
	twice := grpcsink.StatusOf(sink.Refused(fmt.Errorf("relayed: %w", once)))
	assert.Equal(t, 1, countMarks(twice))
	d, ok := retry.RetryAfter(grpcsink.Classify(twice))
	assert.True(t, ok)
	assert.Equal(t, time.Second, d)
	assert.True(t, sink.IsRefused(grpcsink.Classify(twice)))
	assert.False(t, sink.IsRefused(grpcsink.Classify(grpcsink.StatusOf(base))))
}

// A refusal relayed through two consumers, each a Server handing the event on with a
// grpcsink.Sink, still reaches the first sender marked.
func TestRefusalRelayedTwiceStaysRefused(t *testing.T) {
	last := sink.Func(func(context.Context, *fanbridge.Event) error {
		return retry.After(sink.Refused(errors.New("refused for what it holds")), 20*time.Millisecond)
	})
	next := newSink(t, startServer(t, last))
	relayErr, err := sendThroughRelay(t, false, next, false)

	require.True(t, sink.IsRefused(relayErr), "the relay's own error: %v", relayErr)
	require.Error(t, err)
	assert.True(t, sink.IsRefused(err), "the first sender's error: %v", err)
	assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
	d, ok := retry.RetryAfter(err)
	assert.True(t, ok)
	assert.Equal(t, 20*time.Millisecond, d)
}

// A relay whose own grpcsink.Sink refused the next consumer's answer for its size returns an
// error marked sink.Refused (the next consumer is up and took the event): so is the first
// sender's.
func TestRelayedAnswerRefusalStaysRefused(t *testing.T) {
	for transport, viaHTTP := range transports {
		for built, build := range sinkBuilders {
			t.Run(transport+"/"+built, func(t *testing.T) {
				rec := newRecorder()
				next := build(t, startLargeAnswer(t, false, rec, 128<<10), grpcsink.WithCallOptions(grpc.MaxCallRecvMsgSize(64<<10)))

				relayErr, err := sendThroughRelay(t, viaHTTP, next, false)

				require.True(t, sink.IsRefused(relayErr), "the relay's own error: %v", relayErr)
				require.Error(t, err)
				assert.Equal(t, retry.ClassRetryable, retry.Classify(err))
				assert.True(t, sink.IsRefused(err), "the first sender's error: %v", err)
				assert.Contains(t, err.Error(), "the consumer may have the event")
			})
		}
	}
}

// End to end: a dispatcher over a grpcsink.Sink whose consumer refuses some events (sink.Refused)
// keeps its breaker closed through any number of refusals in a row, and delivers the valid event
// that follows rather than dead-lettering it circuit-open.
func TestRelayedRefusalsLeaveTheBreakerClosed(t *testing.T) {
	ctx := testContext(t)
	h := sink.Func(func(_ context.Context, e *fanbridge.Event) error {
		if strings.HasPrefix(e.ID, "bad") {
			return sink.Refused(errors.New("refused for what it holds"))
		}
		return nil
	})
	s := newSink(t, startServer(t, h))
	d, err := fanout.New(fanout.Config{
		Sinks: []fanout.SinkConfig{{Name: "grpc", Sink: s,
			Retry:   retry.Policy{InitialInterval: time.Millisecond, MaxAttempts: 3, Jitter: retry.NoJitter},
			Breaker: fanout.Breaker{Failures: 2, Cooldown: time.Minute}}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"grpc"}}},
		DLQ:    dlqtest.NewMemory(),
	}, fanout.WithSinkClosing(false))
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close(testContext(t)) })

	for i := range 3 {
		res, err := d.Deliver(ctx, &fanbridge.Event{ID: fmt.Sprint("bad-", i), Data: []byte(`{}`)})
		require.NoError(t, err)
		require.Len(t, res.Sinks, 1)
		assert.Equal(t, dlq.ConditionAttempts, res.Sinks[0].Condition)
	}
	res, err := d.Deliver(ctx, &fanbridge.Event{ID: "good", Data: []byte(`{}`)})
	require.NoError(t, err)
	require.Len(t, res.Sinks, 1)
	assert.Equal(t, fanout.Delivered, res.Sinks[0].Outcome, "after 9 refusals in a row: condition %q", res.Sinks[0].Condition)
	assert.Equal(t, "closed", d.Stats()[0].Breaker)
}
