package eventbridge_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/signature"
)

func (c *collected) all() []*fanbridge.Event {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*fanbridge.Event(nil), c.events...)
}

// Genesys signs the Open Messaging messages it POSTs to an integration's outbound webhook: one so
// signed is accepted and delivered, once.
func TestOpenMessagingSignedByGenesysIsDelivered(t *testing.T) {
	const secret = "open-messaging-webhook-secret-7d1f"
	v, err := signature.OpenMessaging(secret)
	require.NoError(t, err)
	url, got := intake(t, signature.Verify(v))
	sign := func(body []byte) func(*http.Request) {
		return func(r *http.Request) {
			sig, err := signature.SignOpenMessaging(secret, body)
			require.NoError(t, err)
			r.Header.Set(signature.OpenMessagingScheme.Header, sig)
		}
	}

	text := readSample(t, "open-messaging.text.json")
	status, answer := sendSigned(t, url, text, sign(text))
	require.Equal(t, http.StatusOK, status, "%v", answer)
	assert.Equal(t, "delivered", answer["status"])
	status, answer = sendSigned(t, url, text, sign(text))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "duplicate", answer["status"], "a redelivery of the same message")

	typing := readSample(t, "open-messaging.typing-event.json")
	status, answer = sendSigned(t, url, typing, sign(typing))
	require.Equal(t, http.StatusOK, status, "%v", answer)
	assert.Equal(t, "delivered", answer["status"])

	status, _ = sendSigned(t, url, typing, nil)
	assert.Equal(t, http.StatusUnauthorized, status)

	events := got.all()
	require.Len(t, events, 2)
	e := events[0]
	assert.Equal(t, "Text", e.Type)
	assert.Equal(t, string(bytes.TrimSpace(text)), string(e.Data), "the whole message is the data")
	assert.True(t, ts("2024-05-01T12:00:03.417Z").Equal(e.Time), "%v", e.Time)
	assert.Equal(t, map[string]string{"format": "open-messaging"}, e.Metadata)
	assert.Empty(t, e.Source, "sinks give it their default, urn:fanbridge:open-messaging")
	assert.Empty(t, e.Topic)
	assert.Regexp(t, `^[0-9a-f]{32}$`, e.ID)
	assert.Equal(t, "Event", events[1].Type)
	assert.NotEqual(t, e.ID, events[1].ID)
}

func TestDecodeOpenMessaging(t *testing.T) {
	text := readSample(t, "open-messaging.text.json")
	e, err := eventbridge.Decode(text, "application/json")
	require.NoError(t, err)
	assert.Equal(t, "open-messaging", e.Meta(fanbridge.MetaFormat))
	again, err := eventbridge.Decode(bytes.Clone(text), "")
	require.NoError(t, err)
	assert.Equal(t, e.ID, again.ID, "a redelivery, byte for byte, is the same event")

	const msg = `{"id":"m-1","channel":{"platform":"Open","type":"Private","to":{"id":"c"},"from":{"id":"i","idType":"Opaque"},"time":%s},"type":"%s",%s"direction":"Outbound"}`
	decode := func(time, typ, extra string) *fanbridge.Event {
		t.Helper()
		e, err := eventbridge.Decode([]byte(strings.Replace(strings.Replace(strings.Replace(msg, "%s", time, 1), "%s", typ, 1), "%s", extra, 1)), "")
		require.NoError(t, err)
		return e
	}
	text1 := decode(`"2024-05-01T12:00:00.000Z"`, "Text", `"text":"hi",`)
	// A receipt carries the id of the message it is about: the id alone is not the event's.
	receipt := decode(`"2024-05-01T12:00:02.000Z"`, "Receipt", `"status":"Delivered",`)
	assert.NotEqual(t, text1.ID, receipt.ID)
	assert.Equal(t, "Receipt", receipt.Type)
	// Two messages with the same text differ in their time.
	text2 := decode(`"2024-05-01T12:05:00.000Z"`, "Text", `"text":"hi",`)
	assert.NotEqual(t, text1.ID, text2.ID)
	assert.True(t, ts("2024-05-01T12:05:00Z").Equal(text2.Time))
	// channel.time is Genesys' to shape: in another form it gives no time, not a refusal.
	for _, other := range []string{`1714564800000`, `"yesterday"`, `null`, `{}`} {
		assert.True(t, decode(other, "Text", "").Time.IsZero(), other)
	}

	for name, bad := range map[string]string{
		"no type":                  `{"channel":{},"direction":"Outbound"}`,
		"type number":              `{"channel":{},"direction":"Outbound","type":1}`,
		"type empty":               `{"channel":{},"direction":"Outbound","type":""}`,
		"type control":             `{"channel":{},"direction":"Outbound","type":"Te\u0000xt"}`,
		"duplicate type":           `{"channel":{},"direction":"Outbound","type":"Text","type":"Event"}`,
		"type in another case":     `{"channel":{},"direction":"Outbound","type":"Text","Type":"Event"}`,
		"only a case variant":      `{"channel":{},"direction":"Outbound","TYPE":"Text"}`,
		"direction variant":        `{"channel":{},"direction":"Outbound","Direction":"Inbound","type":"Text"}`,
		"channel variant":          `{"channel":{},"Channel":{},"direction":"Outbound","type":"Text"}`,
		"channel.time variant":     `{"channel":{"time":"2024-05-01T12:00:00Z","Time":"2030-05-01T12:00:00Z"},"direction":"Outbound","type":"Text"}`,
		"channel.time twice":       `{"channel":{"time":"2024-05-01T12:00:00Z","time":"2030-05-01T12:00:00Z"},"direction":"Outbound","type":"Text"}`,
		"type escaped as a repeat": `{"channel":{},"direction":"Outbound","type":"Text","typ\u0065":"Event"}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(bad), "")
			require.ErrorIs(t, err, eventbridge.ErrInvalidField)
			assert.NotContains(t, err.Error(), "Event")
		})
	}
	// Without a channel object and a direction, it is no Open Messaging message.
	for _, body := range []string{
		`{"channel":"sms","direction":"Outbound","type":"Text"}`,
		`{"channel":{},"direction":null,"type":"Text"}`,
		`{"channel":{},"type":"Text"}`,
	} {
		_, err := eventbridge.Decode([]byte(body), "")
		require.ErrorIs(t, err, eventbridge.ErrUnknownFormat, body)
	}
}

// The payload the Standard Webhooks specification recommends, signed as it specifies: the
// sender's webhook-id is the event's ID.
func TestStandardWebhooksPayloadIsDelivered(t *testing.T) {
	body := readSample(t, "standard-webhooks.contact.updated.json")
	secret, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	now := time.Now()
	v, err := signature.StandardWebhooks([]string{secret}, signature.WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	url, got := intake(t, signature.Verify(v))
	sign := func(id string) func(*http.Request) {
		return func(r *http.Request) {
			require.NoError(t, signature.SignStandardWebhooksRequest(r, id, now, body, secret))
		}
	}
	status, answer := sendSigned(t, url, body, sign("msg_1"))
	require.Equal(t, http.StatusOK, status, "%v", answer)
	assert.Equal(t, "delivered", answer["status"])
	status, answer = sendSigned(t, url, body, sign("msg_1"))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "duplicate", answer["status"], "the sender's retry")
	status, answer = sendSigned(t, url, body, sign("msg_2"))
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "delivered", answer["status"], "another message with the same body")

	events := got.all()
	require.Len(t, events, 2)
	e := events[0]
	assert.Equal(t, "contact.updated", e.Type)
	assert.JSONEq(t, `{"id":"c0ffee00-1234-4abc-9def-0123456789ab","type":"contact","changes":["email"]}`, string(e.Data))
	assert.True(t, ts("2024-05-01T12:00:00.250931Z").Equal(e.Time), "%v", e.Time)
	assert.Equal(t, map[string]string{"format": "standard-webhooks"}, e.Metadata)
	assert.Empty(t, e.Source, "sinks give it their default, urn:fanbridge:standard-webhooks")
	assert.NotEqual(t, e.ID, events[1].ID)
}

func TestDecodeStandardWebhooksPayload(t *testing.T) {
	idOf := func(body string) string {
		t.Helper()
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		require.Equal(t, "standard-webhooks", e.Meta(fanbridge.MetaFormat))
		return e.ID
	}
	// Without a webhook-id the timestamp tells events apart, and a redelivery keeps its ID.
	const at = `{"type":"contact.updated","timestamp":"%s","data":{"id":"c-1"}}`
	first := idOf(strings.Replace(at, "%s", "2024-05-01T12:00:00Z", 1))
	assert.Equal(t, first, idOf(strings.Replace(at, "%s", "2024-05-01T12:00:00Z", 1)))
	assert.NotEqual(t, first, idOf(strings.Replace(at, "%s", "2024-05-01T12:07:00Z", 1)))
	assert.Regexp(t, `^[0-9a-f]{32}$`, first)
	// Without a timestamp nothing does: each is an event of its own.
	const bare = `{"type":"contact.updated","data":{"id":"c-1"}}`
	assert.NotEqual(t, idOf(bare), idOf(bare))
	assert.NotEqual(t, idOf(`{"type":"contact.updated","timestamp":null,"data":{"id":"c-1"}}`),
		idOf(`{"type":"contact.updated","timestamp":null,"data":{"id":"c-1"}}`))
	// The ID is derived from the whole payload: a member the decoder does not read counts too.
	assert.NotEqual(t, first, idOf(`{"type":"contact.updated","timestamp":"2024-05-01T12:00:00Z","data":{"id":"c-1"},"n":2}`))
	// An id of the payload's own is the ID, as sent (unescaped).
	assert.Equal(t, "evt_1", idOf(`{"id":"evt\u005f1","type":"contact.updated","data":{"id":"c-1"}}`))
	// An id that may not be an ID (empty, too long, a control character, not a string) is the
	// sender's data: the ID is derived, and the same bytes keep it; an empty one tells nothing
	// apart.
	for _, own := range []string{`"` + strings.Repeat("a", 1025) + `"`, `"evt\u0000"`, `7`, `{"n":1}`} {
		body := `{"id":` + own + `,"type":"contact.updated","data":{"id":"c-1"}}`
		assert.Equal(t, idOf(body), idOf(body), body)
		assert.Regexp(t, `^[0-9a-f]{32}$`, idOf(body))
	}
	const emptyID = `{"id":"","type":"contact.updated","data":{"id":"c-1"}}`
	assert.NotEqual(t, idOf(emptyID), idOf(emptyID))
	// data is any JSON value.
	e, err := eventbridge.Decode([]byte(`{"type":"ping","timestamp":"2024-05-01T12:00:00Z","data":[1,"a"],"extra":{}}`), "")
	require.NoError(t, err)
	assert.Equal(t, `[1,"a"]`, string(e.Data))

	for name, bad := range map[string]string{
		"no type":                   `{"timestamp":"2024-05-01T12:00:00Z","data":{},"type":null}`,
		"type object":               `{"type":{},"data":{}}`,
		"timestamp not RFC 3339":    `{"type":"t","timestamp":"yesterday","data":{}}`,
		"timestamp number":          `{"type":"t","timestamp":1714564800,"data":{}}`,
		"timestamp in another case": `{"type":"t","timestamp":"2024-05-01T12:00:00Z","Timestamp":"2030-05-01T12:00:00Z","data":{}}`,
		"data in another case":      `{"type":"t","data":{},"DATA":{"evil":1}}`,
		"duplicate data":            `{"type":"t","data":{},"data":{"evil":1}}`,
		"duplicate id":              `{"id":"a","type":"t","data":{},"id":"evil"}`,
		"id in another case":        `{"id":"a","type":"t","data":{},"ID":"evil"}`,
		"only a case variant of id": `{"Id":"evil","type":"t","data":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(bad), "")
			require.Error(t, err)
			assert.True(t, isDecodeError(err), "%v", err)
			assert.NotContains(t, err.Error(), "evil")
		})
	}
	_, err = eventbridge.Decode([]byte(`{"type":"t","data":null}`), "")
	require.ErrorIs(t, err, eventbridge.ErrUnknownFormat, "null data is no data")
}

// A body with the keys of several formats is the first of them in detection order; the formats
// added later never take a body an earlier one decoded.
func TestDetectionOrder(t *testing.T) {
	for body, format := range map[string]string{
		`{"event":"x","data":{},"type":"t"}`:                                                  "webhook",
		`{"id":"e","eventType":"t","attributes":{},"channel":{},"direction":"Outbound"}`:      "webhook-attributes",
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data":{},"direction":"x"}`:    "cloudevents",
		`{"topicName":"v2.users.x.presence","eventBody":{},"channel":{},"direction":"x"}`:     "notification",
		`{"id":"1","detail-type":"t","source":"s","detail":{},"type":"t","data":{}}`:          "eventbridge",
		`{"channel":{},"direction":"Outbound","type":"Text","data":{}}`:                       "open-messaging",
		`{"channel":"sms","direction":"Outbound","type":"message.sent","data":{}}`:            "standard-webhooks",
		`{"channel":{},"direction":null,"type":"message.sent","data":{},"eventType":null}`:    "standard-webhooks",
		`{"channel":{},"direction":"Outbound","type":"Text","event":null,"specversion":null}`: "open-messaging",
	} {
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		assert.Equal(t, format, e.Meta(fanbridge.MetaFormat), body)
	}
}

// WithFormats leaves the new formats out like any other.
func TestHandlerWithoutTheMessagingFormats(t *testing.T) {
	d := &recorder{}
	h := newHandler(t, d, eventbridge.WithFormats(eventbridge.FormatEventBridge))
	for _, name := range []string{"open-messaging.text.json", "standard-webhooks.contact.updated.json"} {
		w := post(h, readSample(t, name))
		assert.Equal(t, http.StatusBadRequest, w.Code, name)
		assert.Contains(t, decodeAnswer(t, w)["error"], "envelopes are not accepted here")
	}
	assert.Empty(t, d.events)
}
