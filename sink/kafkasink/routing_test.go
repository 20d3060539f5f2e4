package kafkasink_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracetest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

const (
	conversationID = "2f7bf00a-0fc2-4d6a-9b56-92238191433e"
	userID         = "8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c"
	presenceType   = "v2.users.{id}.presence"
	customerEnd    = "v2.detail.events.conversation.{id}.customer.end"
)

func presenceEvent(id string) *fanbridge.Event {
	return &fanbridge.Event{
		ID:     id,
		Type:   presenceType,
		Topic:  "v2.users." + userID + ".presence",
		Source: "aws.partner/genesys.com/cloud/org/suffix",
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC),
		Data:   json.RawMessage(`{"presenceDefinition":{"systemPresence":"AVAILABLE"}}`),
	}
}

func customerEndEvent(id string) *fanbridge.Event {
	return &fanbridge.Event{
		ID:     id,
		Type:   customerEnd,
		Topic:  "v2.detail.events.conversation." + conversationID + ".customer.end",
		Source: "aws.partner/genesys.com/cloud/org/suffix",
		Time:   time.Date(2022, 6, 14, 16, 12, 11, 0, time.UTC),
		Data:   json.RawMessage(`{"conversationId":"` + conversationID + `","mediaType":"CHAT"}`),
		Metadata: map[string]string{
			fanbridge.MetaCorrelationID: "7272d362-23b2-4c14-9d40-dc7b7683153a",
			fanbridge.MetaAccount:       "123456789012",
			fanbridge.MetaRegion:        "us-east-1",
			fanbridge.MetaTraceparent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
			fanbridge.MetaTracestate:    "congo=t61rcWkgMzE",
			"x-tenant":                  "acme",
		},
	}
}

func otherEvent(id string) *fanbridge.Event {
	return &fanbridge.Event{ID: id, Type: "v2.routing.queues.{id}.conversations", Data: json.RawMessage(`{}`)}
}

// TestTopicChoice sends the same three events through sinks with each topic option and checks
// which topic each record landed on.
func TestTopicChoice(t *testing.T) {
	presenceTopic := "v2.users." + userID + ".presence"
	tests := []struct {
		name   string
		opt    kafkasink.Option
		topics []string
		want   map[string]string // event id -> topic
		failed map[string]bool   // event ids whose Send fails permanently
	}{
		{
			name:   "fixed",
			opt:    kafkasink.WithTopic("genesys-events"),
			topics: []string{"genesys-events"},
			want:   map[string]string{"p": "genesys-events", "c": "genesys-events", "o": "genesys-events"},
		},
		{
			name: "by type with fallback",
			opt: kafkasink.WithTopicByType(map[string]string{
				presenceType: "gen-presence-status",
				customerEnd:  "gen-conversation-end",
			}, "gen-other"),
			topics: []string{"gen-presence-status", "gen-conversation-end", "gen-other"},
			want:   map[string]string{"p": "gen-presence-status", "c": "gen-conversation-end", "o": "gen-other"},
		},
		{
			name:   "by type without fallback",
			opt:    kafkasink.WithTopicByType(map[string]string{presenceType: "gen-presence-status"}, ""),
			topics: []string{"gen-presence-status"},
			want:   map[string]string{"p": "gen-presence-status"},
			failed: map[string]bool{"c": true, "o": true},
		},
		{
			name:   "template by type",
			opt:    kafkasink.WithTopicTemplate("genesys.{type}"),
			topics: []string{"genesys.v2.users.id.presence", "genesys.v2.detail.events.conversation.id.customer.end", "genesys.v2.routing.queues.id.conversations"},
			want: map[string]string{
				"p": "genesys.v2.users.id.presence",
				"c": "genesys.v2.detail.events.conversation.id.customer.end",
				"o": "genesys.v2.routing.queues.id.conversations",
			},
		},
		{
			name:   "template by concrete topic",
			opt:    kafkasink.WithTopicTemplate("{topic}"),
			topics: []string{presenceTopic, "v2.detail.events.conversation." + conversationID + ".customer.end"},
			want: map[string]string{
				"p": presenceTopic,
				"c": "v2.detail.events.conversation." + conversationID + ".customer.end",
			},
			failed: map[string]bool{"o": true}, // no Topic: an empty name
		},
		{
			name:   "template by account, region and source",
			opt:    kafkasink.WithTopicTemplate("{account}.{region}.{source}"),
			topics: []string{"123456789012.us-east-1.aws.partner_genesys.com_cloud_org_suffix", "..aws.partner_genesys.com_cloud_org_suffix"},
			want: map[string]string{
				"c": "123456789012.us-east-1.aws.partner_genesys.com_cloud_org_suffix",
				"p": "..aws.partner_genesys.com_cloud_org_suffix", // no account or region in its Metadata
			},
			failed: map[string]bool{"o": true}, // none of the three: "..", not a topic name
		},
		{
			name:   "template without placeholders",
			opt:    kafkasink.WithTopicTemplate("genesys-all"),
			topics: []string{"genesys-all"},
			want:   map[string]string{"p": "genesys-all", "c": "genesys-all", "o": "genesys-all"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, tt.topics...)
			s := newSink(t, newClient(t, c), tt.opt)
			for _, e := range []*fanbridge.Event{presenceEvent("p"), customerEndEvent("c"), otherEvent("o")} {
				err := s.Send(ctx, e)
				if tt.failed[e.ID] {
					require.Error(t, err, e.ID)
					assert.True(t, retry.IsPermanent(err), "%s: %v", e.ID, err)
					continue
				}
				require.NoError(t, err, e.ID)
			}
			got := map[string]string{}
			for _, r := range readAll(t, ctx, c, tt.topics...) {
				e, err := kafkasink.EventFromRecord(r)
				require.NoError(t, err)
				got[e.ID] = r.Topic
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestUnmappedTypeError(t *testing.T) {
	c := newCluster(t, "gen-presence-status")
	s := newSink(t, newClient(t, c), kafkasink.WithTopicByType(map[string]string{presenceType: "gen-presence-status"}, ""))
	err := s.Send(testContext(t), otherEvent("o"))
	require.ErrorIs(t, err, kafkasink.ErrUnmappedType)
	assert.True(t, retry.IsPermanent(err))
	assert.Contains(t, err.Error(), "v2.routing.queues.{id}.conversations")
}

func TestTopicFunc(t *testing.T) {
	down := errors.New("lookup service down")
	tests := []struct {
		name      string
		f         kafkasink.TopicFunc
		wantIs    error
		permanent bool
	}{
		{name: "invalid name", f: func(*fanbridge.Event) (string, error) { return "bad topic!", nil }, wantIs: kafkasink.ErrInvalidTopic, permanent: true},
		{name: "too long", f: func(*fanbridge.Event) (string, error) { return string(make([]byte, 250)), nil }, wantIs: kafkasink.ErrInvalidTopic, permanent: true},
		{name: "retryable error kept", f: func(*fanbridge.Event) (string, error) { return "", down }, wantIs: down},
		{name: "permanent error kept", f: func(*fanbridge.Event) (string, error) { return "", retry.Permanent(down) }, wantIs: down, permanent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			s := newSink(t, newClient(t, c), kafkasink.WithTopicFunc(tt.f))
			err := s.Send(ctx, presenceEvent("p"))
			require.ErrorIs(t, err, tt.wantIs)
			assert.Equal(t, tt.permanent, retry.IsPermanent(err))
			assert.Empty(t, readAll(t, ctx, c, "events"), "nothing was produced")
		})
	}
}

func TestRecordKeys(t *testing.T) {
	tests := []struct {
		name string
		key  kafkasink.KeyFunc
		want map[string]string // event id -> key ("" for none)
	}{
		{name: "default is the event id", key: nil, want: map[string]string{"p": "p", "c": "c", "o": "o"}},
		{name: "conversation", key: kafkasink.ConversationKey, want: map[string]string{"p": "p", "c": conversationID, "o": "o"}},
		{name: "user", key: kafkasink.UserKey, want: map[string]string{"p": userID, "c": "c", "o": "o"}},
		{name: "none", key: kafkasink.NoKey, want: map[string]string{"p": "", "c": "", "o": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			c := newCluster(t, "events")
			opts := []kafkasink.Option{kafkasink.WithTopic("events")}
			if tt.key != nil {
				opts = append(opts, kafkasink.WithKey(tt.key))
			}
			s := newSink(t, newClient(t, c), opts...)
			for _, e := range []*fanbridge.Event{presenceEvent("p"), customerEndEvent("c"), otherEvent("o")} {
				require.NoError(t, s.Send(ctx, e))
			}
			got := map[string]string{}
			for _, r := range readAll(t, ctx, c, "events") {
				e, err := kafkasink.EventFromRecord(r)
				require.NoError(t, err)
				got[e.ID] = string(r.Key)
				if tt.want[e.ID] == "" {
					assert.Nil(t, r.Key, "a record without a key has a null key")
				}
			}
			assert.Equal(t, tt.want, got)
		})
	}
}

// TestConversationStaysInOnePartition sends the events of several conversations to a topic of
// eight partitions: each conversation's events must share a partition and keep their order.
func TestConversationStaysInOnePartition(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t)
	createTopic(t, ctx, c, "conversations", 8)
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("conversations"), kafkasink.WithKey(kafkasink.ConversationKey))
	convs := []string{
		"2f7bf00a-0fc2-4d6a-9b56-92238191433e", "97b9dcb3-c182-4d1f-8123-76a4b5cf1f5a",
		"0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9", "ffffffff-0000-4000-8000-000000000000",
	}
	for i := range 40 {
		conv := convs[i%len(convs)]
		e := &fanbridge.Event{
			ID:    conv + "/" + string(rune('a'+i)),
			Type:  "v2.detail.events.conversation.{id}.acw",
			Topic: "v2.detail.events.conversation." + conv + ".acw",
		}
		require.NoError(t, s.Send(ctx, e))
	}
	partitions := map[string]map[int32]bool{}
	seq := map[string][]string{}
	for _, r := range readAll(t, ctx, c, "conversations") {
		k := string(r.Key)
		if partitions[k] == nil {
			partitions[k] = map[int32]bool{}
		}
		partitions[k][r.Partition] = true
		e, err := kafkasink.EventFromRecord(r)
		require.NoError(t, err)
		seq[k] = append(seq[k], e.ID)
	}
	require.Len(t, partitions, len(convs))
	used := map[int32]bool{}
	for k, ps := range partitions {
		assert.Len(t, ps, 1, "conversation %s spread over partitions %v", k, ps)
		for p := range ps {
			used[p] = true
		}
		assert.IsIncreasing(t, seq[k], "conversation %s out of order", k)
	}
	t.Logf("%d conversations used %d partitions", len(convs), len(used))
}

func TestHeaders(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
	require.NoError(t, s.Send(ctx, customerEndEvent("c")))
	require.NoError(t, s.Send(ctx, &fanbridge.Event{ID: "bare", Type: presenceType}))

	recs := readAll(t, ctx, c, "events")
	require.Len(t, recs, 2)
	assert.Equal(t, []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("c")},
		{Key: "ce_type", Value: []byte(customerEnd)},
		{Key: "ce_source", Value: []byte("aws.partner/genesys.com/cloud/org/suffix")},
		{Key: "ce_subject", Value: []byte("v2.detail.events.conversation." + conversationID + ".customer.end")},
		{Key: "ce_time", Value: []byte("2022-06-14T16:12:11Z")},
		{Key: "content-type", Value: []byte("application/json")},
		{Key: "fanbridge-meta-account", Value: []byte("123456789012")},
		{Key: "fanbridge-meta-correlation-id", Value: []byte("7272d362-23b2-4c14-9d40-dc7b7683153a")},
		{Key: "fanbridge-meta-region", Value: []byte("us-east-1")},
		{Key: "fanbridge-meta-x-tenant", Value: []byte("acme")},
		{Key: "traceparent", Value: []byte("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")},
		{Key: "tracestate", Value: []byte("congo=t61rcWkgMzE")},
	}, recs[0].Headers)
	assert.Equal(t, customerEndEvent("c").Data, json.RawMessage(recs[0].Value))
	assert.Equal(t, []byte("c"), recs[0].Key)

	// An event with only an ID and a Type carries only those, and the source CloudEvents requires.
	assert.Equal(t, []kgo.RecordHeader{
		{Key: "ce_specversion", Value: []byte("1.0")},
		{Key: "ce_id", Value: []byte("bare")},
		{Key: "ce_type", Value: []byte(presenceType)},
		{Key: "ce_source", Value: []byte("urn:fanbridge:event")},
	}, recs[1].Headers)
	assert.Empty(t, recs[1].Value)

	// The record's timestamp is when it was produced, not the event time, so retention and
	// timestamp checks on the broker never see a years-old record.
	assert.WithinDuration(t, time.Now(), recs[0].Timestamp, time.Minute)
}

// CloudEvents 1.0 requires specversion, id, type and a non-empty source. An event without a
// Source, as the WebSocket notification intake and some webhooks make them, gets a default one
// named after its format, and reads back without one.
func TestRecordWithoutSourceIsACloudEvent(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
	withFormat := func(id, format string) *fanbridge.Event {
		e := presenceEvent(id)
		e.Source = ""
		e.Metadata = map[string]string{fanbridge.MetaFormat: format}
		return e
	}
	noFormat := presenceEvent("no-format")
	noFormat.Source = ""
	// An own Source that begins as the defaults do, but is not its format's, reads back as sent.
	ownURN := withFormat("own-urn", "notification")
	ownURN.Source = "urn:fanbridge:replayer"
	sent := []*fanbridge.Event{
		withFormat("notification", "notification"),
		withFormat("webhook", "webhook-attributes"),
		noFormat,
		withFormat("odd-format", "not a urn/part"),
		presenceEvent("own-source"),
		ownURN,
	}
	want := map[string]string{
		"notification": "urn:fanbridge:notification",
		"webhook":      "urn:fanbridge:webhook-attributes",
		"no-format":    "urn:fanbridge:event",
		"odd-format":   "urn:fanbridge:event",
		"own-source":   "aws.partner/genesys.com/cloud/org/suffix",
		"own-urn":      "urn:fanbridge:replayer",
	}
	for _, e := range sent {
		require.NoError(t, s.Send(ctx, e))
	}

	recs := readAll(t, ctx, c, "events")
	require.Len(t, recs, len(sent))
	for i, r := range recs {
		id := header(r, kafkasink.HeaderID)
		for _, k := range []string{kafkasink.HeaderSpecVersion, kafkasink.HeaderID, kafkasink.HeaderType, kafkasink.HeaderSource} {
			assert.NotEmpty(t, header(r, k), "%s: %s, which CloudEvents requires", id, k)
		}
		assert.Equal(t, want[id], header(r, kafkasink.HeaderSource), id)
		back, err := kafkasink.EventFromRecord(r)
		require.NoError(t, err)
		assert.Equal(t, sent[i].Source, back.Source, "%s reads back with the Source it was sent with", id)
	}
}

func TestEnvelopeValue(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"), kafkasink.WithEnvelopeValue())
	withRaw := customerEndEvent("raw")
	withRaw.Raw = []byte(`{"version":"0","id":"raw","detail":{"eventBody":{}}}`)
	require.NoError(t, s.Send(ctx, withRaw))
	require.NoError(t, s.Send(ctx, presenceEvent("no-raw")))

	recs := readAll(t, ctx, c, "events")
	require.Len(t, recs, 2)
	assert.Equal(t, withRaw.Raw, recs[0].Value)
	assert.Equal(t, "envelope", header(recs[0], kafkasink.HeaderValue))
	assert.Empty(t, header(recs[0], kafkasink.HeaderSpecVersion), "the value is not CloudEvents data")
	e, err := kafkasink.EventFromRecord(recs[0])
	require.NoError(t, err)
	assert.Equal(t, withRaw.Raw, e.Raw)
	assert.Nil(t, e.Data)

	// Without Raw, the body is the value, as without the option.
	assert.Equal(t, []byte(presenceEvent("").Data), recs[1].Value)
	assert.Empty(t, header(recs[1], kafkasink.HeaderValue))
	assert.Equal(t, "1.0", header(recs[1], kafkasink.HeaderSpecVersion))
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// TestSendBatchPerEventResults: one batch mixing events that can be delivered with events that
// cannot gives each its own result.
func TestSendBatchPerEventResults(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "gen-presence-status")
	s := newSink(t, newClient(t, c, kgo.UnknownTopicRetries(0)), kafkasink.WithTopicFunc(func(e *fanbridge.Event) (string, error) {
		switch e.Type {
		case presenceType:
			return "gen-presence-status", nil
		case customerEnd:
			return "missing", nil // no such topic
		default:
			return "", retry.Permanent(errors.New("no route"))
		}
	}))
	events := []*fanbridge.Event{presenceEvent("p1"), customerEndEvent("c"), nil, otherEvent("o"), presenceEvent("p2")}
	err := s.SendBatch(ctx, events)
	var be *sink.BatchError
	require.ErrorAs(t, err, &be)
	require.Len(t, be.Errs, len(events))
	assert.NoError(t, be.Errs[0])
	assert.ErrorIs(t, be.Errs[1], kerr.UnknownTopicOrPartition)
	assert.True(t, retry.IsPermanent(be.Errs[1]))
	assert.True(t, retry.IsPermanent(be.Errs[2]), "a nil event")
	assert.ErrorContains(t, be.Errs[3], "no route")
	assert.True(t, retry.IsPermanent(be.Errs[3]))
	assert.NoError(t, be.Errs[4])

	var ids []string
	for _, e := range readEvents(t, ctx, c, "gen-presence-status") {
		ids = append(ids, e.ID)
	}
	assert.Equal(t, []string{"p1", "p2"}, ids)
	require.NoError(t, s.SendBatch(ctx, []*fanbridge.Event{presenceEvent("p3")}))
}

// A Send under a span (fanout's attempt span, when it traces) carries that span's trace context
// instead of the one the event came with, so the consumer's spans hang under the delivery.
func TestHeadersCarryTheSpanOfSend(t *testing.T) {
	ctx := testContext(t)
	c := newCluster(t, "events")
	s := newSink(t, newClient(t, c), kafkasink.WithTopic("events"))
	e := customerEndEvent("c")
	require.NoError(t, s.Send(tracetest.WithAttemptSpan(t, ctx), e))

	recs := readAll(t, ctx, c, "events")
	require.Len(t, recs, 1)
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01", header(recs[0], kafkasink.HeaderTraceparent))
	assert.Equal(t, "fb=attempt", header(recs[0], kafkasink.HeaderTracestate))
	n := 0
	for _, h := range recs[0].Headers {
		if h.Key == kafkasink.HeaderTraceparent || h.Key == kafkasink.HeaderTracestate {
			n++
		}
	}
	assert.Equal(t, 2, n, "one traceparent and one tracestate header")
	got, err := kafkasink.EventFromRecord(recs[0])
	require.NoError(t, err)
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-0102030405060708-01", got.Metadata[fanbridge.MetaTraceparent])
	assert.Equal(t, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", e.Metadata[fanbridge.MetaTraceparent],
		"the event itself is not modified")
}
