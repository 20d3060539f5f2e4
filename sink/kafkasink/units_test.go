package kafkasink_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// sampleEvent decodes a Genesys sample from testdata, an EventBridge envelope or a WebSocket
// notification, into an Event the way a decoder would.
func sampleEvent(t testing.TB, name string) *fanbridge.Event {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	var env struct {
		ID         string `json:"id"`
		DetailType string `json:"detail-type"`
		Source     string `json:"source"`
		Time       string `json:"time"`
		Detail     struct {
			TopicName string            `json:"topicName"`
			EventBody json.RawMessage   `json:"eventBody"`
			Metadata  map[string]string `json:"metadata"`
		} `json:"detail"`
		TopicName string          `json:"topicName"`
		EventBody json.RawMessage `json:"eventBody"`
	}
	require.NoError(t, json.Unmarshal(raw, &env))
	e := &fanbridge.Event{ID: env.ID, Type: env.DetailType, Source: env.Source, Raw: raw}
	if env.DetailType == "" { // a WebSocket notification
		e.ID = "ws-" + name
		e.Topic, e.Data = env.TopicName, env.EventBody
		return e
	}
	e.Topic, e.Data = env.Detail.TopicName, env.Detail.EventBody
	e.Time, err = time.Parse(time.RFC3339Nano, env.Time)
	require.NoError(t, err)
	if id := env.Detail.Metadata["CorrelationId"]; id != "" {
		e.Metadata = map[string]string{fanbridge.MetaCorrelationID: id}
	}
	return e
}

func TestKeyFuncs(t *testing.T) {
	tests := []struct {
		name         string
		e            *fanbridge.Event
		conversation string
		user         string
	}{
		{
			name:         "customer.end sample",
			e:            sampleEvent(t, "v2.detail.events.conversation.customer.end.json"),
			conversation: "2f7bf00a-0fc2-4d6a-9b56-92238191433e",
			user:         "58fb5dac-f077-4eec-a25f-c638dbdd4368", // no user: the event ID
		},
		{
			name:         "transcription sample",
			e:            sampleEvent(t, "v2.conversations.transcription.json"),
			conversation: "97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a",
			user:         "6efd5506-3fd6-09a1-5599-09ae48bd6dd8",
		},
		{
			name:         "websocket activity sample",
			e:            sampleEvent(t, "websocket.v2.users.activity.REPAIRED.json"),
			conversation: "ws-websocket.v2.users.activity.REPAIRED.json",
			user:         "e40f28ea-fa86-493f-a5b8-d559c8533c96",
		},
		{
			name: "transcription topic, no conversation id in the body",
			e: &fanbridge.Event{ID: "e0", Type: "v2.conversations.{id}.transcription",
				Topic: "v2.conversations.97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a.transcription", Data: json.RawMessage(`{"transcripts":[]}`)},
			conversation: "97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a",
			user:         "e0",
		},
		{
			name:         "conversation id only in the body",
			e:            &fanbridge.Event{ID: "e1", Type: "v2.detail.events.conversation.{id}.user.end", Data: json.RawMessage(`{"conversationId":"c-1","userId":"u-1"}`)},
			conversation: "c-1",
			user:         "u-1",
		},
		{
			name:         "template placeholder is not an id",
			e:            &fanbridge.Event{ID: "e2", Type: "v2.users.{id}.presence"},
			conversation: "e2",
			user:         "e2",
		},
		{
			name:         "word after the entity is not an id",
			e:            &fanbridge.Event{ID: "e3", Type: "v2.routing.queues.{id}.conversations.calls", Topic: "v2.routing.queues.0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9.conversations.calls"},
			conversation: "e3",
			user:         "e3",
		},
		{
			name:         "body that is not an object",
			e:            &fanbridge.Event{ID: "e4", Data: json.RawMessage(`["conversationId"]`)},
			conversation: "e4",
			user:         "e4",
		},
		{
			name:         "body field that is not a string",
			e:            &fanbridge.Event{ID: "e5", Data: json.RawMessage(`{"conversationId":42,"userId":null}`)},
			conversation: "e5",
			user:         "e5",
		},
		{
			name:         "user.end topic keeps the conversation, body gives the user",
			e:            &fanbridge.Event{ID: "e6", Topic: "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.user.end", Data: json.RawMessage(`{"userId":"8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c"}`)},
			conversation: "2f7bf00a-0fc2-4d6a-9b56-92238191433e",
			user:         "8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c",
		},
		// An audit body's userId is whoever made the change; the audited user is the entity.
		{
			name: "presence audit: the audited user, from the topic",
			e: &fanbridge.Event{ID: "e7", Type: "v2.audits.entitytype.{id}.entityid.{id}",
				Topic: "v2.audits.entitytype.UserPresence.entityid.278522be-1683-4877-8257-4164a177be89",
				Data:  json.RawMessage(`{"userId":"aaaaaaaa-1111-4222-8333-444444444444","entityType":"UserPresence","entity":{"id":"278522be-1683-4877-8257-4164a177be89"}}`)},
			conversation: "e7",
			user:         "278522be-1683-4877-8257-4164a177be89",
		},
		{
			name: "user audit: the audited user, from the body",
			e: &fanbridge.Event{ID: "e8", Type: "v2.audits.entitytype.{id}.entityid.{id}",
				Data: json.RawMessage(`{"userId":"aaaaaaaa-1111-4222-8333-444444444444","entityType":"User","entity":{"id":"8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c"}}`)},
			conversation: "e8",
			user:         "8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c",
		},
		{
			name: "user audit naming no entity: never the one who made the change",
			e: &fanbridge.Event{ID: "e9", Type: "v2.audits.entitytype.{id}.entityid.{id}",
				Data: json.RawMessage(`{"userId":"aaaaaaaa-1111-4222-8333-444444444444","entityType":"UserPresence"}`)},
			conversation: "e9",
			user:         "e9",
		},
		{
			name: "audit of another entity: the body's userId, as for any event",
			e: &fanbridge.Event{ID: "e10", Type: "v2.audits.entitytype.{id}.entityid.{id}",
				Topic: "v2.audits.entitytype.OAuthClient.entityid.5d3e1a2b-0c4f-4a6b-8d9e-1f2a3b4c5d6e",
				Data:  json.RawMessage(`{"userId":"aaaaaaaa-1111-4222-8333-444444444444","entityType":"OAuthClient","entity":{"id":"5d3e1a2b-0c4f-4a6b-8d9e-1f2a3b4c5d6e"}}`)},
			conversation: "e10",
			user:         "aaaaaaaa-1111-4222-8333-444444444444",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.conversation, kafkasink.ConversationKey(tt.e), "ConversationKey")
			assert.Equal(t, tt.user, kafkasink.UserKey(tt.e), "UserKey")
			assert.Equal(t, tt.e.ID, kafkasink.KeyByID(tt.e))
			assert.Empty(t, kafkasink.NoKey(tt.e))
		})
	}
}

func TestSanitizeAndValidTopic(t *testing.T) {
	tests := []struct {
		in, want string
		valid    bool
	}{
		{in: "v2.users.{id}.presence", want: "v2.users.id.presence", valid: true},
		{in: "gen-presence-status", want: "gen-presence-status", valid: true},
		{in: "aws.partner/genesys.com/cloud/org/suffix", want: "aws.partner_genesys.com_cloud_org_suffix", valid: true},
		{in: "café ☕", want: "caf___", valid: true},
		{in: "{}", want: "", valid: false},
		{in: "..", want: "..", valid: false},
		{in: strings.Repeat("a", 250), want: strings.Repeat("a", 250), valid: false},
		{in: strings.Repeat("a", 249), want: strings.Repeat("a", 249), valid: true},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 30)], func(t *testing.T) {
			got := kafkasink.SanitizeTopic(tt.in)
			assert.Equal(t, tt.want, got)
			err := kafkasink.ValidTopic(got)
			if tt.valid {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, kafkasink.ErrInvalidTopic)
			}
		})
	}
	assert.ErrorIs(t, kafkasink.ValidTopic("has space"), kafkasink.ErrInvalidTopic)
	assert.ErrorIs(t, kafkasink.ValidTopic("."), kafkasink.ErrInvalidTopic)
	assert.ErrorIs(t, kafkasink.ValidTopic(""), kafkasink.ErrInvalidTopic)
}

func TestNewRejectsBadOptions(t *testing.T) {
	c := newCluster(t)
	cl := newClient(t, c)
	tests := []struct {
		name   string
		opts   []kafkasink.Option
		wantIs error
		text   string
	}{
		{name: "no topic", opts: nil, wantIs: kafkasink.ErrInvalidConfig, text: "no topic"},
		{name: "two topics", opts: []kafkasink.Option{kafkasink.WithTopic("a"), kafkasink.WithTopic("b")}, wantIs: kafkasink.ErrInvalidConfig, text: "2 topic options"},
		{name: "bad fixed topic", opts: []kafkasink.Option{kafkasink.WithTopic("a b")}, wantIs: kafkasink.ErrInvalidTopic},
		{name: "bad mapped topic", opts: []kafkasink.Option{kafkasink.WithTopicByType(map[string]string{"t": "a/b"}, "")}, wantIs: kafkasink.ErrInvalidTopic, text: `type "t"`},
		{name: "bad fallback", opts: []kafkasink.Option{kafkasink.WithTopicByType(nil, "..")}, wantIs: kafkasink.ErrInvalidTopic, text: "fallback"},
		// Every event would fail with ErrUnmappedType.
		{name: "empty type map, no fallback", opts: []kafkasink.Option{kafkasink.WithTopicByType(map[string]string{}, "")}, wantIs: kafkasink.ErrInvalidConfig, text: "no type is mapped to a topic and there is no fallback"},
		{name: "nil type map, no fallback", opts: []kafkasink.Option{kafkasink.WithTopicByType(nil, "")}, wantIs: kafkasink.ErrInvalidConfig, text: "no type is mapped to a topic and there is no fallback"},
		{name: "unknown placeholder", opts: []kafkasink.Option{kafkasink.WithTopicTemplate("x.{detail}")}, wantIs: kafkasink.ErrInvalidTopic, text: "{detail}"},
		{name: "unclosed placeholder", opts: []kafkasink.Option{kafkasink.WithTopicTemplate("x.{type")}, wantIs: kafkasink.ErrInvalidTopic, text: "unclosed"},
		{name: "bad literal", opts: []kafkasink.Option{kafkasink.WithTopicTemplate("x/{type}")}, wantIs: kafkasink.ErrInvalidTopic, text: "outside a placeholder"},
		{name: "empty template", opts: []kafkasink.Option{kafkasink.WithTopicTemplate("")}, wantIs: kafkasink.ErrInvalidTopic},
		// Templates every event would fail with.
		{name: "reserved name as template", opts: []kafkasink.Option{kafkasink.WithTopicTemplate("..")}, wantIs: kafkasink.ErrInvalidTopic, text: "reserved"},
		{name: "template over the limit", opts: []kafkasink.Option{kafkasink.WithTopicTemplate(strings.Repeat("a", 250))}, wantIs: kafkasink.ErrInvalidTopic, text: "longer than 249"},
		{name: "template literal leaves no room", opts: []kafkasink.Option{kafkasink.WithTopicTemplate(strings.Repeat("a", 249) + "{type}")}, wantIs: kafkasink.ErrInvalidTopic, text: "no room"},
		{name: "nil topic func", opts: []kafkasink.Option{kafkasink.WithTopicFunc(nil)}, wantIs: kafkasink.ErrInvalidTopic},
		{name: "nil key func", opts: []kafkasink.Option{kafkasink.WithTopic("a"), kafkasink.WithKey(nil)}, wantIs: kafkasink.ErrInvalidConfig},
		{name: "zero close timeout", opts: []kafkasink.Option{kafkasink.WithTopic("a"), kafkasink.WithCloseTimeout(0)}, wantIs: kafkasink.ErrInvalidConfig},
		{name: "negative in flight", opts: []kafkasink.Option{kafkasink.WithTopic("a"), kafkasink.WithMaxInFlight(-1)}, wantIs: kafkasink.ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kafkasink.New(cl, tt.opts...)
			require.ErrorIs(t, err, tt.wantIs)
			assert.ErrorIs(t, err, kafkasink.ErrInvalidConfig, "every construction error wraps ErrInvalidConfig")
			assert.Contains(t, err.Error(), tt.text)
			assert.Nil(t, s)
		})
	}
	_, err := kafkasink.New(nil, kafkasink.WithTopic("a"))
	assert.ErrorIs(t, err, kafkasink.ErrInvalidConfig)
}

// ValidTopicTemplate gives the answer New gives, without a client: it refuses a template that
// no event could turn into a valid topic name, since every event would then fail permanently.
func TestValidTopicTemplate(t *testing.T) {
	for _, tmpl := range []string{"genesys.{type}", "{topic}", "a-{account}_{region}.{source}", "plain", ".{type}", "...",
		strings.Repeat("a", 249), strings.Repeat("a", 248) + "{type}"} {
		assert.NoError(t, kafkasink.ValidTopicTemplate(tmpl), tmpl)
	}
	for tmpl, text := range map[string]string{
		"x.{detail}": "{detail}", "x.{type": "unclosed", "x/{type}": "outside a placeholder", "": "empty",
		".": "reserved", "..": "reserved", strings.Repeat("a", 250): "longer than 249",
		strings.Repeat("a", 249) + "{type}": "no room", strings.Repeat("a", 200) + "{type}" + strings.Repeat("b", 60): "no room",
	} {
		err := kafkasink.ValidTopicTemplate(tmpl)
		require.ErrorIs(t, err, kafkasink.ErrInvalidTopic, tmpl)
		assert.Contains(t, err.Error(), text, tmpl)
	}
}

func TestDialRejectsBadConfig(t *testing.T) {
	const secret = "s3cr3t-password"
	tests := []struct {
		name string
		cfg  kafkasink.ClientConfig
		text string
	}{
		{name: "no brokers", cfg: kafkasink.ClientConfig{}, text: "no brokers"},
		{name: "empty broker", cfg: kafkasink.ClientConfig{Brokers: []string{""}}, text: "empty broker"},
		{name: "negative linger", cfg: kafkasink.ClientConfig{Brokers: []string{"b:9092"}, Linger: -1}, text: "linger"},
		{name: "negative delivery timeout", cfg: kafkasink.ClientConfig{Brokers: []string{"b:9092"}, DeliveryTimeout: -1}, text: "delivery timeout"},
		{name: "unknown mechanism", cfg: kafkasink.ClientConfig{Brokers: []string{"b:9092"}, SASL: &kafkasink.SASL{Mechanism: "GSSAPI", Username: "u", Password: secret}}, text: `"GSSAPI"`},
		{name: "no username", cfg: kafkasink.ClientConfig{Brokers: []string{"b:9092"}, SASL: &kafkasink.SASL{Mechanism: kafkasink.SASLPlain, Password: secret}}, text: "without a username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := kafkasink.Dial(tt.cfg, kafkasink.WithTopic("a"))
			require.ErrorIs(t, err, kafkasink.ErrInvalidConfig)
			assert.Contains(t, err.Error(), tt.text)
			assert.NotContains(t, err.Error(), secret, "the password never reaches an error")
			assert.Nil(t, s)
		})
	}
	_, err := kafkasink.Dial(kafkasink.ClientConfig{Brokers: []string{"b:9092"}}, kafkasink.WithTopic("a b"))
	assert.ErrorIs(t, err, kafkasink.ErrInvalidTopic, "sink options are checked too")
}

func TestEventFromRecordRoundTrip(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
	events := []*fanbridge.Event{
		sampleEvent(t, "v2.detail.events.conversation.customer.end.json"),
		sampleEvent(t, "v2.conversations.transcription.json"),
		sampleEvent(t, "websocket.v2.users.activity.REPAIRED.json"),
		customerEndEvent("with-trace-context"),
	}
	odd := presenceEvent("odd-metadata")
	odd.Metadata = map[string]string{"": "empty name", "empty-value": "", "caf\u00e9": "x"}
	events = append(events, odd)
	for _, e := range events {
		require.NoError(t, s.Send(ctx, e))
	}
	got := readEvents(t, ctx, c, "events")
	require.Len(t, got, len(events))
	for i, want := range events {
		want = want.Clone()
		want.Raw = nil // the value is the body; Raw does not travel
		assert.True(t, want.Time.Equal(got[i].Time))
		got[i].Time = want.Time
		assert.Equal(t, want, got[i])
	}
}

func TestEventFromRecordRefuses(t *testing.T) {
	tests := []struct {
		name    string
		headers []kgo.RecordHeader
		text    string
	}{
		{name: "no id", headers: []kgo.RecordHeader{{Key: "ce_type", Value: []byte("t")}}, text: "no ce_id"},
		{name: "bad time", headers: []kgo.RecordHeader{{Key: "ce_id", Value: []byte("1")}, {Key: "ce_time", Value: []byte("yesterday")}}, text: "ce_time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kafkasink.EventFromRecord(&kgo.Record{Headers: tt.headers, Value: []byte(`{}`)})
			require.ErrorIs(t, err, kafkasink.ErrNotEvent)
			assert.Contains(t, err.Error(), tt.text)
		})
	}
	// Unknown headers are ignored, a repeated one counts once (the last); the metadata prefix alone
	// is the entry with the empty name, which a Sink writes so.
	e, err := kafkasink.EventFromRecord(&kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("1")}, {Key: "x-other", Value: []byte("y")},
		{Key: "ce_type", Value: []byte("a")}, {Key: "ce_type", Value: []byte("b")},
		{Key: "fanbridge-meta-", Value: []byte("no key")},
	}})
	require.NoError(t, err)
	assert.Equal(t, &fanbridge.Event{ID: "1", Type: "b", Metadata: map[string]string{"": "no key"}}, e)
	// The time too: a bad one the last replaces is not looked at, a bad last one is refused.
	e, err = kafkasink.EventFromRecord(&kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("1")}, {Key: "ce_time", Value: []byte("not a time")},
		{Key: "ce_time", Value: []byte("2022-06-14T16:12:11Z")},
	}})
	require.NoError(t, err)
	assert.Equal(t, time.Date(2022, 6, 14, 16, 12, 11, 0, time.UTC), e.Time)
	_, err = kafkasink.EventFromRecord(&kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "ce_id", Value: []byte("1")}, {Key: "ce_time", Value: []byte("2022-06-14T16:12:11Z")},
		{Key: "ce_time", Value: []byte("not a time")},
	}})
	require.ErrorIs(t, err, kafkasink.ErrNotEvent)
}

// TestTimeOutsideReadableYearsIsPermanent: a Sink writes no time EventFromRecord would not read
// back, the year 0000 included, which has an RFC 3339 form but which the intake, and so
// EventFromRecord, refuses.
func TestTimeOutsideReadableYearsIsPermanent(t *testing.T) {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	require.NoError(t, err)
	defer cl.Close()
	s := newSink(t, cl, kafkasink.WithTopic("events"))
	for _, year := range []int{-1, 0, 10000} {
		e := &fanbridge.Event{ID: "x", Time: time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)}
		err := s.Send(testContext(t), e)
		require.Error(t, err, "year %d", year)
		assert.True(t, retry.IsPermanent(err))
		assert.Contains(t, err.Error(), "RFC 3339")
	}
}
