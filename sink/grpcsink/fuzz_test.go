package grpcsink_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/fanbridge/fanbridge"
	fanbridgev1 "github.com/fanbridge/fanbridge/proto/fanbridge/v1"
	"github.com/fanbridge/fanbridge/sink/grpcsink"
)

// FuzzFromProto feeds arbitrary request bytes through what a Server does with them: decode, then
// convert to an Event. Whatever decodes must convert without panicking, or be refused with an
// error, and an Event it yields must survive ToProto and FromProto unchanged.
func FuzzFromProto(f *testing.F) {
	seed := func(e *fanbridge.Event, name string) {
		b, err := proto.Marshal(&fanbridgev1.DeliverRequest{Event: grpcsink.ToProto(e), Sink: name})
		require.NoError(f, err)
		f.Add(b)
	}
	seed(sampleEvent(f), "interactions")
	seed(&fanbridge.Event{ID: "minimal"}, "")
	seed(&fanbridge.Event{ID: "ünïcode", Data: []byte("not json \xff"), Raw: []byte{0}, Metadata: map[string]string{"": ""}}, "x")
	f.Add([]byte{0x0a, 0x02, 0x2a, 0x00})                         // an event with an empty time
	f.Add([]byte{0x0a, 0x06, 0x2a, 0x04, 0x10, 0xff, 0xff, 0x03}) // a time with out-of-range nanos

	f.Fuzz(func(t *testing.T, b []byte) {
		var req fanbridgev1.DeliverRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			return
		}
		e, err := grpcsink.FromProto(req.GetEvent())
		if err != nil {
			return
		}
		again, err := grpcsink.FromProto(grpcsink.ToProto(e))
		require.NoError(t, err)
		assert.Equal(t, e.ID, again.ID)
		assert.True(t, e.Time.Equal(again.Time), "time %v became %v", e.Time, again.Time)
		assert.Equal(t, e.Data, again.Data)
		assert.Equal(t, e.Metadata, again.Metadata)
		assert.Equal(t, e.Raw, again.Raw)
	})
}

// FuzzRefusedSizes reads arbitrary status messages as grpc-go's receive refusals: none panics,
// what is read is in range, and a refusal written the way grpc-go writes it reads back as the
// numbers it holds.
func FuzzRefusedSizes(f *testing.F) {
	for _, m := range []string{
		"grpc: received message larger than max (131075 vs. 65536)",
		"grpc: received message larger than max length allowed on current machine (9 vs. 8)",
		"grpc: message after decompression larger than max (70000 vs. 65536)",
		"grpc: received message after decompression larger than max 65536",
		"grpc: received message larger than max (-1 vs. 2)",
		"grpc: received message larger than max (1 vs. 2",
		"",
	} {
		f.Add(m, int64(0), int64(0))
	}
	f.Fuzz(func(t *testing.T, msg string, n, m int64) {
		size, limit, ok := grpcsink.RefusedSizes(msg)
		if ok && (size < -1 || limit < 0) {
			t.Fatalf("%q read as size %d, limit %d", msg, size, limit)
		}
		if n < 0 || m < 0 {
			return
		}
		size, limit, ok = grpcsink.RefusedSizes(fmt.Sprintf("grpc: received message larger than max (%d vs. %d)", n, m))
		require.True(t, ok)
		assert.Equal(t, [2]int64{n, m}, [2]int64{size, limit})
		size, limit, ok = grpcsink.RefusedSizes(fmt.Sprintf("grpc: received message after decompression larger than max %d", m))
		require.True(t, ok)
		assert.Equal(t, [2]int64{-1, m}, [2]int64{size, limit})
	})
}
