package fanout_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
)

var _ eventbridge.Queuer = (*fanout.Dispatcher)(nil)

// An eventbridge Handler in front of an Async Dispatcher tells the sender the event was queued,
// without being told so: "delivered" would claim what has not happened yet.
func TestHandlerAnswersQueuedForAsync(t *testing.T) {
	const body = `{"version":"0","id":"%s","detail-type":"t","source":"aws.partner/genesys.com/x",` +
		`"account":"123456789012","time":"2024-01-01T00:00:00Z","region":"us-east-1","resources":[],"detail":{}}`
	for _, tc := range []struct {
		mode fanout.Mode
		want string
	}{{fanout.Sync, `"status":"delivered"`}, {fanout.Async, `"status":"queued"`}} {
		t.Run(tc.want, func(t *testing.T) {
			d := newDispatcher(t, fanout.Config{
				Sinks:  []fanout.SinkConfig{{Name: "s", Sink: newRecSink()}},
				Routes: []fanout.Route{{Name: "r", Filter: fanout.All, Sinks: []string{"s"}}},
				DLQ:    &memDLQ{},
			}, fanout.WithMode(tc.mode))
			assert.Equal(t, tc.mode == fanout.Async, d.Queues())
			h, err := eventbridge.NewHandler(d)
			require.NoError(t, err)
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Replace(body, "%s", "e1", 1)))
			r.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), tc.want)
		})
	}
}
