package eventbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

var contentTypes = []string{"application/json", "", "application/cloudevents+json", "application/json; charset=utf-8", "text/plain"}

func addSamples(f *testing.F, add func(body []byte)) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		add(b)
	}
	for _, s := range []string{
		`{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}`,
		`{"event":"routing:interaction:completed","data":{"channel":"voice"},"metadata":{"correlationId":"c","timestamp":"2024-01-02T03:04:05Z"}}`,
		`{"id":"evt-1","eventType":"presence:state:changed","timestamp":1649237504949,"source":"genesys","attributes":{"state":"AVAILABLE"}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2018-04-05T17:31:00Z","ext":5,"data":{"x":[1,2]}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"eyJhIjpbMV19"}`,
		`{"i\u0064":"a\ud800\u0041","detail-type":"t","source":"s","detail":{"eventBody":{"eventTime":"2021-05-31T09:49:25.5+02:00"}}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"metadata":{"CorrelationId":"\u00e9"}}}`,
		`[[[[1e-5,-0.0,true,false,null,"\"\\\/\b\f\n\r\t"]]]]`,
		`{"event":"x","data":{},"metadata":{"traceparent":"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-\u00e9","tracestate":"a=b, c@d=e"}}`,
		`{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"rojo=1,congo=2"}`,
		`{"id":"m-1","channel":{"platform":"Open","to":{"id":"c"},"time":"2024-05-01T12:00:00.5+02:00"},"type":"Receipt","status":"Delivered","direction":"Outbound"}`,
		`{"channel":{"time":1714564800000,"Time":"x"},"direction":"Outbound","type":"Text","data":{}}`,
		`{"channel":"sms","direction":"out","type":"message.sent","data":{"id":1}}`,
		`{"type":"contact.deleted","data":{"id":"c-1"}}`,
		`{"type":"x","timestamp":"2024-05-01T12:00:00Z","data":null,"Data":1}`,
		`{"id":"evt_1Mq","object":"event","type":"charge.succeeded","created":1680064028,"data":{"object":{}}}`,
		`{"id":7,"type":"x","data":{}}`,
		`{"topicName":"v2.users.x.presence","eventBody":{},"timestamp":"2021-06-25T15:11:52.435Z"}`,
	} {
		add([]byte(s))
	}
}

// jsonDepth is the nesting depth of a document encoding/json accepted.
func jsonDepth(b []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// checkValidity holds the decoder to encoding/json: a body it rejects must be rejected as
// malformed, and a body it accepts (in valid UTF-8, within MaxDepth) must not be.
func checkValidity(t *testing.T, body []byte, err error) {
	t.Helper()
	stdValid := json.Valid(body)
	if !stdValid && !errors.Is(err, eventbridge.ErrMalformed) {
		t.Fatalf("encoding/json rejects the body, the decoder answered %v", err)
	}
	wellFormed := stdValid && utf8.Valid(body) && jsonDepth(body) <= eventbridge.MaxDepth
	if wellFormed && errors.Is(err, eventbridge.ErrMalformed) {
		t.Fatalf("valid JSON rejected as malformed: %v", err)
	}
	if stdValid && !wellFormed && !errors.Is(err, eventbridge.ErrMalformed) {
		t.Fatalf("invalid UTF-8 or too deep, but not malformed: %v", err)
	}
	if err != nil && len(body) >= 16 && strings.Contains(err.Error(), string(body)) {
		t.Fatalf("the error echoes the body: %v", err)
	}
}

type rawObject map[string]json.RawMessage

func object(t *testing.T, raw json.RawMessage) rawObject {
	t.Helper()
	var m rawObject
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("decoded, but encoding/json cannot read the object: %v", err)
	}
	return m
}

// str decodes member k as encoding/json would; absent and null give "".
func (m rawObject) str(t *testing.T, k string) string {
	t.Helper()
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("decoded, but %s is not a string for encoding/json: %v", k, err)
	}
	return s
}

// hasVariant reports whether m has a key other than k that encoding/json would read as k.
func hasVariant(m rawObject, k string) bool {
	for key := range m {
		if key != k && strings.EqualFold(key, k) {
			return true
		}
	}
	return false
}

// hasMember reports whether m has k with a value other than null.
func hasMember(m rawObject, k string) bool {
	v, ok := m[k]
	return ok && string(v) != "null"
}

// looseStr is m[k] as a string, or "" when it is not one.
func (m rawObject) looseStr(k string) string {
	var s string
	if json.Unmarshal(m[k], &s) != nil {
		return ""
	}
	return s
}

// looseObj is m[k] as an object, or nil when it is not one.
func (m rawObject) looseObj(k string) rawObject {
	var o rawObject
	if json.Unmarshal(m[k], &o) != nil {
		return nil
	}
	return o
}

func (m rawObject) obj(t *testing.T, k string) rawObject {
	t.Helper()
	raw, ok := m[k]
	if !ok || string(raw) == "null" {
		return nil
	}
	return object(t, raw)
}

func equal(t *testing.T, what, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: decoder %q, encoding/json %q", what, got, want)
	}
}

// crossCheck compares a decoded event with what encoding/json reads from the same body.
func crossCheck(t *testing.T, body []byte, e *fanbridge.Event) {
	t.Helper()
	if !bytes.Equal(e.Raw, body) {
		t.Fatal("Raw differs from the body")
	}
	if e.Data != nil && !json.Valid(e.Data) {
		t.Fatalf("Data is not valid JSON: %q", e.Data)
	}
	if e.ID == "" || e.Type == "" {
		t.Fatal("empty ID or Type")
	}
	for k, v := range e.Metadata {
		if k == "" || strings.ContainsAny(v, "\x00\n\r") {
			t.Fatalf("bad metadata %q=%q", k, v)
		}
	}
	checkTraceContext(t, e)
	top := object(t, body)
	switch e.Meta(fanbridge.MetaFormat) {
	case "eventbridge":
		equal(t, "id", e.ID, top.str(t, "id"))
		equal(t, "detail-type", e.Type, top.str(t, "detail-type"))
		equal(t, "source", e.Source, top.str(t, "source"))
		equal(t, "account", e.Meta(fanbridge.MetaAccount), top.str(t, "account"))
		equal(t, "region", e.Meta(fanbridge.MetaRegion), top.str(t, "region"))
		// A consumer decoding Raw into a struct matches keys ignoring case: it must read what
		// was checked (the allowed sources and accounts), not a case variant.
		var st struct {
			ID         string `json:"id"`
			DetailType string `json:"detail-type"`
			Source     string `json:"source"`
			Account    string `json:"account"`
		}
		if json.Unmarshal(body, &st) == nil {
			equal(t, "struct id", e.ID, st.ID)
			equal(t, "struct detail-type", e.Type, st.DetailType)
			equal(t, "struct source", e.Source, st.Source)
			equal(t, "struct account", e.Meta(fanbridge.MetaAccount), st.Account)
		}
		detail := top.obj(t, "detail")
		if hasMember(detail, "eventBody") && hasMember(detail, "topicName") {
			equal(t, "topicName", e.Topic, detail.str(t, "topicName"))
			equal(t, "CorrelationId", e.Meta(fanbridge.MetaCorrelationID), detail.obj(t, "metadata").str(t, "CorrelationId"))
			// A Genesys detail's keys are matched as the envelope's are.
			var sd struct {
				Detail struct {
					TopicName string          `json:"topicName"`
					EventBody json.RawMessage `json:"eventBody"`
					Metadata  struct {
						CorrelationId string
					} `json:"metadata"`
				} `json:"detail"`
			}
			if json.Unmarshal(body, &sd) == nil {
				equal(t, "struct detail.topicName", e.Topic, sd.Detail.TopicName)
				equal(t, "struct detail.eventBody", string(e.Data), string(sd.Detail.EventBody))
				equal(t, "struct detail.metadata.CorrelationId", e.Meta(fanbridge.MetaCorrelationID), sd.Detail.Metadata.CorrelationId)
			}
		} else {
			// Not Genesys': these fields are read only when they have Genesys' types, so
			// whatever the decoder did read must be what encoding/json reads.
			if e.Topic != "" {
				equal(t, "topicName", e.Topic, detail.looseStr("topicName"))
			}
			if c := e.Meta(fanbridge.MetaCorrelationID); c != "" {
				equal(t, "CorrelationId", c, detail.looseObj("metadata").looseStr("CorrelationId"))
			}
			// What it read, a consumer's struct decoding reads too (a key with a case variant
			// is not read at all).
			var sd struct {
				Detail struct {
					TopicName *string         `json:"topicName"`
					EventBody json.RawMessage `json:"eventBody"`
					Metadata  *struct {
						CorrelationId *string
					} `json:"metadata"`
				} `json:"detail"`
			}
			if json.Unmarshal(body, &sd) == nil {
				if e.Topic != "" && sd.Detail.TopicName != nil {
					equal(t, "struct detail.topicName", e.Topic, *sd.Detail.TopicName)
				}
				if c := e.Meta(fanbridge.MetaCorrelationID); c != "" && sd.Detail.Metadata != nil && sd.Detail.Metadata.CorrelationId != nil {
					equal(t, "struct detail.metadata.CorrelationId", c, *sd.Detail.Metadata.CorrelationId)
				}
				if string(e.Data) != string(top["detail"]) {
					equal(t, "struct detail.eventBody", string(e.Data), string(sd.Detail.EventBody))
				}
			}
		}
		want := detail["eventBody"]
		if len(want) == 0 || want[0] != '{' || hasVariant(detail, "eventBody") {
			want = top["detail"]
		}
		equal(t, "Data", string(e.Data), string(want))
	case "notification":
		equal(t, "topicName", e.Topic, top.str(t, "topicName"))
		equal(t, "Type", e.Type, eventbridge.TopicTemplate(top.str(t, "topicName")))
		equal(t, "Data", string(e.Data), string(top["eventBody"]))
		equal(t, "CorrelationId", e.Meta(fanbridge.MetaCorrelationID), top.obj(t, "metadata").str(t, "CorrelationId"))
	case "webhook":
		equal(t, "event", e.Type, top.str(t, "event"))
		equal(t, "Data", string(e.Data), string(top["data"]))
		var sw struct {
			Metadata struct {
				Source string `json:"source"`
			} `json:"metadata"`
		}
		if json.Unmarshal(body, &sw) == nil {
			equal(t, "struct metadata.source", e.Source, sw.Metadata.Source)
		}
	case "webhook-attributes":
		equal(t, "id", e.ID, top.str(t, "id"))
		equal(t, "eventType", e.Type, top.str(t, "eventType"))
		equal(t, "source", e.Source, top.str(t, "source"))
		equal(t, "Data", string(e.Data), string(top["attributes"]))
	case "open-messaging":
		equal(t, "type", e.Type, top.str(t, "type"))
		equal(t, "Data", string(e.Data), string(bytes.TrimSpace(body)))
		if v, ok := top["channel"]; !ok || v[0] != '{' || !hasMember(top, "direction") {
			t.Fatal("an Open Messaging message without a channel object and a direction")
		}
		// A consumer decoding Raw into a struct reads the type and time that were read.
		var so struct {
			Type    string `json:"type"`
			Channel struct {
				Time json.RawMessage `json:"time"`
			} `json:"channel"`
		}
		if json.Unmarshal(body, &so) == nil {
			equal(t, "struct type", e.Type, so.Type)
			if !e.Time.IsZero() {
				var st time.Time
				if err := json.Unmarshal(so.Channel.Time, &st); err == nil && !st.Equal(e.Time) {
					t.Fatalf("struct channel.time %v, decoder %v", st, e.Time)
				}
			}
		}
	case "standard-webhooks":
		// An id that is a string an ID may be is the ID; any other gives a derived one.
		if own := top.looseStr("id"); plainID(own) {
			equal(t, "id", e.ID, own)
		} else if !derivedID.MatchString(e.ID) {
			t.Fatalf("ID %q beside id %s", e.ID, top["id"])
		}
		equal(t, "type", e.Type, top.str(t, "type"))
		equal(t, "Data", string(e.Data), string(top["data"]))
		var sw struct {
			Type      string          `json:"type"`
			Timestamp *time.Time      `json:"timestamp"`
			Data      json.RawMessage `json:"data"`
		}
		if json.Unmarshal(body, &sw) == nil {
			equal(t, "struct type", e.Type, sw.Type)
			equal(t, "struct data", string(e.Data), string(sw.Data))
			if sw.Timestamp != nil && !sw.Timestamp.Equal(e.Time) {
				t.Fatalf("struct timestamp %v, decoder %v", sw.Timestamp, e.Time)
			}
		}
	case "cloudevents":
		equal(t, "specversion", top.str(t, "specversion"), "1.0")
		equal(t, "id", e.ID, top.str(t, "id"))
		equal(t, "type", e.Type, top.str(t, "type"))
		equal(t, "source", e.Source, top.str(t, "source"))
		equal(t, "subject", e.Topic, top.str(t, "subject"))
		if raw, ok := top["data"]; ok && string(raw) != "null" {
			equal(t, "Data", string(e.Data), string(raw))
		}
	default:
		t.Fatalf("unknown format %q", e.Meta(fanbridge.MetaFormat))
	}
}

// checkTraceContext asserts what reaches an event as trace context: a traceparent of exactly 55
// characters, and a tracestate only beside one, of at most 512 printable ASCII characters.
func checkTraceContext(t *testing.T, e *fanbridge.Event) {
	t.Helper()
	tp, hasParent := e.Metadata[fanbridge.MetaTraceparent]
	if hasParent && !traceparentShape.MatchString(tp) {
		t.Fatalf("traceparent %q kept", tp)
	}
	ts, hasState := e.Metadata[fanbridge.MetaTracestate]
	if !hasState {
		return
	}
	if !hasParent || ts == "" || len(ts) > 512 {
		t.Fatalf("tracestate %q kept beside traceparent %q", ts, tp)
	}
	for i := 0; i < len(ts); i++ {
		if ts[i] < 0x20 || ts[i] > 0x7e {
			t.Fatalf("tracestate %q kept with byte %#x", ts, ts[i])
		}
	}
}

// plainID reports whether id, a string a body carries, is one the decoders take as an ID: not
// empty, at most 1024 bytes, printable ASCII (a stricter test than theirs).
func plainID(id string) bool {
	if id == "" || len(id) > 1024 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// derivedID is the form of the IDs given to events whose format carries none.
var derivedID = regexp.MustCompile(`^[0-9a-f]{32}$`)

var traceparentShape = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)

func FuzzDecode(f *testing.F) {
	addSamples(f, func(b []byte) {
		for i := range contentTypes {
			f.Add(b, uint8(i))
		}
	})
	// A case variant of CorrelationId in a Genesys detail with a null eventBody, and in a generic
	// detail's metadata.
	for _, b := range []string{
		`{"id":"1","detail-type":"t","source":"s","detail":{"topicName":"v2.users.x.activity","eventBody":null,"metadata":{"CorrelationId":"a","correlationId":"b"}}}`,
		`{"id":"1","detail-type":"t","source":"s","detail":{"metadata":{"CorrelationId":"a","correlationId":"b"}}}`,
	} {
		f.Add([]byte(b), uint8(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		contentType := contentTypes[int(ct)%len(contentTypes)]
		e, err := eventbridge.Decode(body, contentType)
		if errors.Is(err, eventbridge.ErrUnsupportedMediaType) {
			if contentType != "text/plain" {
				t.Fatalf("%q refused: %v", contentType, err)
			}
			return
		}
		checkValidity(t, body, err)
		if err == nil {
			crossCheck(t, body, e)
		}
	})
}

func FuzzDecodeNotification(f *testing.F) {
	addSamples(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, raw []byte) {
		e, err := eventbridge.DecodeNotification(raw)
		checkValidity(t, raw, err)
		if err != nil {
			return
		}
		if e.Meta(fanbridge.MetaFormat) != "notification" {
			t.Fatalf("format %q", e.Meta(fanbridge.MetaFormat))
		}
		crossCheck(t, raw, e)
		again, err := eventbridge.DecodeNotification(bytes.Clone(raw))
		if err != nil {
			t.Fatalf("decoding the same bytes again failed: %v", err)
		}
		// With a CorrelationId or a timestamp the ID is derived, and a redelivery deduplicates;
		// with neither nothing tells a redelivery from another event with the same content, and
		// each copy gets an ID of its own.
		distinct := e.Meta(fanbridge.MetaCorrelationID) != "" || hasMember(object(t, raw), "timestamp")
		if (again.ID == e.ID) != distinct {
			t.Fatalf("decoding the same bytes again gave ID %s, then %s", e.ID, again.ID)
		}
		if !derivedID.MatchString(e.ID) {
			t.Fatalf("ID %q is not 32 hex digits", e.ID)
		}
	})
}

func FuzzCloudEvents(f *testing.F) {
	addSamples(f, func(b []byte) { f.Add(b) })
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := eventbridge.Decode(body, "application/cloudevents+json")
		checkValidity(t, body, err)
		if err != nil {
			return
		}
		if e.Meta(fanbridge.MetaFormat) != "cloudevents" {
			t.Fatalf("format %q", e.Meta(fanbridge.MetaFormat))
		}
		crossCheck(t, body, e)
	})
}

func FuzzWebhook(f *testing.F) {
	addSamples(f, func(b []byte) { f.Add(b) })
	webhooks, err := eventbridge.NewDecoder(eventbridge.FormatWebhook, eventbridge.FormatWebhookAttributes)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := webhooks.Decode(body, "application/json")
		checkValidity(t, body, err)
		if err != nil {
			return
		}
		if f := e.Meta(fanbridge.MetaFormat); f != "webhook" && f != "webhook-attributes" {
			t.Fatalf("format %q", f)
		}
		crossCheck(t, body, e)
	})
}

func FuzzTopicTemplate(f *testing.F) {
	for _, s := range eventbridge.KnownTopics() {
		f.Add(s)
		f.Add(strings.ReplaceAll(s, "{id}", "e40f28ea-fa86-493f-a5b8-d559c8533c96"))
	}
	f.Add("channel.metadata")
	f.Add("v2..users.")
	f.Fuzz(func(t *testing.T, topic string) {
		got := eventbridge.TopicTemplate(topic)
		if strings.Count(got, ".") != strings.Count(topic, ".") {
			t.Fatalf("%q -> %q changed the number of segments", topic, got)
		}
		if again := eventbridge.TopicTemplate(got); again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q", topic, got, again)
		}
	})
}

// FuzzHandler holds the Handler to Decode: what Decode refuses is answered 400 or 415 without a
// dispatch, and what it accepts is dispatched as the same event and answered 200.
func FuzzHandler(f *testing.F) {
	addSamples(f, func(b []byte) {
		for i := range contentTypes {
			f.Add(b, uint8(i))
		}
	})
	var got *fanbridge.Event
	h, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
		got = e
		return nil
	}))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		contentType := contentTypes[int(ct)%len(contentTypes)]
		want, decodeErr := eventbridge.Decode(body, contentType)
		got = nil
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		var answer map[string]string
		if err := json.Unmarshal(w.Body.Bytes(), &answer); err != nil {
			t.Fatalf("answer %q is not a JSON object of strings: %v", w.Body.Bytes(), err)
		}
		switch {
		case errors.Is(decodeErr, eventbridge.ErrUnsupportedMediaType):
			if w.Code != http.StatusUnsupportedMediaType || got != nil {
				t.Fatalf("status %d, dispatched %v", w.Code, got != nil)
			}
		case decodeErr != nil:
			if w.Code != http.StatusBadRequest || got != nil || answer["error"] != decodeErr.Error() {
				t.Fatalf("status %d, dispatched %v, answer %v", w.Code, got != nil, answer)
			}
		default:
			if w.Code != http.StatusOK || got == nil || answer["id"] != got.ID {
				t.Fatalf("status %d, answer %v", w.Code, answer)
			}
			// An event that nothing tells from another with the same content has an ID of its
			// own each time it is decoded.
			if again, _ := eventbridge.Decode(body, contentType); again.ID != want.ID {
				want.ID = got.ID
				if !derivedID.MatchString(got.ID) {
					t.Fatalf("ID %q is not 32 hex digits", got.ID)
				}
			}
			if got.ID != want.ID || got.Type != want.Type || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("dispatched %+v, Decode gave %+v", got, want)
			}
		}
	})
}

// FuzzHandlerTraceHeaders sends an event with any traceparent and tracestate headers: it is always
// delivered, and what reaches it as trace context is a 55-character traceparent taken from the
// header's start, with the tracestate header's members as sent (without empty ones and the spaces
// around them) or nothing.
func FuzzHandlerTraceHeaders(f *testing.F) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, s := range [][2]string{
		{tp, "congo=t61rcWkgMzE"}, {"01" + tp[2:] + "-" + strings.Repeat("\u00e9", 50), "a=b,,c@d=e "},
		{"ff" + tp[2:], "a=b"}, {tp + "-x", ""}, {"", "a=b"}, {tp, strings.Repeat("k=v,", 40)},
	} {
		f.Add(s[0], s[1])
	}
	var got *fanbridge.Event
	h, err := eventbridge.NewHandler(eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
		got = e
		return nil
	}))
	if err != nil {
		f.Fatal(err)
	}
	body := []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":"` + tp + `","tracestate":"body=1"}`)
	f.Fuzz(func(t *testing.T, parent, state string) {
		got = nil
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header["Traceparent"] = []string{parent}
		req.Header["Tracestate"] = []string{state}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK || got == nil {
			t.Fatalf("status %d", w.Code)
		}
		checkTraceContext(t, got)
		kept := got.Meta(fanbridge.MetaTraceparent)
		// The header's first 53 characters, and its flags (for version 00, with the reserved bits
		// cleared).
		if kept != tp && (!strings.HasPrefix(parent, kept[:53]) || len(parent) < 55 ||
			(kept[53:] != parent[53:55] && !(parent[:2] == "00" && kept[53:] == fmt.Sprintf("%02x", hexValue(parent[53:55])&3)))) {
			t.Fatalf("traceparent %q kept from header %q", kept, parent)
		}
		// The header's members, without empty ones and the spaces around them.
		var members []string
		for _, m := range strings.Split(state, ",") {
			if m = strings.Trim(m, " "); m != "" {
				members = append(members, m)
			}
		}
		ts := got.Meta(fanbridge.MetaTracestate)
		if ts != "" && ts != strings.Join(members, ",") && ts != "body=1" {
			t.Fatalf("tracestate %q kept from header %q", ts, state)
		}
		// A valid header replaces the body's trace context, its tracestate included; an invalid
		// one leaves the body's as it was.
		valid := false
		if m := traceparentGrammar.FindStringSubmatch(parent); m != nil {
			valid = m[1] != "ff" && !(m[1] == "00" && m[5] != "") &&
				strings.Trim(m[2], "0") != "" && strings.Trim(m[3], "0") != ""
		}
		if !valid {
			if kept != tp || ts != "body=1" {
				t.Fatalf("invalid header %q: kept %q and %q, want the body's", parent, kept, ts)
			}
			return
		}
		want := parent[:55]
		if parent[:2] == "00" {
			want = fmt.Sprintf("%s%02x", parent[:53], hexValue(parent[53:55])&3)
		}
		if kept != want {
			t.Fatalf("valid header %q: kept %q, want %q", parent, kept, want)
		}
		if ts == "body=1" && !strings.Contains(state, "body=1") {
			t.Fatalf("valid header %q: the body's tracestate kept beside it", parent)
		}
	})
}

// traceparentGrammar is W3C traceparent's shape: version, trace id, parent id, flags, and what a
// later version may add after them.
var traceparentGrammar = regexp.MustCompile(`(?s)^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$`)

// hexValue reads two lower-case hex digits.
func hexValue(s string) int {
	v, _ := strconv.ParseUint(s, 16, 8)
	return int(v)
}

// escapeAt returns b with the k-th printable ASCII character inside its JSON strings (keys
// included, counted modulo their number) written as a \u00XX escape: the same string to any JSON
// reader. It reports false when b has no such character.
func escapeAt(b []byte, k int) ([]byte, bool) {
	var at []int
	inString := false
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case inString && c == '\\':
			i++ // the escaped byte is part of an escape already
		case c == '"':
			inString = !inString
		case inString && c >= 0x20 && c < 0x7f:
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return nil, false
	}
	i := at[k%len(at)]
	out := append([]byte{}, b[:i]...)
	out = fmt.Appendf(out, `\u%04x`, b[i])
	return append(out, b[i+1:]...), true
}

// FuzzDecodeEscapes: escaping a character of a string changes nothing a JSON reader sees, so it
// changes neither whether a body decodes nor its Type, Source, Topic, Time and Metadata, nor the
// ID of a format whose body names it.
func FuzzDecodeEscapes(f *testing.F) {
	addSamples(f, func(b []byte) {
		for k := range 8 {
			f.Add(b, uint16(k*7))
		}
	})
	f.Add([]byte(`{"id":"e","eventType":"x","timestamp":"2021-06-25T15:11:52+02:00","attributes":{}}`), uint16(30))
	f.Fuzz(func(t *testing.T, body []byte, k uint16) {
		escaped, ok := escapeAt(body, int(k))
		if !ok {
			return
		}
		e1, err1 := eventbridge.Decode(body, "application/json")
		e2, err2 := eventbridge.Decode(escaped, "application/json")
		if (err1 == nil) != (err2 == nil) {
			if errors.Is(err1, eventbridge.ErrMalformed) || errors.Is(err2, eventbridge.ErrMalformed) {
				return // not JSON to begin with: the "strings" were not strings
			}
			t.Fatalf("%s: %v\n%s: %v", body, err1, escaped, err2)
		}
		if err1 != nil {
			return
		}
		if e1.Type != e2.Type || e1.Source != e2.Source || e1.Topic != e2.Topic || !e1.Time.Equal(e2.Time) {
			t.Fatalf("%s: %q %q %q %v\n%s: %q %q %q %v", body, e1.Type, e1.Source, e1.Topic, e1.Time,
				escaped, e2.Type, e2.Source, e2.Topic, e2.Time)
		}
		if !maps.Equal(e1.Metadata, e2.Metadata) {
			t.Fatalf("%s: %v\n%s: %v", body, e1.Metadata, escaped, e2.Metadata)
		}
		switch e1.Meta(fanbridge.MetaFormat) {
		case "eventbridge", "cloudevents", "webhook-attributes":
			if e1.ID != e2.ID {
				t.Fatalf("%s: id %q\n%s: id %q", body, e1.ID, escaped, e2.ID)
			}
		}
	})
}
