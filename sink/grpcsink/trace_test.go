package grpcsink_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/sink"
)

// A Server's handler continues the trace of the delivery that reached it: the call's traceparent
// and tracestate (the sender's attempt span) replace the event's own trace metadata and are the
// remote parent in the handler's context, as a Kafka consumer gets them from EventFromRecord. A
// call without trace context leaves the event's as it was sent.
func TestServerHandlerContinuesTheDeliverysTrace(t *testing.T) {
	type seen struct {
		md     map[string]string
		parent trace.SpanContext
	}
	var mu sync.Mutex
	var got []seen
	target := startServer(t, sink.Func(func(ctx context.Context, e *fanbridge.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, seen{md: e.Metadata, parent: trace.SpanContextFromContext(ctx)})
		return nil
	}))
	s := newSink(t, target)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	const sent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	e := &fanbridge.Event{ID: "e1", Type: "t", Data: []byte(`{}`), Metadata: map[string]string{
		fanbridge.MetaTraceparent: sent, fanbridge.MetaTracestate: "sender=1", "k": "v"}}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ts, err := trace.ParseTraceState("attempt=2")
	require.NoError(t, err)
	attempt := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled, TraceState: ts})
	require.NoError(t, s.Send(trace.ContextWithSpanContext(ctx, attempt), e))
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "e2", Type: "t", Data: []byte(`{}`),
		Metadata: map[string]string{fanbridge.MetaTraceparent: sent}}))
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "e3", Type: "t", Data: []byte(`{}`)}))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 3)
	assert.Equal(t, map[string]string{
		fanbridge.MetaTraceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		fanbridge.MetaTracestate:  "attempt=2",
		"k":                       "v",
	}, got[0].md, "the attempt's trace context, not the one the event was sent with")
	assert.True(t, got[0].parent.IsRemote())
	assert.Equal(t, tid, got[0].parent.TraceID())
	assert.Equal(t, sid, got[0].parent.SpanID())
	assert.Equal(t, "attempt=2", got[0].parent.TraceState().String())

	// Without a span, the sender sends the event's own trace context, which the consumer keeps.
	assert.Equal(t, sent, got[1].md[fanbridge.MetaTraceparent])
	assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", got[1].parent.TraceID().String())
	assert.Empty(t, got[2].md)
	assert.False(t, got[2].parent.IsValid())
}
