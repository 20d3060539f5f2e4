package eventbridge_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

// queuingDispatcher accepts every event and says through Queuer whether it only queued it, as an
// Async fanout.Dispatcher does. It is a value type: a Dispatcher need not be a pointer.
type queuingDispatcher struct {
	queues bool
	asked  *atomic.Int32
}

func (queuingDispatcher) Dispatch(context.Context, *fanbridge.Event) error { return nil }

func (d queuingDispatcher) Queues() bool {
	d.asked.Add(1)
	return d.queues
}

var _ eventbridge.Queuer = queuingDispatcher{}

// A Dispatcher that reports it queues is answered and counted "queued" without
// WithQueuingDispatcher; the option still turns queuing on for one that reports it delivers, and
// never turns it off. Queues is asked once, when the Handler is built.
func TestQueuerDetected(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")
	tests := []struct {
		name     string
		queues   bool
		explicit bool
		want     string
	}{
		{"queues", true, false, "queued"},
		{"delivers", false, false, "delivered"},
		{"delivers, option set", false, true, "queued"},
		{"queues, option set", true, true, "queued"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reader := sdkmetric.NewManualReader()
			opts := []eventbridge.Option{eventbridge.WithMeterProvider(
				sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))}
			if tt.explicit {
				opts = append(opts, eventbridge.WithQueuingDispatcher())
			}
			d := queuingDispatcher{queues: tt.queues, asked: new(atomic.Int32)}
			h := newHandler(t, d, opts...)
			for range 2 {
				w := post(h, body)
				require.Equal(t, http.StatusOK, w.Code)
				assert.JSONEq(t, `{"status":"`+tt.want+`","id":"6efd5506-3fd6-09a1-5599-09ae48bd6dd8"}`,
					w.Body.String())
			}
			assert.LessOrEqual(t, d.asked.Load(), int32(1), "Queues asked per request")

			var rm metricdata.ResourceMetrics
			require.NoError(t, reader.Collect(context.Background(), &rm))
			outcomes := map[string]int64{}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if data, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "fanbridge.eventbridge.dispatched" {
						for _, dp := range data.DataPoints {
							v, _ := dp.Attributes.Value("outcome")
							outcomes[v.Emit()] += dp.Value
						}
					}
				}
			}
			assert.Equal(t, map[string]int64{tt.want: 2}, outcomes)
		})
	}
}
