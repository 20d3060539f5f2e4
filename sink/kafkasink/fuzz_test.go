package kafkasink_test

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/rfc3339"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/sink"
	"github.com/fanbridge/fanbridge/sink/kafkasink"
)

// FuzzEventFromRecord feeds arbitrary headers and values to the record parser: it must never
// panic, and it must read what the model of its documentation reads, ce_time as the intake reads
// an event's time (rfc3339.Parse, which has a fuzz target of its own against time.Parse).
func FuzzEventFromRecord(f *testing.F) {
	f.Add("ce_id", "58fb5dac-f077-4eec-a25f-c638dbdd4368", "ce_time", "2022-06-14T16:12:11.435123456Z", "fanbridge-meta-correlation-id", "x", []byte(`{"a":1}`))
	f.Add("ce_id", "", "ce_time", "2022-06-14T16:12:11+02:00", "traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", []byte(nil))
	f.Add("fanbridge-value", "envelope", "ce_id", "1", "fanbridge-meta-", "", []byte(`{"version":"0"}`))
	f.Add("ce_time", "not a time", "ce_id", "1", "ce_time", "", []byte{0xff})
	f.Add("ce_time", "not a time", "ce_id", "1", "ce_time", "2022-06-14T16:12:11Z", []byte(`{}`))
	f.Add("ce_type", "a", "ce_id", "1", "ce_type", "b", []byte(`{}`))
	f.Add("ce_time", "2016-12-31t23:59:60z", "ce_id", "1", "ce_specversion", "1.0", []byte(`{}`))
	f.Add("ce_specversion", "0.3", "ce_id", "1", "ce_time", "2018-04-05t17:31:00Z", []byte(`{}`))
	f.Add("ce_id", "1", "ce_time", "2018-04-05T17:31:00,5Z", "ce_specversion", "1.0", []byte(`{}`))
	f.Add("ce_id", "1", "ce_time", "0000-06-01T00:00:00Z", "ce_specversion", "1.0", []byte(`{}`))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3 string, value []byte) {
		r := &kgo.Record{Value: value, Headers: []kgo.RecordHeader{
			{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}, {Key: k3, Value: []byte(v3)},
		}}
		e, err := kafkasink.EventFromRecord(r)
		// The model of the doc: a repeated header counts once, the last one winning; the record
		// is refused without ce_id, when the intake would not read the last ce_time, or when the
		// last ce_specversion is not 1.0.
		last := map[string]string{}
		for _, h := range r.Headers {
			last[h.Key] = string(h.Value)
		}
		id, hasID := last[kafkasink.HeaderID]
		var when time.Time
		badTime := false
		if v, ok := last[kafkasink.HeaderTime]; ok {
			var read bool
			when, read = rfc3339.Parse([]byte(v))
			badTime = !read
		}
		spec, hasSpec := last[kafkasink.HeaderSpecVersion]
		if wantErr := !hasID || badTime || hasSpec && spec != "1.0"; (err != nil) != wantErr {
			t.Fatalf("EventFromRecord(%v) = %v, want an error: %v", r.Headers, err, wantErr)
		}
		if err != nil {
			return
		}
		if e.ID != id || e.Type != last[kafkasink.HeaderType] || e.Topic != last[kafkasink.HeaderSubject] || !e.Time.Equal(when) {
			t.Fatalf("EventFromRecord(%v) = id %q type %q topic %q time %v, want the last values", r.Headers, e.ID, e.Type, e.Topic, e.Time)
		}
		for k, v := range last {
			name, ok := strings.CutPrefix(k, kafkasink.HeaderMetadataPrefix)
			if name == fanbridge.MetaTraceparent || name == fanbridge.MetaTracestate {
				continue // also set by the trace headers; the later of the two wins
			}
			if ok && e.Metadata[name] != v {
				t.Fatalf("metadata %q = %q, want the last %q", name, e.Metadata[name], v)
			}
		}
	})
}

// offlineSink returns a sink whose client never connects: the fuzz targets only build records.
func offlineSink(f *testing.F, opts ...kafkasink.Option) *kafkasink.Sink {
	cl, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(cl.Close)
	return newSink(f, cl, opts...)
}

// FuzzRecordRoundTrip builds the record of an arbitrary event and parses it back: the event must
// survive intact, whatever bytes its fields hold.
func FuzzRecordRoundTrip(f *testing.F) {
	s := offlineSink(f, kafkasink.WithTopic("events"), kafkasink.WithKey(kafkasink.ConversationKey))
	f.Add("58fb5dac", "v2.detail.events.conversation.{id}.customer.end", "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
		"aws.partner/genesys.com/cloud/org/suffix", int64(1655223131435123456), []byte(`{"conversationId":"2f7bf00a"}`), "correlation-id", "7272d362")
	f.Add("", "", "", "", int64(0), []byte(nil), "", "")
	f.Add("id", "t", "", "", int64(-6213559680000000), []byte(`{ "x" :"caf\u00e9"}`), "traceparent", "00-4bf9-01")
	f.Add("id", "t", "", "", int64(1), []byte(nil), "tracestate", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	f.Add("\xff", "ce_id", "fanbridge-meta-x", "\x00", int64(1), []byte{0xff, 0}, "fanbridge-meta-", "\xff")
	f.Fuzz(func(t *testing.T, id, typ, topic, source string, nanos int64, data []byte, metaKey, metaValue string) {
		if len(data) == 0 {
			data = nil // Clone, used to detect changes below, keeps an empty body as nil
		}
		e := &fanbridge.Event{ID: id, Type: typ, Topic: topic, Source: source, Data: json.RawMessage(data)}
		if nanos != 0 {
			// Any zone, even offsets with seconds that RFC 3339 cannot write.
			e.Time = time.Unix(0, nanos).In(time.FixedZone("", int(nanos%86400)))
		}
		if metaKey != "" {
			e.Metadata = map[string]string{metaKey: metaValue, fanbridge.MetaTraceparent: metaValue}
		}
		before := e.Clone()
		r, err := kafkasink.BuildRecord(s, e)
		if err != nil {
			t.Fatalf("BuildRecord: %v", err)
		}
		back, err := kafkasink.EventFromRecord(r)
		if err != nil {
			t.Fatalf("EventFromRecord: %v", err)
		}
		// The trace context travels as sink.TraceContext reads it: a traceparent that is not valid
		// is dropped with its tracestate, and an empty one is no trace context.
		wantMeta := maps.Clone(e.Metadata)
		tp, ts := sink.TraceContext(context.Background(), e)
		for k, v := range map[string]string{fanbridge.MetaTraceparent: tp, fanbridge.MetaTracestate: ts} {
			if _, ok := wantMeta[k]; ok || v != "" {
				wantMeta[k] = v
			}
			if v == "" {
				delete(wantMeta, k)
			}
		}
		// CloudEvents requires a source: an event without one gets a default, which reads back
		// as none, as does an event whose own Source is that default.
		written := ""
		for _, h := range r.Headers {
			if h.Key == kafkasink.HeaderSource {
				written = string(h.Value)
			}
		}
		if written == "" {
			t.Fatalf("record of %+v has no %s", e, kafkasink.HeaderSource)
		}
		wantSource := e.Source
		if back.Source == "" && written == e.Source && strings.HasPrefix(written, "urn:fanbridge:") {
			wantSource = ""
		}
		if back.ID != e.ID || back.Type != e.Type || back.Topic != e.Topic || back.Source != wantSource ||
			!back.Time.Equal(e.Time) || string(back.Data) != string(e.Data) || !maps.Equal(back.Metadata, wantMeta) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", back, e)
		}
		if !reflect.DeepEqual(before, e) {
			t.Fatal("building the record modified the event")
		}
	})
}

// FuzzTopicTemplate fills a template with arbitrary event fields: the sink either names a valid
// topic or refuses the event permanently with ErrInvalidTopic, never anything in between.
func FuzzTopicTemplate(f *testing.F) {
	s := offlineSink(f, kafkasink.WithTopicTemplate("genesys.{type}.{topic}"))
	f.Add("v2.users.{id}.presence", "v2.users.8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c.presence")
	f.Add("café/☕", "{}{}")
	f.Add(strings.Repeat("x", 300), "")
	f.Fuzz(func(t *testing.T, typ, topic string) {
		r, err := kafkasink.BuildRecord(s, &fanbridge.Event{ID: "1", Type: typ, Topic: topic})
		if err != nil {
			if !errors.Is(err, kafkasink.ErrInvalidTopic) || !retry.IsPermanent(err) {
				t.Fatalf("error %v is not a permanent ErrInvalidTopic", err)
			}
			return
		}
		if err := kafkasink.ValidTopic(r.Topic); err != nil {
			t.Fatalf("template produced an invalid topic %q: %v", r.Topic, err)
		}
		if sanitized := kafkasink.SanitizeTopic(typ); kafkasink.SanitizeTopic(sanitized) != sanitized {
			t.Fatalf("SanitizeTopic is not idempotent on %q", typ)
		}
	})
}

// FuzzKeys runs the key functions over arbitrary topics and bodies: they never panic, and what
// they return is the event ID, a segment of the topic or type, or a string from the body (for a
// user audit, the nested entity.id UserKey reads).
func FuzzKeys(f *testing.F) {
	f.Add("e1", "v2.detail.events.conversation.{id}.customer.end", "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end", []byte(`{"conversationId":"x"}`))
	f.Add("e2", "v2.users.{id}.presence", "v2.users.8f2c5e9a-1b3d-4c6e-9f7a-2b4d6e8f0a1c.presence", []byte(`{"userId":"u"}`))
	f.Add("e3", "", "users.conversation.users", []byte(`{"userId":"\u00e9","conversationId":["x"]}`))
	f.Add("e4", "...", "..", []byte(`{`))
	f.Add("e5", "v2.audits.entitytype.User", "", []byte(`{"entityType":"User","entity":{"id":"zz"}}`))
	f.Fuzz(func(t *testing.T, id, typ, topic string, data []byte) {
		e := &fanbridge.Event{ID: id, Type: typ, Topic: topic, Data: data}
		for name, key := range map[string]kafkasink.KeyFunc{"conversation": kafkasink.ConversationKey, "user": kafkasink.UserKey} {
			k := key(e)
			if k == id || strings.Contains(topic, k) || strings.Contains(typ, k) {
				continue
			}
			var body map[string]any
			if json.Unmarshal(data, &body) == nil {
				found := false
				for _, v := range body {
					if v == k {
						found = true
					}
				}
				if entity, ok := body["entity"].(map[string]any); ok && entity["id"] == k {
					found = true
				}
				if found {
					continue
				}
			}
			t.Fatalf("%s key %q comes from nowhere in %+v", name, k, e)
		}
	})
}
