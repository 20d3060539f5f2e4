package filter_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/filter"
)

// TestSamePatternWhicheverIntake: a Genesys event that arrives in an EventBridge envelope and the
// same event as the bare notification the WebSocket API sends are routed alike by patterns on the
// envelope's detail-type and detail, while a pattern on a member only the real envelope has
// (source) tells them apart.
func TestSamePatternWhicheverIntake(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "v2.detail.events.conversation.customer.end.json"))
	require.NoError(t, err)
	viaEventBridge, err := eventbridge.Decode(body, "application/json")
	require.NoError(t, err)
	var envelope struct {
		Detail json.RawMessage `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(body, &envelope))
	viaWebSocket, err := eventbridge.DecodeNotification(envelope.Detail)
	require.NoError(t, err)
	require.Equal(t, "notification", viaWebSocket.Meta(fanbridge.MetaFormat))

	for _, tc := range []struct {
		pattern           string
		eventBridge, bare bool
	}{
		{`{"detail-type":[{"suffix":".customer.end"}]}`, true, true},
		{`{"detail-type":["v2.detail.events.conversation.{id}.customer.end"],"detail":{"eventBody":{"mediaType":["CHAT"]}}}`, true, true},
		{`{"detail":{"topicName":[{"wildcard":"v2.detail.events.conversation.*.customer.end"}]}}`, true, true},
		{`{"detail":{"eventBody":{"interactingDurationMs":[{"numeric":[">=",60000]}]}}}`, true, true},
		{`{"detail":{"metadata":{"CorrelationId":[{"exists":true}]}}}`, true, true},
		{`{"detail":{"eventBody":{"mediaType":["VOICE"]}}}`, false, false},
		{`{"source":[{"prefix":"aws.partner/genesys.com"}]}`, true, false},
		// Only the envelope as received has a version: the view is not what the EventBridge
		// event is matched against.
		{`{"version":["0"]}`, true, false},
	} {
		t.Run(tc.pattern, func(t *testing.T) {
			p, err := filter.ParsePattern([]byte(tc.pattern))
			require.NoError(t, err)
			assert.Equal(t, tc.eventBridge, p.Match(viaEventBridge), "EventBridge envelope")
			assert.Equal(t, tc.bare, p.Match(viaWebSocket), "bare notification")

			m := filter.NewMatcher()
			require.NoError(t, m.Add("r", []byte(tc.pattern)))
			assert.Equal(t, tc.eventBridge, len(m.Match(viaEventBridge, nil)) == 1, "Matcher, EventBridge envelope")
			assert.Equal(t, tc.bare, len(m.Match(viaWebSocket, nil)) == 1, "Matcher, bare notification")
		})
	}
}
