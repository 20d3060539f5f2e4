package eventbridge_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return b
}

// rawPath returns the raw bytes of the value at path, as encoding/json sees them.
func rawPath(t testing.TB, body []byte, path ...string) json.RawMessage {
	t.Helper()
	raw := json.RawMessage(body)
	for _, p := range path {
		var m map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(raw, &m))
		raw = m[p]
		require.NotNil(t, raw, "no %q", p)
	}
	return raw
}

// within reports whether sub lies inside buf's memory: the decoder sliced it, it did not copy it.
func within(sub, buf []byte) bool {
	if len(sub) == 0 || len(buf) == 0 {
		return false
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(sub)))
	return p >= start && p+uintptr(len(sub)) <= start+uintptr(len(buf))
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestDecodeSamples(t *testing.T) {
	const testSource = "aws.partner/genesys.com.test/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/test-event-bus"
	tests := []struct {
		file     string
		id       string
		typ      string
		topic    string
		source   string
		time     time.Time
		dataPath []string // where Data comes from in the sample
		meta     map[string]string
	}{
		{
			file:     "v2.detail.events.conversation.customer.end.json",
			id:       "58fb5dac-f077-4eec-a25f-c638dbdd4368",
			typ:      "v2.detail.events.conversation.{id}.customer.end",
			topic:    "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
			source:   testSource,
			time:     ts("2022-06-14T16:12:11Z"), // detail.timestamp is months away: time wins
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "7272d362-23b2-4c14-9d40-dc7b7683153a",
				"account": "123456789012", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			file:     "v2.detail.events.conversation.customer.end.no-external-contact.json",
			id:       "58fb5dac-f077-4eec-a25f-c638dbdd4368",
			typ:      "v2.detail.events.conversation.{id}.customer.end",
			topic:    "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
			source:   testSource,
			time:     ts("2022-06-14T16:12:11Z"),
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "7272d362-23b2-4c14-9d40-dc7b7683153a",
				"account": "123456789012", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			file:     "v2.detail.events.conversation.customer.start.json",
			id:       "adbcfa5b-0116-4baa-b66b-a3f5902e95bf",
			typ:      "v2.detail.events.conversation.{id}.customer.start",
			topic:    "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.start",
			source:   testSource,
			time:     ts("2022-04-06T09:30:45.013Z"), // same second as time, finer
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "fe8a8579-b83f-4f07-b371-2b39398f91a8",
				"account": "123456789012", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			// detail-type and topicName disagree: Type follows detail-type (what EventBridge
			// rules matched), Topic follows topicName; nothing is added to Metadata.
			file:     "negative-test.mismatched-detail-type.json",
			id:       "adbcfa5b-0116-4baa-b66b-a3f5902e95bf",
			typ:      "v2.something.but.conversation.{id}.customer.start",
			topic:    "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.start",
			source:   testSource,
			time:     ts("2022-04-06T09:30:45.013Z"),
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "fe8a8579-b83f-4f07-b371-2b39398f91a8",
				"account": "123456789012", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			file:     "v2.audits.entitytype.OAuthClient.delete.json",
			id:       "e9938ff0-50e2-45f8-950f-ad02d95fee85",
			typ:      "v2.audits.entitytype.{id}.entityid.{id}",
			topic:    "v2.audits.entitytype.OAuthClient.entityid.46a10c81-ca63-4bfe-bc9d-3fbf41ee06b5",
			source:   "aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart-test",
			time:     ts("2021-05-31T09:49:26.031Z"),
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "8f725aa1-d831-4fb3-a8ea-9ccf7d44db68-archival",
				"account": "490606849374", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			file:     "v2.audits.entitytype.UserPresence.update.json",
			id:       "4cbedb0f-4dfd-4c8e-9e57-0acded092527",
			typ:      "v2.audits.entitytype.{id}.entityid.{id}",
			topic:    "v2.audits.entitytype.UserPresence.entityid.278522be-1683-4877-8257-4164a177be89",
			source:   "aws.partner/genesys.com/cloud/bb14bed0-f8f9-445d-b9d1-10cecb8569d6/quickstart-test",
			time:     ts("2021-06-25T15:11:52.435Z"),
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "b61df0b3-9e33-444b-a455-1c92a33ef4e2-archival",
				"account": "123456789", "region": "us-east-1", "format": "eventbridge"},
		},
		{
			file:     "v2.conversations.transcription.json",
			id:       "6efd5506-3fd6-09a1-5599-09ae48bd6dd8",
			typ:      "v2.conversations.{id}.transcription",
			topic:    "v2.conversations.97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a.transcription",
			source:   "aws.partner/genesys.com/cloud/cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721/DA-VOICE-SB",
			time:     ts("2026-03-19T22:04:48.128Z"),
			dataPath: []string{"detail", "eventBody"},
			meta: map[string]string{"correlation-id": "d1ab36e9-af51-4b3c-ab96-98d7349e75b4",
				"account": "765425735388", "region": "us-east-2", "format": "eventbridge"},
		},
		{
			file:     "websocket.v2.users.activity.REPAIRED.json",
			id:       "19299f96f7e41cb5c67a6b5bb2cdcd2c",
			typ:      "v2.users.{id}.activity",
			topic:    "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity",
			dataPath: []string{"eventBody"},
			meta:     map[string]string{"correlation-id": "9e8067c7-8b35-4e54-add9-db24e7d6f086", "format": "notification"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := readSample(t, tt.file)
			e, err := eventbridge.Decode(body, "application/json; charset=utf-8")
			require.NoError(t, err)
			assert.Equal(t, tt.id, e.ID)
			assert.Equal(t, tt.typ, e.Type)
			assert.Equal(t, tt.topic, e.Topic)
			assert.Equal(t, tt.source, e.Source)
			assert.True(t, tt.time.Equal(e.Time), "time %v, want %v", e.Time, tt.time)
			assert.Equal(t, tt.meta, e.Metadata)
			assert.Equal(t, string(rawPath(t, body, tt.dataPath...)), string(e.Data), "Data must be the bytes as sent")
			assert.True(t, within(e.Data, body), "Data must alias the body, not copy it")
			assert.Equal(t, unsafe.SliceData(body), unsafe.SliceData(e.Raw), "Raw must be the body itself")
			assert.Len(t, e.Raw, len(body))
			if tt.typ != "v2.something.but.conversation.{id}.customer.start" {
				assert.Equal(t, tt.typ, eventbridge.TopicTemplate(e.Topic), "topic and type agree")
			} else {
				assert.NotEqual(t, e.Type, eventbridge.TopicTemplate(e.Topic), "the mismatch is detectable")
			}
		})
	}
}

func TestDecodeNotification(t *testing.T) {
	body := readSample(t, "websocket.v2.users.activity.REPAIRED.json")

	t.Run("sample", func(t *testing.T) {
		e, err := eventbridge.DecodeNotification(body)
		require.NoError(t, err)
		assert.Equal(t, "v2.users.{id}.activity", e.Type)
		assert.Equal(t, "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity", e.Topic)
		assert.Equal(t, "notification", e.Meta(fanbridge.MetaFormat))
		assert.Equal(t, "9e8067c7-8b35-4e54-add9-db24e7d6f086", e.Meta(fanbridge.MetaCorrelationID))
		assert.Len(t, e.ID, 32)
		assert.Empty(t, e.Source)
		assert.True(t, e.Time.IsZero(), "activity bodies carry no eventTime")
		assert.False(t, eventbridge.IsHeartbeat(e))
	})

	t.Run("redelivery keeps the ID, a different body changes it", func(t *testing.T) {
		a, err := eventbridge.DecodeNotification(body)
		require.NoError(t, err)
		b, err := eventbridge.DecodeNotification(append([]byte(nil), body...))
		require.NoError(t, err)
		assert.Equal(t, a.ID, b.ID)

		changed := []byte(strings.Replace(string(body), "OFF_QUEUE", "IDLE", 1))
		c, err := eventbridge.DecodeNotification(changed)
		require.NoError(t, err)
		assert.NotEqual(t, a.ID, c.ID)

		otherTopic := []byte(strings.Replace(string(body), `.activity"`, `.presence"`, 1))
		d, err := eventbridge.DecodeNotification(otherTopic)
		require.NoError(t, err)
		assert.NotEqual(t, a.ID, d.ID)
		assert.Equal(t, "v2.users.{id}.presence", d.Type)

		// A body that returns to an earlier state (1 active call, 0, 1 again) is another
		// notification: its CorrelationId differs, and so does its ID.
		otherCorrelation := []byte(strings.Replace(string(body), "9e8067c7-8b35-4e54-add9-db24e7d6f086", "5b1ad1c6-6f0e-4a5e-9d2b-3c4d5e6f7a8b", 1))
		o, err := eventbridge.DecodeNotification(otherCorrelation)
		require.NoError(t, err)
		assert.Equal(t, a.Data, o.Data)
		assert.NotEqual(t, a.ID, o.ID)
	})

	t.Run("malformed sample", func(t *testing.T) {
		_, err := eventbridge.DecodeNotification(readSample(t, "websocket.v2.users.activity.malformed.txt"))
		require.ErrorIs(t, err, eventbridge.ErrMalformed)
		assert.NotContains(t, err.Error(), "OFF_QUEUE")
	})

	t.Run("heartbeat", func(t *testing.T) {
		e, err := eventbridge.DecodeNotification([]byte(`{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}`))
		require.NoError(t, err)
		assert.Equal(t, "channel.metadata", e.Type)
		assert.True(t, eventbridge.IsHeartbeat(e))
		assert.False(t, eventbridge.IsSocketClosing(e))
	})

	t.Run("socket closing", func(t *testing.T) {
		e, err := eventbridge.DecodeNotification([]byte(`{"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}}`))
		require.NoError(t, err)
		assert.True(t, eventbridge.IsSocketClosing(e))
		assert.Equal(t, "v2.system.socket_closing", e.Type)
	})

	t.Run("time from timestamp, then eventTime", func(t *testing.T) {
		e, err := eventbridge.DecodeNotification([]byte(`{"topicName":"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.acw","eventBody":{"eventTime":1649237504949},"timestamp":"2022-04-06T09:31:00.5Z"}`))
		require.NoError(t, err)
		assert.True(t, ts("2022-04-06T09:31:00.5Z").Equal(e.Time))
		assert.Equal(t, "v2.detail.events.conversation.{id}.acw", e.Type)

		e, err = eventbridge.DecodeNotification([]byte(`{"topicName":"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.acw","eventBody":{"eventTime":1649237504949}}`))
		require.NoError(t, err)
		assert.True(t, time.UnixMilli(1649237504949).Equal(e.Time))

		e, err = eventbridge.DecodeNotification([]byte(`{"topicName":"v2.conversations.97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a.transcription","eventBody":{"eventTime":"2026-03-19T22:04:48.128Z"}}`))
		require.NoError(t, err)
		assert.True(t, ts("2026-03-19T22:04:48.128Z").Equal(e.Time))
	})

	t.Run("EventBridge envelope is not a notification", func(t *testing.T) {
		_, err := eventbridge.DecodeNotification(readSample(t, "v2.conversations.transcription.json"))
		require.ErrorIs(t, err, eventbridge.ErrInvalidField)
	})

	bad := map[string]string{
		"no topicName":           `{"eventBody":{}}`,
		"empty topicName":        `{"topicName":"","eventBody":{}}`,
		"no eventBody":           `{"topicName":"v2.users.x.activity"}`,
		"eventBody string":       `{"topicName":"v2.users.x.activity","eventBody":"x"}`,
		"topicName number":       `{"topicName":1,"eventBody":{}}`,
		"metadata array":         `{"topicName":"a","eventBody":{},"metadata":[]}`,
		"correlation number":     `{"topicName":"a","eventBody":{},"metadata":{"CorrelationId":7}}`,
		"duplicate topicName":    `{"topicName":"a","topicName":"b","eventBody":{}}`,
		"bad timestamp":          `{"topicName":"a","eventBody":{},"timestamp":"yesterday"}`,
		"array":                  `[{"topicName":"a","eventBody":{}}]`,
		"escaped duplicate":      `{"topicName":"a","topic\u004eame":"b","eventBody":{}}`,
		"control char in name":   `{"topicName":"a\u0000b","eventBody":{}}`,
		"C1 control in name":     `{"topicName":"v2.users.x\u009b2J.activity","eventBody":{}}`,
		"raw C1 control":         "{\"topicName\":\"v2.users.x\u0085.activity\",\"eventBody\":{}}",
		"right-to-left override": `{"topicName":"v2.users.x\u202e.activity","eventBody":{}}`,
		"isolate":                "{\"topicName\":\"v2.users.x\u2066.activity\",\"eventBody\":{}}",
	}
	for name, body := range bad {
		t.Run("rejects "+name, func(t *testing.T) {
			_, err := eventbridge.DecodeNotification([]byte(body))
			require.Error(t, err)
			assert.True(t, isDecodeError(err), "%v", err)
		})
	}
	// Other characters written with a 0xC2 byte in UTF-8 are text.
	e, err := eventbridge.DecodeNotification([]byte(`{"topicName":"v2.users.caf\u00e9\u00a0\u00bf©.activity","eventBody":{}}`))
	require.NoError(t, err)
	assert.Equal(t, "v2.users.caf\u00e9\u00a0\u00bf\u00a9.activity", e.Topic)
}

func isDecodeError(err error) bool {
	for _, s := range []error{eventbridge.ErrMalformed, eventbridge.ErrUnknownFormat, eventbridge.ErrInvalidField} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func TestTopicTemplate(t *testing.T) {
	tests := map[string]string{
		"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity":                          "v2.users.{id}.activity",
		"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.presence":                          "v2.users.{id}.presence",
		"v2.users.{id}.presence":                                                          "v2.users.{id}.presence",
		"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end": "v2.detail.events.conversation.{id}.customer.end",
		"v2.audits.entitytype.UserPresence.entityid.278522be-1683-4877-8257-4164a177be89": "v2.audits.entitytype.{id}.entityid.{id}",
		"v2.system.socket_closing":                                                        "v2.system.socket_closing",
		"channel.metadata":                                                                "channel.metadata",
		// Not in Genesys' list: UUID-shaped segments still become {id}.
		"v2.future.E40F28EA-FA86-493F-A5B8-D559C8533C96.thing": "v2.future.{id}.thing",
		"v2.future.not-a-uuid.thing":                           "v2.future.not-a-uuid.thing",
		"":                                                     "",
		"v2.users..activity":                                   "v2.users..activity",
		"v2.users.x.activity.extra":                            "v2.users.x.activity.extra",
	}
	for topic, want := range tests {
		t.Run(topic, func(t *testing.T) {
			assert.Equal(t, want, eventbridge.TopicTemplate(topic))
		})
	}

	t.Run("every known template maps to itself and from its concrete form", func(t *testing.T) {
		known := eventbridge.KnownTopics()
		require.Len(t, known, 237)
		for _, tmpl := range known {
			assert.Equal(t, tmpl, eventbridge.TopicTemplate(tmpl))
			concrete := strings.ReplaceAll(tmpl, "{id}", "0a1b2c3d-0000-4000-8000-00000000abcd")
			assert.Equal(t, tmpl, eventbridge.TopicTemplate(concrete), concrete)
		}
	})
}

func TestEventTime(t *testing.T) {
	tests := []struct {
		body string
		want time.Time
		ok   bool
	}{
		{`{"eventTime":1649237504949}`, time.UnixMilli(1649237504949), true},
		{`{"a":[1,{"eventTime":2}],"eventTime":"2021-05-31T09:49:25.000Z"}`, ts("2021-05-31T09:49:25Z"), true},
		{`{"eventTime":"2021-05-31T11:49:25+02:00"}`, ts("2021-05-31T09:49:25Z"), true},
		{`{"eventTime":"not a time"}`, time.Time{}, false},
		{`{"eventTime":1.5e12}`, time.Time{}, false},
		{`{"eventTime":-1}`, time.Time{}, false},
		{`{"eventTime":253402300799999}`, time.UnixMilli(253402300799999), true}, // 9999-12-31T23:59:59.999Z
		{`{"eventTime":253402300800000}`, time.Time{}, false},                    // the year 10000
		{`{"eventTime":"0000-01-01T00:00:00+01:00"}`, time.Time{}, false},        // the year -1 in UTC
		{`{"eventTime":null}`, time.Time{}, false},
		{`{"other":1}`, time.Time{}, false},
		{`[1]`, time.Time{}, false},
		{`{"eventTime":1,"eventTime":2}`, time.Time{}, false},
		{`{`, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			got, ok := eventbridge.EventTime(json.RawMessage(tt.body))
			assert.Equal(t, tt.ok, ok)
			assert.True(t, tt.want.Equal(got), "got %v want %v", got, tt.want)
		})
	}
}

func TestDecodeEventBridgeVariants(t *testing.T) {
	t.Run("generic EventBridge event: Data is detail", func(t *testing.T) {
		body := []byte(`{"id":"1","detail-type":"Order Placed","source":"com.example.shop","time":"2024-01-02T03:04:05Z","detail":{"order":7}}`)
		e, err := eventbridge.Decode(body, "")
		require.NoError(t, err)
		assert.Equal(t, `{"order":7}`, string(e.Data))
		assert.Empty(t, e.Topic)
		assert.Equal(t, "Order Placed", e.Type)
		assert.NotContains(t, e.Metadata, fanbridge.MetaCorrelationID)
	})
	t.Run("a detail that is not a Genesys notification may use the same names otherwise", func(t *testing.T) {
		for _, detail := range []string{
			`{"timestamp":1700000000,"state":"running"}`,
			`{"timestamp":"2023-11-14 22:13:20","state":"running"}`,
			`{"metadata":"v1","state":"running"}`,
			`{"metadata":{"CorrelationId":42}}`,
			`{"topicName":7}`,
		} {
			body := `{"id":"e1","detail-type":"Some Partner Event","source":"aws.partner/x.com/1/y","time":"2023-11-14T22:13:20Z","detail":` + detail + `}`
			e, err := eventbridge.Decode([]byte(body), "")
			require.NoError(t, err, detail)
			assert.Equal(t, detail, string(e.Data))
			assert.Empty(t, e.Topic)
			assert.NotContains(t, e.Metadata, fanbridge.MetaCorrelationID)
			assert.True(t, ts("2023-11-14T22:13:20Z").Equal(e.Time))
		}
		// So may one with an eventBody but no topicName, whatever that eventBody is.
		for _, detail := range []string{`{"eventBody":"text","timestamp":7}`, `{"eventBody":null,"x":1}`, `{"eventBody":[1]}`} {
			e, err := eventbridge.Decode([]byte(`{"id":"e1","detail-type":"t","source":"s","detail":`+detail+`}`), "")
			require.NoError(t, err, detail)
			assert.Equal(t, detail, string(e.Data))
		}
		// With both topicName and eventBody the detail is Genesys', and its fields must have
		// Genesys' types.
		for _, detail := range []string{`{"eventBody":{},"topicName":7}`, `{"eventBody":"text","topicName":"v2.users.x.presence"}`} {
			_, err := eventbridge.Decode([]byte(`{"id":"e1","detail-type":"t","source":"s","detail":`+detail+`}`), "")
			require.ErrorIs(t, err, eventbridge.ErrInvalidField, detail)
		}
	})
	t.Run("detail.timestamp refines time within its second only", func(t *testing.T) {
		for timestamp, want := range map[string]string{
			"2024-01-02T03:04:05.999Z": "2024-01-02T03:04:05.999Z",
			"2024-01-02T03:04:06.000Z": "2024-01-02T03:04:05Z",
		} {
			body := []byte(`{"id":"1","detail-type":"t","source":"s","time":"2024-01-02T03:04:05Z","detail":{"timestamp":"` + timestamp + `","eventBody":{}}}`)
			e, err := eventbridge.Decode(body, "")
			require.NoError(t, err)
			assert.True(t, ts(want).Equal(e.Time), "timestamp %s: time %v", timestamp, e.Time)
		}
	})
	t.Run("no time: detail.timestamp", func(t *testing.T) {
		body := []byte(`{"id":"1","detail-type":"t","source":"s","detail":{"timestamp":"2024-01-02T03:04:05.678Z","eventBody":{}}}`)
		e, err := eventbridge.Decode(body, "")
		require.NoError(t, err)
		assert.True(t, ts("2024-01-02T03:04:05.678Z").Equal(e.Time))
	})
	t.Run("no time nor timestamp: eventBody.eventTime", func(t *testing.T) {
		body := []byte(`{"id":"1","detail-type":"t","source":"s","detail":{"eventBody":{"eventTime":1649237504949}}}`)
		e, err := eventbridge.Decode(body, "")
		require.NoError(t, err)
		assert.True(t, time.UnixMilli(1649237504949).Equal(e.Time))
	})
	t.Run("escaped keys and values decode like encoding/json", func(t *testing.T) {
		body := []byte(`{"i\u0064":"a\/b\u00e9","detail-type":"t\"q","source":"s","d\u0065tail":{"t\u006fpicName":"x","eventBody":{"eventTime":5},"m\u0065tadata":{"Correlati\u006fnId":"c"}}}`)
		e, err := eventbridge.Decode(body, "")
		require.NoError(t, err)
		assert.Equal(t, "a/bé", e.ID)
		assert.Equal(t, `t"q`, e.Type)
		assert.Equal(t, "x", e.Topic)
		assert.Equal(t, "c", e.Meta(fanbridge.MetaCorrelationID))
		assert.True(t, time.UnixMilli(5).Equal(e.Time))
	})
	t.Run("null optional fields count as absent", func(t *testing.T) {
		body := []byte(`{"id":"1","detail-type":"t","source":"s","account":null,"time":null,"detail":{"eventBody":{},"metadata":null}}`)
		e, err := eventbridge.Decode(body, "")
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"format": "eventbridge"}, e.Metadata)
	})
}

func TestDecodeWebhook(t *testing.T) {
	body := []byte(`{"event":"routing:interaction:completed","data":{"channel":"voice"},"metadata":{"correlationId":"c-1","source":"tutorial","timestamp":"2024-01-02T03:04:05Z","tenant":"acme","attempt":3,"account":"999"}}`)
	e, err := eventbridge.Decode(body, "application/json")
	require.NoError(t, err)
	assert.Equal(t, "routing:interaction:completed", e.Type)
	assert.Equal(t, `{"channel":"voice"}`, string(e.Data))
	assert.Equal(t, "tutorial", e.Source)
	assert.True(t, ts("2024-01-02T03:04:05Z").Equal(e.Time))
	assert.Equal(t, map[string]string{"correlation-id": "c-1", "tenant": "acme", "format": "webhook"}, e.Metadata,
		"string values only; account is not the webhook's to claim")
	assert.Len(t, e.ID, 32)

	again, err := eventbridge.Decode([]byte(strings.Replace(string(body), `"tenant":"acme"`, `"tenant":"other"`, 1)), "")
	require.NoError(t, err)
	assert.Equal(t, e.ID, again.ID, "the ID derives from event, data, correlation id and timestamp only")
	// The same data with another correlation id or timestamp is another event (a presence going
	// back to what it was), and must not be taken for a duplicate.
	for _, other := range []string{
		strings.Replace(string(body), `"c-1"`, `"c-2"`, 1),
		strings.Replace(string(body), `03:04:05Z`, `03:09:05Z`, 1),
		strings.Replace(string(body), `"timestamp"`, `"time"`, 1),
	} {
		o, err := eventbridge.Decode([]byte(other), "")
		require.NoError(t, err)
		assert.Equal(t, e.Data, o.Data)
		assert.NotEqual(t, e.ID, o.ID, other)
	}
	// Whatever their type: epoch milliseconds tell events apart as well.
	idOf := func(body string) string {
		t.Helper()
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err)
		return e.ID
	}
	assert.NotEqual(t,
		idOf(`{"event":"x","data":{"s":1},"metadata":{"timestamp":1700000000000}}`),
		idOf(`{"event":"x","data":{"s":1},"metadata":{"timestamp":1700000600000}}`))
	// A sender that re-serializes its metadata in another order keeps the ID.
	assert.Equal(t,
		idOf(`{"event":"x","data":1,"metadata":{"correlationId":"c1","CorrelationID":"c2","time":"t"}}`),
		idOf(`{"event":"x","data":1,"metadata":{"time":"t","CorrelationID":"c2","correlationId":"c1"}}`))
	// database64 is the decoder's to set, as account is.
	d64, err := eventbridge.Decode([]byte(`{"event":"x","data":"aGk=","metadata":{"database64":"true"}}`), "")
	require.NoError(t, err)
	assert.NotContains(t, d64.Metadata, eventbridge.MetaDataBase64)

	for name, bad := range map[string]string{
		"event array":        `{"event":[],"data":{}}`,
		"no data":            `{"event":"x"}`,
		"metadata string":    `{"event":"x","data":1,"metadata":"m"}`,
		"duplicate metadata": `{"event":"x","data":1,"metadata":{"a":"1","a":"2"}}`,
		"control in value":   `{"event":"x","data":1,"metadata":{"a":"\u0007"}}`,
		"empty key":          `{"event":"x","data":1,"metadata":{"":"v"}}`,
		"control in key":     `{"event":"x","data":1,"metadata":{"a\u0007":"v"}}`,
		"C1 control in key":  `{"event":"x","data":1,"metadata":{"a\u009b31mb":"v"}}`,
		"override in key":    `{"event":"x","data":1,"metadata":{"invoice\u202efdp.exe":"v"}}`,
		"isolate in key":     "{\"event\":\"x\",\"data\":1,\"metadata\":{\"x\u2066y\":\"v\"}}",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(bad), "")
			require.ErrorIs(t, err, eventbridge.ErrInvalidField)
		})
	}
}

func TestDecodeWebhookAttributes(t *testing.T) {
	body := []byte(`{"id":"evt-1","eventType":"presence:state:changed","timestamp":"2024-01-02T03:04:05.5Z","source":"genesys","attributes":{"state":"AVAILABLE"}}`)
	e, err := eventbridge.Decode(body, "")
	require.NoError(t, err)
	assert.Equal(t, "evt-1", e.ID)
	assert.Equal(t, "presence:state:changed", e.Type)
	assert.Equal(t, "genesys", e.Source)
	assert.True(t, ts("2024-01-02T03:04:05.5Z").Equal(e.Time))
	assert.Equal(t, `{"state":"AVAILABLE"}`, string(e.Data))
	assert.Equal(t, map[string]string{"format": "webhook-attributes"}, e.Metadata)

	e, err = eventbridge.Decode([]byte(`{"id":"e","eventType":"t","timestamp":1649237504949,"attributes":[]}`), "")
	require.NoError(t, err)
	assert.True(t, time.UnixMilli(1649237504949).Equal(e.Time))

	for name, bad := range map[string]string{
		"no id":           `{"eventType":"t","attributes":{}}`,
		"no attributes":   `{"id":"e","eventType":"t"}`,
		"bad timestamp":   `{"id":"e","eventType":"t","timestamp":"soon","attributes":{}}`,
		"bool timestamp":  `{"id":"e","eventType":"t","timestamp":true,"attributes":{}}`,
		"source number":   `{"id":"e","eventType":"t","source":1,"attributes":{}}`,
		"eventType empty": `{"id":"e","eventType":"","attributes":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(bad), "")
			require.ErrorIs(t, err, eventbridge.ErrInvalidField)
		})
	}
}

func TestDecodeCloudEvents(t *testing.T) {
	const ce = "application/cloudevents+json"
	body := []byte(`{"specversion":"1.0","id":"A234-1234-1234","source":"https://github.com/cloudevents/spec/pull","type":"com.github.pull_request.opened","subject":"123","time":"2018-04-05T17:31:00Z","datacontenttype":"application/json","dataschema":"https://example.com/schema","comexampleextension1":"value","comexampleothervalue":5,"flag":true,"nothing":null,"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"x":1}}`)
	e, err := eventbridge.Decode(body, ce)
	require.NoError(t, err)
	assert.Equal(t, "A234-1234-1234", e.ID)
	assert.Equal(t, "com.github.pull_request.opened", e.Type)
	assert.Equal(t, "https://github.com/cloudevents/spec/pull", e.Source)
	assert.Equal(t, "123", e.Topic)
	assert.True(t, ts("2018-04-05T17:31:00Z").Equal(e.Time))
	assert.Equal(t, `{"x":1}`, string(e.Data))
	assert.Equal(t, map[string]string{
		"comexampleextension1": "value", "comexampleothervalue": "5", "flag": "true",
		"datacontenttype": "application/json", "dataschema": "https://example.com/schema",
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "format": "cloudevents",
	}, e.Metadata)

	t.Run("extensions cannot claim the keys of envelope facts", func(t *testing.T) {
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","account":"123456789012","region":"us-east-1","format":"eventbridge","database64":"true","tenant":"acme","data":{}}`), ce)
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"tenant": "acme", "format": "cloudevents"}, e.Metadata)
	})
	t.Run("detected in plain JSON too", func(t *testing.T) {
		e, err := eventbridge.Decode(body, "application/json")
		require.NoError(t, err)
		assert.Equal(t, "cloudevents", e.Meta(fanbridge.MetaFormat))
	})
	t.Run("an extension named detail in plain JSON", func(t *testing.T) {
		// "detail" is a legal extension name; only "detail-type" outranks specversion.
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","detail":"full","data":{}}`), "application/json")
		require.NoError(t, err)
		assert.Equal(t, "cloudevents", e.Meta(fanbridge.MetaFormat))
		assert.Equal(t, "full", e.Meta("detail"))
	})
	t.Run("data_base64 holding JSON becomes Data", func(t *testing.T) {
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"eyJhIjpbMV19"}`), ce)
		require.NoError(t, err)
		assert.Equal(t, `{"a":[1]}`, string(e.Data))
		assert.NotContains(t, e.Metadata, eventbridge.MetaDataBase64)
	})
	t.Run("binary data_base64 stays base64", func(t *testing.T) {
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":"image/png","data_base64":"iVBORw0KGgo="}`), ce)
		require.NoError(t, err)
		assert.Equal(t, `"iVBORw0KGgo="`, string(e.Data))
		assert.Equal(t, "true", e.Meta(eventbridge.MetaDataBase64))
	})
	t.Run("data_base64 that is not JSON stays base64, whatever datacontenttype says", func(t *testing.T) {
		for _, ct := range []string{``, `,"datacontenttype":"application/json"`} {
			// "bm90IGpzb24gew==" is `not json {`.
			e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"bm90IGpzb24gew=="`+ct+`}`), ce)
			require.NoError(t, err, ct)
			assert.Equal(t, `"bm90IGpzb24gew=="`, string(e.Data), ct)
			assert.Equal(t, "true", e.Meta(eventbridge.MetaDataBase64), ct)
		}
	})
	t.Run("invalid traceparent extension dropped", func(t *testing.T) {
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":"garbage","tracestate":"a=b"}`), ce)
		require.NoError(t, err)
		assert.NotContains(t, e.Metadata, "traceparent")
		assert.NotContains(t, e.Metadata, "tracestate")
	})
	for name, bad := range map[string]string{
		"specversion missing":   `{"id":"1","source":"s","type":"t"}`,
		"specversion 0.3":       `{"specversion":"0.3","id":"1","source":"s","type":"t"}`,
		"specversion 1.1":       `{"specversion":"1.1","id":"1","source":"s","type":"t"}`,
		"specversion number":    `{"specversion":1.0,"id":"1","source":"s","type":"t"}`,
		"id missing":            `{"specversion":"1.0","source":"s","type":"t"}`,
		"source empty":          `{"specversion":"1.0","id":"1","source":"","type":"t"}`,
		"type object":           `{"specversion":"1.0","id":"1","source":"s","type":{}}`,
		"bad time":              `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"noon"}`,
		"data and data_base64":  `{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"MQ=="}`,
		"bad base64":            `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`,
		"upper-case extension":  `{"specversion":"1.0","id":"1","source":"s","type":"t","Ext":"v"}`,
		"object extension":      `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":{}}`,
		"duplicate extension":   `{"specversion":"1.0","id":"1","source":"s","type":"t","ext":"a","ext":"b"}`,
		"duplicate id":          `{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}`,
		"subject with newline":  `{"specversion":"1.0","id":"1","source":"s","type":"t","subject":"a\nb"}`,
		"datacontenttype array": `{"specversion":"1.0","id":"1","source":"s","type":"t","datacontenttype":[]}`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(bad), ce)
			require.ErrorIs(t, err, eventbridge.ErrInvalidField)
		})
	}
}

// TestDecodeTraceContextInBody: trace context a body carries, in webhook metadata or CloudEvents
// extensions, is held to the rules of the traceparent and tracestate headers before it reaches an
// event: an invalid traceparent is dropped with its tracestate, a later version's is cut to its
// first 55 characters, and a tracestate that is invalid or has no traceparent is dropped.
func TestDecodeTraceContextInBody(t *testing.T) {
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	future := "01" + tp[2:]
	tests := []struct {
		name          string
		parent, state string // JSON values; "" leaves the member out
		wantParent    string
		wantState     string
	}{
		{"valid pair", `"` + tp + `"`, `"congo=t61rcWkgMzE"`, tp, "congo=t61rcWkgMzE"},
		{"parent only", `"` + tp + `"`, "", tp, ""},
		{"not a traceparent", `"not-a-trace"`, `"a=b"`, "", ""},
		{"upper-case hex", `"` + strings.ToUpper(tp) + `"`, "", "", ""},
		{"version 00 with more", `"` + tp + `-x"`, "", "", ""},
		{"future version cut to 55", `"` + future + `-more-fields"`, `"a=b"`, future, "a=b"},
		{"future version with non-ASCII rest", `"` + future + "-" + strings.Repeat("é", 400) + `"`, "", future, ""},
		{"tracestate without traceparent", "", `"a=b"`, "", ""},
		{"invalid tracestate", `"` + tp + `"`, `"A=B"`, tp, ""},
		{"tracestate key twice", `"` + tp + `"`, `"a=1,a=2"`, tp, ""},
		{"tracestate non-ASCII", `"` + tp + `"`, `"a=\u00e9"`, tp, ""},
	}
	formats := map[string]func(members string) string{
		"webhook": func(m string) string { return `{"event":"x","data":{},"metadata":{"k":"v"` + m + `}}` },
		"cloudevents": func(m string) string {
			return `{"specversion":"1.0","id":"1","source":"s","type":"t"` + m + `,"data":{}}`
		},
	}
	for format, build := range formats {
		for _, tt := range tests {
			t.Run(format+"/"+tt.name, func(t *testing.T) {
				var m string
				if tt.parent != "" {
					m += `,"traceparent":` + tt.parent
				}
				if tt.state != "" {
					m += `,"tracestate":` + tt.state
				}
				e, err := eventbridge.Decode([]byte(build(m)), "application/json")
				require.NoError(t, err)
				assert.Equal(t, format, e.Meta(fanbridge.MetaFormat))
				assert.Equal(t, tt.wantParent, e.Meta(fanbridge.MetaTraceparent))
				assert.Equal(t, tt.wantState, e.Meta(fanbridge.MetaTracestate))
				_, hasParent := e.Metadata[fanbridge.MetaTraceparent]
				assert.Equal(t, tt.wantParent != "", hasParent, "no empty traceparent is left behind")
				_, hasState := e.Metadata[fanbridge.MetaTracestate]
				assert.Equal(t, tt.wantState != "", hasState, "no empty tracestate is left behind")
			})
		}
	}

	t.Run("cloudevents/number traceparent", func(t *testing.T) {
		e, err := eventbridge.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":5,"tracestate":"a=b"}`), "application/json")
		require.NoError(t, err)
		assert.NotContains(t, e.Metadata, fanbridge.MetaTraceparent)
		assert.NotContains(t, e.Metadata, fanbridge.MetaTracestate)
	})
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, body, contentType string
		want                    error
	}{
		{"empty", ``, "", eventbridge.ErrMalformed},
		{"blank", " \n\t", "", eventbridge.ErrMalformed},
		{"truncated", `{"id":"1"`, "", eventbridge.ErrMalformed},
		{"trailing", `{} {}`, "", eventbridge.ErrMalformed},
		{"invalid utf-8", "{\"id\":\"\xff\"}", "", eventbridge.ErrMalformed},
		{"deep", strings.Repeat("[", 65) + strings.Repeat("]", 65), "", eventbridge.ErrMalformed},
		{"objects nested one too deep", nestedObjects(eventbridge.MaxDepth + 1), "", eventbridge.ErrMalformed},
		{"id of 1025 bytes", `{"id":"` + strings.Repeat("i", 1025) + `","detail-type":"t","source":"s","detail":{}}`, "", eventbridge.ErrInvalidField},
		{"metadata key of 257 bytes", `{"event":"x","data":{},"metadata":{"` + strings.Repeat("k", 257) + `":"v"}}`, "", eventbridge.ErrInvalidField},
		{"not an object", `[1,2]`, "", eventbridge.ErrUnknownFormat},
		{"unknown keys", `{"hello":"world"}`, "", eventbridge.ErrUnknownFormat},
		{"xml", `{}`, "application/xml", eventbridge.ErrUnsupportedMediaType},
		{"latin1", `{}`, "application/json; charset=iso-8859-1", eventbridge.ErrUnsupportedMediaType},
		{"cloudevents batch", `[]`, "application/cloudevents-batch+json", eventbridge.ErrUnsupportedMediaType},
		{"missing detail", `{"id":"1","detail-type":"t","source":"s"}`, "", eventbridge.ErrInvalidField},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eventbridge.Decode([]byte(tt.body), tt.contentType)
			require.ErrorIs(t, err, tt.want)
		})
	}
	t.Run("strings at the limit are fine", func(t *testing.T) {
		id, key := strings.Repeat("i", 1024), strings.Repeat("k", 256)
		e, err := eventbridge.Decode([]byte(`{"id":"`+id+`","detail-type":"t","source":"s","detail":{}}`), "")
		require.NoError(t, err)
		assert.Equal(t, id, e.ID)
		e, err = eventbridge.Decode([]byte(`{"event":"x","data":{},"metadata":{"`+key+`":"v"}}`), "")
		require.NoError(t, err)
		assert.Equal(t, "v", e.Meta(key))
	})
	t.Run("nesting at the limit is fine", func(t *testing.T) {
		_, err := eventbridge.Decode([]byte(nestedObjects(eventbridge.MaxDepth)), "")
		require.NoError(t, err)
		body := `{"id":"1","detail-type":"t","source":"s","detail":{"eventBody":` +
			strings.Repeat("[", 61) + strings.Repeat("]", 61) + `}}`
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, "the depth passed; without a topicName the detail is not Genesys'")
		assert.Equal(t, body[len(`{"id":"1","detail-type":"t","source":"s","detail":`):len(body)-1], string(e.Data))
		// envelope (1), detail (2), eventBody (3), then 61 arrays: depth 64.
		body = `{"id":"1","detail-type":"t","source":"s","detail":{"eventBody":{"a":` +
			strings.Repeat("[", 61) + strings.Repeat("]", 61) + `}}}`
		_, err = eventbridge.Decode([]byte(body), "")
		require.NoError(t, err)
		body = `{"id":"1","detail-type":"t","source":"s","detail":{"eventBody":{"a":` +
			strings.Repeat("[", 62) + strings.Repeat("]", 62) + `}}}`
		_, err = eventbridge.Decode([]byte(body), "")
		require.ErrorIs(t, err, eventbridge.ErrMalformed)
	})
}

// nestedObjects is a webhook whose objects nest depth deep, the top-level one counting as one.
func nestedObjects(depth int) string {
	return `{"event":"x","data":` + strings.Repeat(`{"a":`, depth-2) + `{}` + strings.Repeat(`}`, depth-2) + `}`
}

func TestNewDecoder(t *testing.T) {
	_, err := eventbridge.NewDecoder("xml")
	require.ErrorIs(t, err, eventbridge.ErrInvalidConfig)

	d, err := eventbridge.NewDecoder(eventbridge.FormatEventBridge)
	require.NoError(t, err)
	assert.Equal(t, []eventbridge.Format{eventbridge.FormatEventBridge}, d.Formats())
	_, err = d.Decode(readSample(t, "v2.conversations.transcription.json"), "")
	require.NoError(t, err)
	_, err = d.Decode(readSample(t, "websocket.v2.users.activity.REPAIRED.json"), "")
	require.ErrorIs(t, err, eventbridge.ErrUnknownFormat)
	_, err = d.Decode([]byte(`{"specversion":"1.0","id":"1","source":"s","type":"t"}`), "application/cloudevents+json")
	require.ErrorIs(t, err, eventbridge.ErrUnknownFormat)

	all, err := eventbridge.NewDecoder()
	require.NoError(t, err)
	assert.Equal(t, []eventbridge.Format{eventbridge.FormatEventBridge, eventbridge.FormatCloudEvents,
		eventbridge.FormatNotification, eventbridge.FormatWebhook, eventbridge.FormatWebhookAttributes,
		eventbridge.FormatOpenMessaging, eventbridge.FormatStandardWebhooks}, all.Formats())
}

// A time outside the years 0001 to 9999 in UTC could be neither produced to Kafka nor
// dead-lettered (RFC 3339 writes no other), nor sent as a protobuf Timestamp (from 0001). A time field of the envelope is refused (400, the
// sender's mistake); an eventBody's eventTime, which is the sender's data, just gives no time.
func TestTimesOutsideTheYearsRFC3339Writes(t *testing.T) {
	for _, body := range []string{
		`{"id":"1","detail-type":"t","source":"s","time":"0000-01-01T00:00:00+01:00","detail":{}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0000-01-01T00:00:00+01:00","data":{}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"0000-06-01T00:00:00Z","data":{}}`,
		`{"id":"x","eventType":"t","attributes":{},"timestamp":999999999999999}`,
		`{"id":"x","eventType":"t","attributes":{},"timestamp":"9999-12-31T23:59:60Z"}`,
	} {
		_, err := eventbridge.Decode([]byte(body), "")
		require.ErrorIs(t, err, eventbridge.ErrInvalidField, body)
	}
	e, err := eventbridge.Decode([]byte(`{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity","eventBody":{"eventTime":253402300800000}}`), "")
	require.NoError(t, err)
	assert.True(t, e.Time.IsZero(), "%v", e.Time)
}

// A key that differs only in case from one the decoder reads is a duplicate to encoding/json,
// which matches struct fields ignoring case (Unicode folding: "ſ" is "s", "K" is "k") and keeps
// the last: a consumer decoding Raw so would read another source than the one checked. Such a
// body is refused; keys that merely look alike are not.
func TestKeysDifferingOnlyInCaseAreDuplicates(t *testing.T) {
	const base = `{"id":"1","detail-type":"t","source":"aws.partner/genesys.com/cloud/org/","account":"123456789012","detail":{}%s}`
	for _, extra := range []string{
		`,"ſource":"evil"`, `,"Source":"evil"`, `,"SOURCE":"evil"`, `,"ID":"2"`, `,"Detail-Type":"u"`,
		`,"\u017fource":"evil"`, `,"Account":"210987654321"`,
	} {
		_, err := eventbridge.Decode([]byte(fmt.Sprintf(base, extra)), "")
		require.ErrorIs(t, err, eventbridge.ErrInvalidField, extra)
		assert.Contains(t, err.Error(), "written in another case")
		assert.NotContains(t, err.Error(), "evil")
	}
	for _, extra := range []string{`,"sources":"x"`, `,"version":"0"`, `,"detail_type":"x"`, `,"ѕource":"x"`} { // the last starts with a Cyrillic letter
		_, err := eventbridge.Decode([]byte(fmt.Sprintf(base, extra)), "")
		require.NoError(t, err, extra)
	}
	// A variant of a key that is absent is read by encoding/json as that key: refused too.
	for _, body := range []string{
		`{"id":"1","detail-type":"t","source":"s","detail":{},"Account":"210987654321"}`,
		`{"id":"x","eventType":"t","attributes":{},"Source":"evil"}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","Subject":"x"}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"MetaData":{}}`,
	} {
		_, err := eventbridge.Decode([]byte(body), "")
		require.ErrorIs(t, err, eventbridge.ErrInvalidField, body)
	}
	// A generic event's detail is the sender's data, where keys that differ only in case are
	// its business: it is accepted, and a key with a variant is not read at all (no topic, the
	// whole detail as data, no time or correlation id from it), so that nothing the decoder read
	// differs from what a consumer decoding Raw with encoding/json reads.
	for _, detail := range []string{
		`{"timestamp":"2024-01-02T03:04:05Z","Timestamp":1}`,
		`{"metadata":{"CorrelationId":"a"},"Metadata":{"CorrelationId":"b"}}`,
		`{"topicName":"x","TopicName":"y"}`,
		`{"TopicName":"y"}`,
		`{"eventBody":{"a":1},"EventBody":{"evil":1}}`,
	} {
		e, err := eventbridge.Decode([]byte(`{"id":"1","detail-type":"Order Placed","source":"com.example.shop","detail":`+detail+`}`), "")
		require.NoError(t, err, detail)
		assert.Empty(t, e.Topic, detail)
		assert.JSONEq(t, detail, string(e.Data), detail)
		assert.True(t, e.Time.IsZero(), detail)
		assert.Empty(t, e.Meta(fanbridge.MetaCorrelationID), detail)
	}
	// A detail with both topicName and eventBody is a Genesys notification, whose keys are the
	// decoder's: the topic a route and a Kafka topic template read must be the one a consumer
	// decoding Raw with encoding/json reads.
	for _, detail := range []string{
		`{"topicName":"v2.users.x.activity","eventBody":{},"TopicName":"v2.users.y.activity"}`,
		`{"TOPICNAME":"v2.users.y.activity","topicName":"v2.users.x.activity","eventBody":{}}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"EventBody":{"evil":1}}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"Metadata":{"CorrelationId":"evil"}}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"timeſtamp":1}`,
		// encoding/json skips a null and reads the variant after it.
		`{"topicName":null,"TopicName":"v2.users.victim.activity","eventBody":{"a":1}}`,
		`{"topicName":"v2.users.x.activity","eventBody":null,"EventBody":{"evil":1}}`,
		// Or reads the variant as the key, so these are Genesys notifications to it too.
		`{"topicName":"v2.users.x.activity","EventBody":{"evil":1}}`,
		`{"TopicName":"v2.users.victim.activity","eventBody":{"a":1}}`,
	} {
		_, err := eventbridge.Decode([]byte(`{"id":"1","detail-type":"t","source":"s","detail":`+detail+`}`), "")
		require.ErrorIs(t, err, eventbridge.ErrInvalidField, detail)
		assert.Contains(t, err.Error(), "detail.", detail)
		assert.NotContains(t, err.Error(), "evil", detail)
	}
}

// A top-level key whose value is null counts as absent when the format is picked, as it does
// when the format's fields are read: a generic webhook serialised with its unset fields as null
// is still a webhook.
func TestNullKeysDoNotPickTheFormat(t *testing.T) {
	for body, format := range map[string]string{
		`{"event":"x","data":{},"detail":null}`:                                    "webhook",
		`{"event":"x","data":{},"eventBody":null,"topicName":null}`:                "webhook",
		`{"topicName":"v2.users.x.activity","eventBody":{},"detail":null}`:         "notification",
		`{"id":"1","detail-type":"t","source":"s","detail":{},"specversion":null}`: "eventbridge",
	} {
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		assert.Equal(t, format, e.Meta(fanbridge.MetaFormat), body)
	}
}

// The metadata objects a decoder reads by name follow the same case rule: a consumer decoding Raw
// with encoding/json must read the source that was checked, the time and the correlation id that
// were kept.
func TestMetadataKeysDifferingOnlyInCase(t *testing.T) {
	for _, body := range []string{
		`{"event":"v2.users.{id}.presence","data":{},"metadata":{"source":"aws.partner/genesys.com/cloud/org/bus","Source":"evil"}}`,
		`{"event":"v2.users.{id}.presence","data":{},"metadata":{"\u017fource":"evil","source":"aws.partner/genesys.com/cloud/org/bus"}}`,
		`{"event":"x","data":{},"metadata":{"timestamp":"2024-01-02T03:04:05Z","Timestamp":"2030-01-02T03:04:05Z"}}`,
		`{"event":"x","data":{},"metadata":{"TIME":"2030-01-02T03:04:05Z"}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"v2.users.x.activity","eventBody":{},"metadata":{"CorrelationId":"good","correlationId":"evil"}}}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"metadata":{"CorrelationId":"good","CORRELATIONID":"evil"}}`,
		`{"topicName":"v2.users.x.activity","eventBody":{},"metadata":{"correlationId":"evil"}}`,
		// An envelope detail with both topicName and eventBody is a Genesys notification, null or not.
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"v2.users.x.activity","eventBody":null,"metadata":{"CorrelationId":"good","correlationId":"evil"}}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":null,"eventBody":{},"metadata":{"correlationId":"evil"}}}`,
	} {
		_, err := eventbridge.Decode([]byte(body), "")
		require.ErrorIs(t, err, eventbridge.ErrInvalidField, body)
		assert.Contains(t, err.Error(), "written in another case", body)
		assert.NotContains(t, err.Error(), "evil", body)
	}
	// Metadata keys that are not read by name, and a generic detail's metadata, are the sender's.
	for _, body := range []string{
		`{"event":"x","data":{},"metadata":{"sources":"a","Region2":"b"}}`,
	} {
		_, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
	}
	// There a CorrelationId with a case variant beside it, or in its place, is not read: which
	// one the sender meant is its business, and a consumer decoding Raw reads the other.
	for _, body := range []string{
		`{"id":"1","detail-type":"Order Placed","source":"com.example.shop","detail":{"metadata":{"CorrelationId":"a","correlationId":"b"}}}`,
		`{"id":"1","detail-type":"Order Placed","source":"com.example.shop","detail":{"metadata":{"correlationId":"b","CorrelationId":"a"}}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"v2.users.x.activity","metadata":{"CorrelationId":"a","CORRELATIONID":"b"}}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"eventBody":{},"metadata":{"correlationid":"b"}}}`,
	} {
		e, err := eventbridge.Decode([]byte(body), "")
		require.NoError(t, err, body)
		assert.Empty(t, e.Meta(fanbridge.MetaCorrelationID), body)
	}
	e, err := eventbridge.Decode([]byte(`{"id":"1","detail-type":"t","source":"s","detail":{"metadata":{"CorrelationId":"a","other":"b"}}}`), "")
	require.NoError(t, err)
	assert.Equal(t, "a", e.Meta(fanbridge.MetaCorrelationID), "a generic detail's CorrelationId alone is read")
}

// A webhook's correlation id comes from its correlationId alone, whatever the order of the keys:
// a metadata key spelled as the Metadata key it is kept under does not replace it.
func TestWebhookCorrelationIDComesFromCorrelationID(t *testing.T) {
	for _, meta := range []string{
		`{"correlationId":"a","correlation-id":"b"}`,
		`{"correlation-id":"b","correlationId":"a"}`,
	} {
		e, err := eventbridge.Decode([]byte(`{"event":"x","data":{},"metadata":`+meta+`}`), "")
		require.NoError(t, err, meta)
		assert.Equal(t, "a", e.Meta(fanbridge.MetaCorrelationID), meta)
	}
	e, err := eventbridge.Decode([]byte(`{"event":"x","data":{},"metadata":{"correlation-id":"b"}}`), "")
	require.NoError(t, err)
	assert.Empty(t, e.Meta(fanbridge.MetaCorrelationID))
	// correlationId is read in any case.
	for _, k := range []string{"CorrelationId", "CORRELATIONID"} {
		e, err := eventbridge.Decode([]byte(`{"event":"x","data":{},"metadata":{"`+k+`":"a"}}`), "")
		require.NoError(t, err, k)
		assert.Equal(t, "a", e.Meta(fanbridge.MetaCorrelationID), k)
	}
}
