package fanout_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
	"github.com/fanbridge/fanbridge/sink"
)

// A wait that comes with a refusal (sink.Refused; kafkasink's random wait that parts the events
// of a refused batch) is about the sink's next attempt, not the sender's: a DeliveryError does not
// carry it, so an intake answers with its own configured wait (the eventbridge Handler's
// WithRetryAfter). A wait asked for without the mark still counts, beside a refusal's.
func TestRefusalWaitIsNotTheSendersWait(t *testing.T) {
	refusedAfter := func(d time.Duration) func(*fanbridge.Event, int) error {
		return func(*fanbridge.Event, int) error { return sink.Refused(retry.After(errBoom, d)) }
	}
	tests := []struct {
		name     string
		fail     map[string]func(*fanbridge.Event, int) error
		wantWait time.Duration // 0: none carried
	}{
		{"a refusal's wait", map[string]func(*fanbridge.Event, int) error{
			"a": refusedAfter(5 * time.Millisecond),
		}, 0},
		{"a wait on the mark", map[string]func(*fanbridge.Event, int) error{
			"a": func(*fanbridge.Event, int) error { return retry.After(sink.Refused(errBoom), 5*time.Millisecond) },
		}, 0},
		{"a refusal's wait beside a wait asked for", map[string]func(*fanbridge.Event, int) error{
			"a": refusedAfter(time.Minute),
			"b": func(*fanbridge.Event, int) error { return retry.After(errBoom, 2*time.Second) },
		}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := retrytest.NewClock(epoch)
			autoAdvance(t, clk)
			var sinks []fanout.SinkConfig
			var names []string
			for _, name := range []string{"a", "b"} {
				s := newRecSink()
				s.fail = tt.fail[name]
				sinks = append(sinks, fanout.SinkConfig{Name: name, Sink: s,
					Retry: retry.Policy{MaxAttempts: 2, MaxRetryAfter: time.Hour}})
				names = append(names, name)
			}
			d := newDispatcher(t, fanout.Config{
				Sinks:  sinks,
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: names}},
			}, fanout.WithClock(clk))

			err := d.Dispatch(testContext(t), event("e1", "x"))

			require.ErrorIs(t, err, fanout.ErrUndelivered)
			require.ErrorIs(t, err, fanout.ErrNoDLQ)
			wait, ok := retry.RetryAfter(err)
			assert.Equal(t, tt.wantWait != 0, ok, "wait %v", wait)
			assert.Equal(t, tt.wantWait, wait)
		})
	}
}
