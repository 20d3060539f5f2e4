package grpcsink_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracetest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

func TestSendDeliversEveryField(t *testing.T) {
	full := sampleEvent(t)
	bare := &fanbridge.Event{ID: "only-an-id"}
	oddID := full.Clone()
	oddID.ID = "événement-\x01"
	delID := full.Clone()
	delID.ID = "id-\x7f"
	badTrace := full.Clone()
	badTrace.Metadata[fanbridge.MetaTraceparent] = "00-\u00e9"

	// Metadata names are spelled out, not taken from the package's constants: the package doc
	// promises them to consumers.
	tests := []struct {
		name      string
		event     *fanbridge.Event
		opts      []grpcsink.Option
		wantRaw   bool
		wantName  string
		wantMD    map[string]string // gRPC metadata expected to arrive; "" means absent
		wantIDBin bool
	}{
		{
			name: "every field and trace context", event: full, wantRaw: true,
			wantMD: map[string]string{
				"fanbridge-event-id": full.ID,
				"traceparent":        full.Metadata[fanbridge.MetaTraceparent],
				"tracestate":         full.Metadata[fanbridge.MetaTracestate],
			},
		},
		{
			name: "without raw, with a name", event: full, opts: []grpcsink.Option{grpcsink.WithoutRaw(), grpcsink.WithName("interactions")},
			wantName: "interactions",
			wantMD:   map[string]string{"fanbridge-event-id": full.ID, "traceparent": full.Metadata[fanbridge.MetaTraceparent]},
		},
		{
			name: "empty fields stay empty", event: bare, wantRaw: true,
			wantMD: map[string]string{"fanbridge-event-id": "only-an-id", "traceparent": "", "tracestate": ""},
		},
		{
			name: "id that is not ASCII travels as binary metadata", event: oddID, wantRaw: true, wantIDBin: true,
			wantMD: map[string]string{"fanbridge-event-id": ""},
		},
		{
			name: "id holding DEL, not printable, travels as binary metadata", event: delID, wantRaw: true, wantIDBin: true,
			wantMD: map[string]string{"fanbridge-event-id": ""},
		},
		{
			name: "invalid trace header is left out with its tracestate, not fatal", event: badTrace, wantRaw: true,
			wantMD: map[string]string{"traceparent": "", "tracestate": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := newRecorder()
			s := newSink(t, startServer(t, rec), tt.opts...)
			before := tt.event.Clone()

			require.NoError(t, s.Send(testContext(t), tt.event))

			got := rec.events()
			require.Len(t, got, 1)
			want := tt.event.Clone()
			if !tt.wantRaw {
				want.Raw = nil
			}
			assertSameEvent(t, want, got[0].event)
			assertSameEvent(t, before, tt.event) // Send must not modify the event
			assert.Equal(t, tt.wantName, got[0].sinkName)
			for k, v := range tt.wantMD {
				if v == "" {
					assert.Empty(t, got[0].md.Get(k), "metadata %q", k)
				} else {
					assert.Equal(t, []string{v}, got[0].md.Get(k), "metadata %q", k)
				}
			}
			if tt.wantIDBin {
				assert.Equal(t, []string{tt.event.ID}, got[0].md.Get("fanbridge-event-id-bin"))
			}
		})
	}
}

// A Send under a span (fanout's attempt span, when it traces) carries that span's trace context
// instead of the one the event came with, so the consumer's spans hang under the delivery.
func TestSendCarriesTheSpanOfSend(t *testing.T) {
	rec := newRecorder()
	s := newSink(t, startServer(t, rec))
	e := sampleEvent(t)
	require.NoError(t, s.Send(tracetest.WithAttemptSpan(t, testContext(t)), e))

	got := rec.events()
	require.Len(t, got, 1)
	assert.Equal(t, []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01"}, got[0].md.Get(fanbridge.MetaTraceparent))
	assert.Equal(t, []string{"fb=attempt"}, got[0].md.Get(fanbridge.MetaTracestate))
	// The body is the event as it came; a Server hands its handler the delivery's trace context
	// in place of the event's (see TestServerHandlerContinuesTheDeliverysTrace).
	assert.NotEqual(t, e.Metadata[fanbridge.MetaTraceparent], got[0].event.Metadata[fanbridge.MetaTraceparent])
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01", got[0].event.Metadata[fanbridge.MetaTraceparent])
}

func TestTargetForms(t *testing.T) {
	rec := newRecorder()
	addr := startServer(t, rec)
	for _, target := range []string{addr, "dns:///" + addr, "passthrough:///" + addr, addr + ", " + addr} {
		t.Run(target, func(t *testing.T) {
			s := newSink(t, target)
			require.NoError(t, s.Send(testContext(t), &fanbridge.Event{ID: target}))
		})
	}
	assert.Equal(t, 4, rec.count())
}

func TestConstructorsRefuseBadInput(t *testing.T) {
	conn, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	noopCall := func(context.Context, *fanbridge.Event, ...grpc.CallOption) (*fanbridge.Event, error) { return nil, nil }
	noopConvert := func(e *fanbridge.Event) (*fanbridge.Event, error) { return e, nil }

	tests := []struct {
		name  string
		build func() error
		want  error
	}{
		{"empty target", func() error { _, err := grpcsink.New(" ", grpcsink.WithInsecure()); return err }, grpcsink.ErrInvalidTarget},
		{"empty address in list", func() error { _, err := grpcsink.New("a:1,,b:2", grpcsink.WithInsecure()); return err }, grpcsink.ErrInvalidTarget},
		{"list without ports", func() error { _, err := grpcsink.New("a,b", grpcsink.WithInsecure()); return err }, grpcsink.ErrInvalidTarget},
		{"URI in list", func() error { _, err := grpcsink.New("dns:///a:1,b:2", grpcsink.WithInsecure()); return err }, grpcsink.ErrInvalidTarget},
		// net.SplitHostPort takes "unix" for a host and the path for a port.
		{"unix URI in list", func() error {
			_, err := grpcsink.New("unix:///run/consumer.sock,127.0.0.1:1", grpcsink.WithInsecure())
			return err
		}, grpcsink.ErrInvalidTarget},
		{"TLS and insecure", func() error {
			_, err := grpcsink.New("a:1", grpcsink.WithInsecure(), grpcsink.WithTLS(nil))
			return err
		}, grpcsink.ErrInvalidOption},
		{"negative call timeout", func() error { _, err := grpcsink.New("a:1", grpcsink.WithCallTimeout(-time.Second)); return err }, grpcsink.ErrInvalidOption},
		{"nil conn", func() error { _, err := grpcsink.NewFromConn(nil); return err }, grpcsink.ErrInvalidOption},
		{"conn with TLS option", func() error { _, err := grpcsink.NewFromConn(conn, grpcsink.WithTLS(nil)); return err }, grpcsink.ErrInvalidOption},
		{"conn with dial options", func() error { _, err := grpcsink.NewFromConn(conn, grpcsink.WithDialOptions()); return err }, grpcsink.ErrInvalidOption},
		{"adapt without call", func() error {
			_, err := grpcsink.Adapt[*fanbridge.Event, *fanbridge.Event](nil, noopConvert)
			return err
		}, grpcsink.ErrInvalidOption},
		{"adapt without convert", func() error { _, err := grpcsink.Adapt(noopCall, nil); return err }, grpcsink.ErrInvalidOption},
		{"adapt with insecure", func() error { _, err := grpcsink.Adapt(noopCall, noopConvert, grpcsink.WithInsecure()); return err }, grpcsink.ErrInvalidOption},
		{"adapt with name", func() error { _, err := grpcsink.Adapt(noopCall, noopConvert, grpcsink.WithName("x")); return err }, grpcsink.ErrInvalidOption},
		{"adapt with negative timeout", func() error {
			_, err := grpcsink.Adapt(noopCall, noopConvert, grpcsink.WithCallTimeout(-1))
			return err
		}, grpcsink.ErrInvalidOption},
		{"name not UTF-8", func() error { _, err := grpcsink.New("a:1", grpcsink.WithName("\xff")); return err }, grpcsink.ErrInvalidOption},
		{"server without handler", func() error { _, err := grpcsink.NewServer(nil); return err }, grpcsink.ErrInvalidOption},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.build()
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
		})
	}
}

func TestSendNilEventIsPermanent(t *testing.T) {
	s := newSink(t, "127.0.0.1:1")
	err := s.Send(testContext(t), nil)
	assert.ErrorIs(t, err, grpcsink.ErrNilEvent)
	assert.True(t, retry.IsPermanent(err))
}

func TestSendRefusesWhatProtoCannotEncode(t *testing.T) {
	rec := newRecorder()
	s := newSink(t, startServer(t, rec))
	for name, e := range map[string]*fanbridge.Event{
		"ID":             {ID: "bad-\xff"},
		"Type":           {ID: "1", Type: "\xc3\x28"},
		"Topic":          {ID: "1", Topic: "\xed\xa0\x80"},
		"Source":         {ID: "1", Source: "\xff"},
		"metadata key":   {ID: "1", Metadata: map[string]string{"\xff": "v"}},
		"metadata value": {ID: "1", Metadata: map[string]string{"k": "\xfe"}},
	} {
		t.Run(name, func(t *testing.T) {
			err := s.Send(testContext(t), e)
			assert.ErrorIs(t, err, grpcsink.ErrInvalidEvent)
			assert.True(t, retry.IsPermanent(err), "encoding it again fails again")
		})
	}
	assert.Zero(t, rec.count())
	// Bytes fields carry anything.
	require.NoError(t, s.Send(testContext(t), &fanbridge.Event{ID: "ok", Data: []byte{0xff}, Raw: []byte{0xfe}}))
}

func TestClose(t *testing.T) {
	t.Run("send after close", func(t *testing.T) {
		rec := newRecorder()
		s := newSink(t, startServer(t, rec))
		require.NoError(t, s.Send(testContext(t), &fanbridge.Event{ID: "1"}))
		require.NoError(t, s.Close())
		require.NoError(t, s.Close(), "Close is idempotent")
		err := s.Send(testContext(t), &fanbridge.Event{ID: "2"})
		assert.ErrorIs(t, err, sink.ErrClosed)
		assert.Equal(t, 1, rec.count())
	})

	// A closed sink refuses every event alike, retryably: an event it could never encode is no
	// reason to dead-letter it during shutdown, where another sink may take it.
	t.Run("send after close of an event proto cannot encode", func(t *testing.T) {
		s := newSink(t, startServer(t, newRecorder()))
		require.NoError(t, s.Close())
		err := s.Send(testContext(t), &fanbridge.Event{ID: "bad-\xff"})
		assert.ErrorIs(t, err, sink.ErrClosed)
		assert.False(t, retry.IsPermanent(err), "%v", err)
	})

	t.Run("waits for sends in flight", func(t *testing.T) {
		ctx := testContext(t)
		entered, release := make(chan struct{}), make(chan struct{})
		blocker := sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
			if e.ID == "slow" {
				close(entered)
				<-release
			}
			return nil
		})
		s := newSink(t, startServer(t, blocker))
		sent := make(chan error, 1)
		go func() { sent <- s.Send(ctx, &fanbridge.Event{ID: "slow"}) }()
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatal("the slow send never reached the server")
		}
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		// Once Close has begun, new Sends are refused while the slow one is still being served.
		require.Eventually(t, func() bool {
			return s.Send(ctx, &fanbridge.Event{ID: "late"}) != nil
		}, 5*time.Second, time.Millisecond)
		select {
		case <-closed:
			t.Fatal("Close returned while a Send was in flight")
		default:
		}
		close(release)
		require.NoError(t, recv(t, sent), "the send in flight completes on its connection")
		require.NoError(t, recv(t, closed))
	})

	t.Run("never closes a caller's connection", func(t *testing.T) {
		rec := newRecorder()
		conn, err := grpc.NewClient(startServer(t, rec), grpc.WithTransportCredentials(insecure.NewCredentials()))
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		first, err := grpcsink.NewFromConn(conn)
		require.NoError(t, err)
		require.NoError(t, first.Send(testContext(t), &fanbridge.Event{ID: "1"}))
		require.NoError(t, first.Close())
		assert.ErrorIs(t, first.Send(testContext(t), &fanbridge.Event{ID: "2"}), sink.ErrClosed)

		second, err := grpcsink.NewFromConn(conn)
		require.NoError(t, err)
		require.NoError(t, second.Send(testContext(t), &fanbridge.Event{ID: "3"}), "the shared connection is still open")
		assert.Equal(t, 2, rec.count())
	})
}
