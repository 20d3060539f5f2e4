package eventbridge_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

// A JSON string with escaped characters is the same string: .NET's default encoder writes "+" as
// \u002B, so an RFC 3339 offset can arrive as "...52\u002B02:00". Every time field reads it as
// the time it is.
func TestEscapedTimesAreTheirTimes(t *testing.T) {
	want := time.Date(2021, 6, 25, 13, 11, 52, 0, time.UTC)
	const escaped = `2021-06-25T15:11:52\u002B02:00`
	for name, body := range map[string]string{
		"webhook attributes timestamp": `{"id":"e-1","eventType":"x","timestamp":"` + escaped + `","source":"s","attributes":{}}`,
		"open messaging channel.time":  `{"id":"m","channel":{"platform":"Open","time":"` + escaped + `"},"type":"Text","direction":"Outbound"}`,
		"notification eventTime":       `{"topicName":"v2.users.x.presence","eventBody":{"eventTime":"` + escaped + `"}}`,
		"every character escaped": `{"topicName":"v2.users.x.presence","eventBody":{"eventTime":"` +
			strings.NewReplacer("0", `\u0030`, "T", `\u0054`, ":", `\u003a`, "+", `\u002b`).Replace("2021-06-25T15:11:52+02:00") + `"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			e, err := eventbridge.Decode([]byte(body), "application/json")
			require.NoError(t, err)
			assert.True(t, e.Time.Equal(want), "time %v, want %v", e.Time, want)

			var got time.Time
			h, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
				got = e.Time
				return nil
			}))
			require.NoError(t, err)
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			assert.True(t, got.Equal(want), "time %v, want %v", got, want)
		})
	}
	tm, ok := eventbridge.EventTime(json.RawMessage(`{"eventTime":"` + escaped + `"}`))
	assert.True(t, ok)
	assert.True(t, tm.Equal(want))
	// A string too long to be a time, escaped or not, is no time.
	_, ok = eventbridge.EventTime(json.RawMessage(`{"eventTime":"` + strings.Repeat(`\u0032`, 100) + `"}`))
	assert.False(t, ok)
}
