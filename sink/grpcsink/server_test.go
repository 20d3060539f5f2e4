package grpcsink_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
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
