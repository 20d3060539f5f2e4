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

// TestViewRefusesDataThatIsNotOneValue: an event matched through the EventBridge-shaped view
// whose Data is not exactly one JSON value matches nothing. Pasted into the view as it is, the
// Data below would close eventBody early and add a detail-type of its own.
func TestViewRefusesDataThatIsNotOneValue(t *testing.T) {
	injected := `{"detail-type":["v2.admin"]}`
	for _, tc := range []struct {
		name  string
		data  string
		match bool
	}{
		{"one object", `{"a":1}`, true},
		{"blanks around one value", " \n[1,2]\t", true},
		{"a string", `"x"`, true},
		{"closes eventBody and adds fields", `1},"detail-type":"v2.admin","z":{"a":1`, false},
		{"two values", `{"a":1} {"b":2}`, false},
		{"cut short", `{"a":`, false},
		{"not JSON", `hello`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := &fanbridge.Event{
				ID: "1", Type: "v2.admin", Data: json.RawMessage(tc.data),
				Metadata: map[string]string{fanbridge.MetaFormat: "webhook"},
			}
			p, err := filter.ParsePattern([]byte(injected))
			require.NoError(t, err)
			assert.Equal(t, tc.match, p.Match(e), "Pattern")
			m := filter.NewMatcher()
			require.NoError(t, m.Add("r", []byte(injected)))
			assert.Equal(t, tc.match, len(m.Match(e, nil)) == 1, "Matcher")

			// The forged field must not match where the real one differs.
			e.Type = "v2.users.{id}.presence"
			assert.False(t, p.Match(e), "Pattern, forged detail-type")
			assert.Empty(t, m.Match(e, nil), "Matcher, forged detail-type")
		})
	}
}
