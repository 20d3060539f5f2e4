package memsink_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/testwait"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/memsink"
	"github.com/fanbridge/fanbridge/sink/sinktest"
)

func harness() sinktest.Harness {
	return sinktest.Harness{
		Features: sinktest.Features{
			ReadBack: true, Metadata: true, Raw: true, Ordered: true,
			TransientFailure: true, PermanentFailure: true, Hang: true, Close: true, Batch: true,
		},
		Open: func(tb testing.TB) sinktest.Instance {
			s := memsink.New()
			fail := func(err error) func() (heal func()) {
				return func() func() {
					s.FailFunc(func(*fanbridge.Event) error { return err })
					return func() { s.FailFunc(nil) }
				}
			}
			return sinktest.Instance{
				Sink: s,
				Received: func(context.Context) ([]*fanbridge.Event, error) {
					return s.Events(), nil
				},
				FailTransient: fail(errors.New("destination unavailable")),
				FailPermanent: fail(retry.Permanent(errors.New("destination rejects the event"))),
				Hang:          s.Hold,
				Attempts:      s.Attempts,
			}
		},
	}
}

func TestConformance(t *testing.T) {
	sinktest.Run(t, harness())
}

func BenchmarkConformance(b *testing.B) {
	sinktest.RunBenchmarks(b, harness())
}

// testTimeout bounds every wait, so that a regression fails instead of hanging.
const testTimeout = 20 * time.Second

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// recv returns the next value on ch, and fails the test when none comes within testTimeout.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	return testwait.Recv(t, ch, testTimeout)
}

func event(id string) *fanbridge.Event {
	return &fanbridge.Event{
		ID:       id,
		Type:     "v2.users.{id}.presence",
		Data:     json.RawMessage(`{"primary":true}`),
		Metadata: map[string]string{"k": "v"},
		Raw:      []byte(`{"id":"` + id + `"}`),
	}
}

func TestRecordsCopies(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	e := event("a")
	require.NoError(t, s.Send(ctx, e))

	// Changing the sent event must not change the record.
	e.Data[2] = 'X'
	e.Metadata["k"] = "changed"
	e.Raw[0] = '['
	e.ID = "changed"

	got := s.Events()
	require.Len(t, got, 1)
	assert.Equal(t, event("a"), got[0])

	// Changing what Events returned must not change the record either.
	got[0].Data[2] = 'Y'
	got[0].Metadata["k"] = "again"
	assert.Equal(t, event("a"), s.Events()[0])
}

func TestFailNext(t *testing.T) {
	permanent := retry.Permanent(errors.New("bad"))
	tests := []struct {
		name    string
		n       int
		err     error
		wantErr error
		class   retry.Class
	}{
		{name: "default error is retryable", n: 2, err: nil, wantErr: memsink.ErrInjected, class: retry.ClassRetryable},
		{name: "permanent error kept", n: 1, err: permanent, wantErr: permanent, class: retry.ClassPermanent},
		{name: "zero clears", n: 0, err: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			s := memsink.New()
			s.FailNext(tt.n, tt.err)
			for i := range tt.n {
				err := s.Send(ctx, event("fail"))
				require.ErrorIs(t, err, tt.wantErr, "send %d", i)
				assert.Equal(t, tt.class, retry.Classify(err))
			}
			require.NoError(t, s.Send(ctx, event("ok")))
			assert.Equal(t, 1, s.Len(), "failed sends record nothing")
			assert.Equal(t, tt.n+1, s.Attempts())
		})
	}
}

func TestFailFunc(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	reject := errors.New("odd")
	s.FailFunc(func(e *fanbridge.Event) error {
		if e.ID == "b" {
			return reject
		}
		return nil
	})
	err := s.SendBatch(ctx, []*fanbridge.Event{event("a"), event("b"), event("c")})
	var be *sink.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, 3)
	assert.NoError(t, be.Errs[0])
	assert.ErrorIs(t, be.Errs[1], reject)
	assert.NoError(t, be.Errs[2])

	s.FailFunc(nil)
	require.NoError(t, s.Send(ctx, event("b")))
	ids := []string{}
	for _, e := range s.Events() {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"a", "c", "b"}, ids)
}

func TestHoldAndWait(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	release := s.Hold()
	inner := s.Hold() // holds nest

	sent := make(chan error, 1)
	go func() { sent <- s.Send(ctx, event("held")) }()

	// Wait with a short context returns what is there and the context's error.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	got, err := s.Wait(short, 1)
	cancel()
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Empty(t, got)

	release()
	release() // twice is harmless
	select {
	case err := <-sent:
		t.Fatalf("Send returned %v while a hold remained", err)
	default:
	}
	inner()
	got, err = s.Wait(ctx, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "held", got[0].ID)
	require.NoError(t, recv(t, sent))
}

func TestHeldSendHonoursContext(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	release := s.Hold()
	defer release()
	sendCtx, cancel := context.WithCancel(ctx)
	result := make(chan error, 1)
	go func() { result <- s.Send(sendCtx, event("x")) }()
	// Cancel only once Send is past its first check of ctx, so that the hold is what it waits on.
	require.Eventually(t, func() bool { return s.Attempts() == 1 }, testTimeout, time.Millisecond)
	cancel()
	err := recv(t, result)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, retry.ClassCanceled, retry.Classify(err))
	assert.Zero(t, s.Len())
}

func TestCloseReleasesHeldSendWithErrClosed(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	release := s.Hold()
	result := make(chan error, 1)
	go func() { result <- s.Send(ctx, event("x")) }()
	// Close only once Send is past its first check of closing, so that it is held when Close comes.
	require.Eventually(t, func() bool { return s.Attempts() == 1 }, testTimeout, time.Millisecond)
	require.NoError(t, s.Close())
	release()
	require.ErrorIs(t, recv(t, result), sink.ErrClosed)
	require.NoError(t, s.Close())
}

func TestWaitWakesOnConcurrentSends(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() { assert.NoError(t, s.Send(ctx, event(string(rune('a'+i%26))))) })
	}
	got, err := s.Wait(ctx, 50)
	require.NoError(t, err)
	assert.Len(t, got, 50)
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	recv(t, done)
}

// Attempts counts every call, those refused at once included, so that a retry test counting
// attempts is not off by one when a context ends between two of them.
func TestAttemptsCountsCallsRefusedAtOnce(t *testing.T) {
	s := memsink.New()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.Error(t, s.Send(done, event("a")))
	require.Error(t, s.Send(testContext(t), nil))
	assert.Equal(t, 2, s.Attempts())
	assert.Zero(t, s.Len())
}

func TestReset(t *testing.T) {
	ctx := testContext(t)
	s := memsink.New()
	require.NoError(t, s.Send(ctx, event("a")))
	s.FailNext(5, nil)
	s.Reset()
	assert.Zero(t, s.Len())
	assert.Zero(t, s.Attempts())
	require.NoError(t, s.Send(ctx, event("b")), "Reset clears injected failures")
}

func TestNilEventIsPermanent(t *testing.T) {
	err := memsink.New().Send(testContext(t), nil)
	assert.True(t, retry.IsPermanent(err))
}
