package eventbridge_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/fanout"
	"github.com/fanbridge/fanbridge/signature"
	"github.com/fanbridge/fanbridge/sink"
)

// collected is a sink that keeps what it is sent.
type collected struct {
	mu     sync.Mutex
	events []*fanbridge.Event
}

func (c *collected) Send(_ context.Context, e *fanbridge.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, e)
	return nil
}

func (c *collected) data() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.events))
	for i, e := range c.events {
		out[i] = string(e.Data)
	}
	return out
}

// intake serves a Handler in front of a real fanout.Dispatcher, with its default deduplication
// (by event ID, for an hour), delivering every event to one sink; wrap puts middleware around the
// Handler. It returns the server's URL and the sink.
func intake(t *testing.T, wrap func(http.Handler) http.Handler) (string, *collected) {
	t.Helper()
	got := &collected{}
	d, err := fanout.New(fanout.Config{
		Sinks:  []fanout.SinkConfig{{Name: "all", Sink: sink.Func(got.Send)}},
		Routes: []fanout.Route{{Name: "all", Filter: fanout.All, Sinks: []string{"all"}}},
	})
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, d.Close(ctx))
	})
	h, err := eventbridge.NewHandler(d)
	require.NoError(t, err)
	var next http.Handler = h
	if wrap != nil {
		next = wrap(h)
	}
	srv := httptest.NewServer(next)
	t.Cleanup(srv.Close)
	return srv.URL, got
}

// A presence that goes AVAILABLE, AWAY, AVAILABLE again, posted without anything that tells the
// third post from a retry of the first: all three are delivered, none is taken for a duplicate
// (a 200 "duplicate" tells the sender it was handled, and it would never arrive).
func TestEventsWithEqualContentAndNothingToTellThemApartAreAllDelivered(t *testing.T) {
	for name, shape := range map[string]string{
		"webhook":      `{"event":"v2.users.{id}.presence","data":{"presenceDefinition":{"systemPresence":"%s"}}}`,
		"notification": `{"topicName":"v2.users.8b0e1a9e-3f4c-4a43-9f7c-1c2d3e4f5a6b.presence","version":"2","eventBody":{"presenceDefinition":{"systemPresence":"%s"}}}`,
		// A correlation id or a timestamp that is null or empty tells nothing apart either.
		"webhook with empty metadata":           `{"event":"v2.users.{id}.presence","data":{"presenceDefinition":{"systemPresence":"%s"}},"metadata":{"correlationId":"","timestamp":null}}`,
		"notification with empty CorrelationId": `{"topicName":"v2.users.8b0e1a9e-3f4c-4a43-9f7c-1c2d3e4f5a6b.presence","version":"2","eventBody":{"presenceDefinition":{"systemPresence":"%s"}},"metadata":{"CorrelationId":""}}`,
	} {
		t.Run(name, func(t *testing.T) {
			url, got := intake(t, nil)
			var ids []string
			for _, presence := range []string{"AVAILABLE", "AWAY", "AVAILABLE"} {
				status, answer := sendSigned(t, url, []byte(strings.Replace(shape, "%s", presence, 1)), nil)
				require.Equal(t, http.StatusOK, status)
				assert.Equal(t, "delivered", answer["status"], "%v", answer)
				assert.Regexp(t, `^[0-9a-f]{32}$`, answer["id"])
				ids = append(ids, answer["id"])
			}
			assert.NotEqual(t, ids[0], ids[2])
			want := `{"presenceDefinition":{"systemPresence":"%s"}}`
			assert.Equal(t, []string{
				strings.Replace(want, "%s", "AVAILABLE", 1),
				strings.Replace(want, "%s", "AWAY", 1),
				strings.Replace(want, "%s", "AVAILABLE", 1),
			}, got.data())
		})
	}
}

// What tells events apart keeps deriving the ID from the content, so a redelivery deduplicates:
// a webhook's correlationId or timestamp, a notification's CorrelationId (which every WebSocket
// notification carries).
func TestEventsWithSomethingToTellThemApartKeepDerivedIDs(t *testing.T) {
	for _, body := range []string{
		`{"event":"x","data":{"s":"AVAILABLE"},"metadata":{"correlationId":"c-1"}}`,
		`{"event":"x","data":{"s":"AVAILABLE"},"metadata":{"timestamp":"2024-05-01T12:00:00Z"}}`,
		`{"event":"x","data":{"s":"AVAILABLE"},"metadata":{"time":1714564800000}}`,
		`{"topicName":"v2.users.u.presence","eventBody":{"s":"AVAILABLE"},"metadata":{"CorrelationId":"c-1"}}`,
	} {
		a, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		b, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		assert.Equal(t, a.ID, b.ID, body)
		assert.Regexp(t, `^[0-9a-f]{32}$`, a.ID)
	}
	body := readSample(t, "websocket.v2.users.activity.REPAIRED.json")
	a, err := eventbridge.DecodeNotification(body)
	require.NoError(t, err)
	b, err := eventbridge.DecodeNotification(body)
	require.NoError(t, err)
	assert.Equal(t, a.ID, b.ID, "a WebSocket notification's ID is derived from its CorrelationId")

	url, got := intake(t, nil)
	body = []byte(`{"event":"x","data":{"s":"AVAILABLE"},"metadata":{"correlationId":"c-1"}}`)
	status, answer := sendSigned(t, url, body, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "delivered", answer["status"])
	status, answer = sendSigned(t, url, body, nil)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "duplicate", answer["status"], "a redelivery")
	assert.Len(t, got.data(), 1)
}

// Signed with Standard Webhooks, a message carries the sender's id (webhook-id), the same on each
// of its retries and never reused: formats without an id of their own take the event ID from it.
// Two messages with equal bodies are both delivered, and a retry is a duplicate.
func TestStandardWebhooksMessageIDIsTheEventID(t *testing.T) {
	secret, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	now := time.Now()
	v, err := signature.StandardWebhooks([]string{secret}, signature.WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	sign := func(body []byte, id string, at time.Time) func(*http.Request) {
		return func(r *http.Request) {
			require.NoError(t, signature.SignStandardWebhooksRequest(r, id, at, body, secret))
		}
	}
	for name, body := range map[string]string{
		"webhook": `{"event":"v2.users.{id}.presence","data":{"presenceDefinition":{"systemPresence":"AVAILABLE"}}}`,
		// Equal correlation ids would make the same ID from the content: the sender's id decides.
		"webhook with metadata": `{"event":"v2.users.{id}.presence","data":{"presenceDefinition":{"systemPresence":"AVAILABLE"}},"metadata":{"correlationId":"c-1"}}`,
		"notification":          `{"topicName":"v2.users.8b0e1a9e-3f4c-4a43-9f7c-1c2d3e4f5a6b.presence","version":"2","eventBody":{"presenceDefinition":{"systemPresence":"AVAILABLE"}},"metadata":{"CorrelationId":"c-1"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			url, got := intake(t, signature.Verify(v))
			b := []byte(body)
			status, first := sendSigned(t, url, b, sign(b, "msg_2b0bZ1", now))
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "delivered", first["status"], "%v", first)
			status, second := sendSigned(t, url, b, sign(b, "msg_2b0bZ2", now))
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "delivered", second["status"], "another message with the same body: %v", second)
			assert.NotEqual(t, first["id"], second["id"])
			assert.Regexp(t, `^[0-9a-f]{32}$`, first["id"])

			// The sender's retry of the first message, signed again a little later.
			status, retry := sendSigned(t, url, b, sign(b, "msg_2b0bZ1", now.Add(30*time.Second)))
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, "duplicate", retry["status"], "%v", retry)
			assert.Len(t, got.data(), 2)
		})
	}
}

// Formats that carry an id of their own keep it, verified message id or not.
func TestOwnIDsWinOverTheMessageID(t *testing.T) {
	d := &recorder{}
	h := newHandler(t, d)
	ctx := signature.WithIdentity(context.Background(), signature.Identity{Scheme: signature.SchemeStandardWebhooks, MessageID: "msg_1"})
	for body, id := range map[string]string{
		string(readSample(t, "v2.conversations.transcription.json")):               "",
		`{"specversion":"1.0","id":"ce-1","source":"s","type":"t","data":{}}`:      "ce-1",
		`{"id":"evt-1","eventType":"t","timestamp":1649237504949,"attributes":{}}`: "evt-1",
		`{"id":"evt_1","type":"t","data":{}}`:                                      "evt_1",
	} {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)).WithContext(ctx)
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, http.StatusOK, w.Code, body)
		e, _ := d.last(t)
		want, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err)
		assert.Equal(t, want.ID, e.ID)
		if id != "" {
			assert.Equal(t, id, e.ID)
		}
	}
}

// Standard Webhooks payloads with an id of their own at the top level, the same type, timestamp
// and data: two events, both delivered, and the sender's retry of each is a duplicate.
func TestStandardWebhooksPayloadsWithDistinctIDsAreBothDelivered(t *testing.T) {
	url, got := intake(t, nil)
	bodies := []string{
		`{"id":"evt_1","type":"user.login","timestamp":"2024-05-01T12:00:00Z","data":{"user":"u1"}}`,
		`{"id":"evt_2","type":"user.login","timestamp":"2024-05-01T12:00:00Z","data":{"user":"u1"}}`,
	}
	for _, b := range bodies {
		status, answer := sendSigned(t, url, []byte(b), nil)
		require.Equal(t, http.StatusOK, status, "%v", answer)
		assert.Equal(t, "delivered", answer["status"], "%s", b)
	}
	for _, b := range bodies {
		_, answer := sendSigned(t, url, []byte(b), nil)
		assert.Equal(t, "duplicate", answer["status"], "a retry of %s", b)
	}
	events := got.all()
	require.Len(t, events, 2)
	assert.Equal(t, "evt_1", events[0].ID)
	assert.Equal(t, "evt_2", events[1].ID)
}

// Without an id, a payload's ID is derived from all of it: two that differ only in a member the
// decoder does not read are two events, and the same bytes again are a retry.
func TestStandardWebhooksPayloadsThatDifferAnywhereAreBothDelivered(t *testing.T) {
	url, got := intake(t, nil)
	bodies := []string{
		`{"type":"user.login","timestamp":"2024-05-01T12:00:00Z","data":{"user":"u1"},"session":"s1"}`,
		`{"type":"user.login","timestamp":"2024-05-01T12:00:00Z","data":{"user":"u1"},"session":"s2"}`,
		// An id that may not be an ID is the sender's data, and tells events apart like any.
		`{"id":41,"type":"user.login","data":{"user":"u1"}}`,
		`{"id":42,"type":"user.login","data":{"user":"u1"}}`,
	}
	var ids []string
	for _, b := range bodies {
		status, answer := sendSigned(t, url, []byte(b), nil)
		require.Equal(t, http.StatusOK, status, "%v", answer)
		assert.Equal(t, "delivered", answer["status"], "%s", b)
		assert.Regexp(t, `^[0-9a-f]{32}$`, answer["id"])
		ids = append(ids, answer["id"])
	}
	// The whitespace around the payload is not part of it.
	for _, b := range bodies {
		_, answer := sendSigned(t, url, []byte("\n"+b+"\n"), nil)
		assert.Equal(t, "duplicate", answer["status"], "a retry of %s", b)
	}
	assert.Len(t, slices.Compact(slices.Sorted(slices.Values(ids))), len(bodies))
	assert.Len(t, got.all(), len(bodies))
}

// A Stripe-style event decodes as a Standard Webhooks payload: its id is the event's ID, so the
// sender's retry is a duplicate, though it has no timestamp.
func TestStandardWebhooksPayloadKeepsItsOwnID(t *testing.T) {
	b := []byte(`{"id":"evt_1MqqbKLt4dXK03v5","object":"event","type":"charge.succeeded","created":1680064028,"data":{"object":{"id":"ch_1"}}}`)
	e1, err := eventbridge.Decode(b, "application/json")
	require.NoError(t, err)
	require.Equal(t, "standard-webhooks", e1.Meta(fanbridge.MetaFormat))
	assert.Equal(t, "evt_1MqqbKLt4dXK03v5", e1.ID)
	e2, err := eventbridge.Decode(b, "application/json")
	require.NoError(t, err)
	assert.Equal(t, e1.ID, e2.ID)

	url, got := intake(t, nil)
	var answers []string
	for range 2 {
		status, answer := sendSigned(t, url, b, nil)
		require.Equal(t, http.StatusOK, status, "%v", answer)
		answers = append(answers, answer["status"])
	}
	assert.Equal(t, []string{"delivered", "duplicate"}, answers)
	assert.Len(t, got.all(), 1)
}

// A bare notification without a CorrelationId but with a timestamp: the timestamp tells it from
// another with the same body, so its sender's retry is a duplicate and a later one with the same
// body is delivered.
func TestNotificationTimestampTellsEventsApart(t *testing.T) {
	const shape = `{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence","version":"2","eventBody":{"presenceDefinition":{"systemPresence":"AVAILABLE"}},"timestamp":"%s"}`
	first := []byte(strings.Replace(shape, "%s", "2021-06-25T15:11:52.435Z", 1))
	later := []byte(strings.Replace(shape, "%s", "2021-06-25T15:19:03.001Z", 1))
	url, got := intake(t, nil)
	var answers, ids []string
	for _, b := range [][]byte{first, first, later} {
		status, answer := sendSigned(t, url, b, nil)
		require.Equal(t, http.StatusOK, status, "%v", answer)
		answers = append(answers, answer["status"])
		ids = append(ids, answer["id"])
	}
	assert.Equal(t, []string{"delivered", "duplicate", "delivered"}, answers)
	assert.NotEqual(t, ids[0], ids[2])
	assert.Regexp(t, `^[0-9a-f]{32}$`, ids[0])
	assert.Len(t, got.all(), 2)

	a, err := eventbridge.DecodeNotification(first)
	require.NoError(t, err)
	b, err := eventbridge.DecodeNotification(first)
	require.NoError(t, err)
	assert.Equal(t, a.ID, b.ID, "the WebSocket path derives the same ID")
	assert.Equal(t, ids[0], a.ID)
}

// Beside a CorrelationId the timestamp is left out of the ID: a notification's ID is the digest
// of topicName, CorrelationId and eventBody, as it has always been.
func TestNotificationWithCorrelationIDKeepsItsDigest(t *testing.T) {
	const (
		topic = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence"
		corr  = "9e8067c7-8b35-4e54-add9-db24e7d6f086"
		body  = `{"presenceDefinition":{"systemPresence":"AVAILABLE"}}`
	)
	h := sha256.New()
	for _, p := range []string{topic, corr} {
		_ = binary.Write(h, binary.BigEndian, uint32(len(p)))
		h.Write([]byte(p))
	}
	h.Write([]byte(body))
	want := hex.EncodeToString(h.Sum(nil)[:16])
	for _, stamp := range []string{"", `,"timestamp":"2021-06-25T15:11:52.435Z"`, `,"timestamp":"2030-01-01T00:00:00Z"`} {
		n := `{"topicName":"` + topic + `","version":"2","eventBody":` + body + `,"metadata":{"CorrelationId":"` + corr + `"}` + stamp + `}`
		e, err := eventbridge.DecodeNotification([]byte(n))
		require.NoError(t, err)
		assert.Equal(t, want, e.ID, n)
	}
}
