package eventbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

// failDispatcher fails the test if anything reaches it.
func failDispatcher(t *testing.T) eventbridge.Dispatcher {
	return eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		t.Error("a hostile request reached the dispatcher")
		return nil
	})
}

// marker appears in hostile bodies; no answer may echo it.
const marker = "SECRET-MARKER-7f3a"

// envelope is a valid EventBridge body with one field replaced by raw JSON.
func envelope(field, raw string) string {
	fields := []struct{ k, v string }{
		{"version", `"0"`},
		{"id", `"58fb5dac-f077-4eec-a25f-c638dbdd4368"`},
		{"detail-type", `"v2.detail.events.conversation.{id}.customer.end"`},
		{"source", `"aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/bus"`},
		{"account", `"123456789012"`},
		{"time", `"2022-06-14T16:12:11Z"`},
		{"region", `"us-east-1"`},
		{"detail", `{"topicName":"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end","version":"2","eventBody":{"note":"` + marker + `"},"metadata":{"CorrelationId":"c"},"timestamp":"2022-04-06T09:30:45.013Z"}`},
	}
	var parts []string
	for _, f := range fields {
		v := f.v
		if f.k == field {
			if raw == "" {
				continue // leave the field out
			}
			v = raw
		}
		parts = append(parts, `"`+f.k+`":`+v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// detailWith is envelope with one field of detail replaced.
func detailWith(field, raw string) string {
	d := map[string]string{
		"topicName": `"v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end"`,
		"eventBody": `{"note":"` + marker + `"}`,
		"metadata":  `{"CorrelationId":"c"}`,
		"timestamp": `"2022-04-06T09:30:45.013Z"`,
	}
	d[field] = raw
	var parts []string
	for _, k := range []string{"topicName", "eventBody", "metadata", "timestamp"} {
		parts = append(parts, `"`+k+`":`+d[k])
	}
	return envelope("detail", "{"+strings.Join(parts, ",")+"}")
}

func TestHostileRequests(t *testing.T) {
	valid := envelope("", "")
	require.True(t, json.Valid([]byte(valid)))
	// The valid envelope itself passes: every case below differs from it in one way.
	w := post(newHandler(t, &recorder{}), []byte(valid))
	require.Equal(t, 200, w.Code, w.Body.String())

	const (
		malformed = "eventbridge: malformed JSON"
		unknown   = "eventbridge: unknown event format"
		invalid   = "eventbridge: invalid field"
	)
	big := strings.Repeat("A", 300<<10)
	tests := []struct {
		name        string
		method      string
		contentType string // "-" leaves the header out
		body        string
		opts        []eventbridge.Option
		status      int
		errPrefix   string
		notEchoed   string // besides marker, text of the request the answer must not carry
	}{
		{name: "GET", method: http.MethodGet, body: valid, status: 405, errPrefix: "eventbridge: method not allowed"},
		{name: "PUT", method: http.MethodPut, body: valid, status: 405, errPrefix: "eventbridge: method not allowed"},
		{name: "OPTIONS", method: http.MethodOptions, body: "", status: 405, errPrefix: "eventbridge: method not allowed"},
		{name: "oversize body", body: `{"id":"` + big + `"}`, status: 413, errPrefix: "eventbridge: body too large"},
		{name: "over a small limit", body: valid, opts: []eventbridge.Option{eventbridge.WithMaxBodySize(64)}, status: 413, errPrefix: "eventbridge: body too large"},
		{name: "text/plain", contentType: "text/plain", body: valid, status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "form", contentType: "application/x-www-form-urlencoded", body: "id=" + marker, status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "latin-1 charset", contentType: "application/json; charset=ISO-8859-1", body: valid, status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "marker as media type", contentType: "text/" + marker, body: valid, status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "marker as charset", contentType: "application/json; charset=" + marker, body: valid, status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "cloudevents batch", contentType: "application/cloudevents-batch+json", body: "[" + valid + "]", status: 415, errPrefix: "eventbridge: unsupported media type"},
		{name: "empty body", body: "", status: 400, errPrefix: malformed},
		{name: "blank body", body: " \r\n\t ", status: 400, errPrefix: malformed},
		{name: "truncated", body: valid[:len(valid)/2], status: 400, errPrefix: malformed},
		{name: "missing final brace", body: valid[:len(valid)-1], status: 400, errPrefix: malformed},
		{name: "trailing garbage", body: valid + `x` + marker, status: 400, errPrefix: malformed},
		{name: "two documents", body: valid + valid, status: 400, errPrefix: malformed},
		{name: "single quotes", body: strings.ReplaceAll(valid, `"`, `'`), status: 400, errPrefix: malformed},
		{name: "trailing comma", body: valid[:len(valid)-1] + `,}`, status: 400, errPrefix: malformed},
		{name: "comment", body: "/* " + marker + " */" + valid, status: 400, errPrefix: malformed},
		{name: "byte order mark", body: "\uFEFF" + valid, status: 400, errPrefix: malformed},
		{name: "leading zero number", body: envelope("version", "01"), status: 400, errPrefix: malformed},
		{name: "bare minus", body: envelope("version", "-"), status: 400, errPrefix: malformed},
		{name: "NaN", body: envelope("version", "NaN"), status: 400, errPrefix: malformed},
		{name: "bad escape", body: envelope("region", `"us-\x41"`), status: 400, errPrefix: malformed},
		{name: "short unicode escape", body: envelope("region", `"\u12"`), status: 400, errPrefix: malformed},
		{name: "invalid UTF-8 in a value", body: envelope("region", "\"us-\xff\xfe\""), status: 400, errPrefix: malformed},
		{name: "invalid UTF-8 in a key", body: strings.Replace(valid, `"region"`, "\"reg\xc3\x28ion\"", 1), status: 400, errPrefix: malformed},
		{name: "UTF-8 encoded surrogate", body: envelope("region", "\"\xed\xa0\x80\""), status: 400, errPrefix: malformed},
		{name: "overlong UTF-8", body: envelope("region", "\"\xc0\xaf\""), status: 400, errPrefix: malformed},
		{name: "invalid UTF-8 deep in eventBody", body: detailWith("eventBody", "{\"a\":[{\"b\":\"\xf8\x88\x80\x80\x80\"}]}"), status: 400, errPrefix: malformed},
		{name: "raw NUL in a string", body: envelope("region", "\"us\x00east\""), status: 400, errPrefix: malformed},
		{name: "NUL between tokens", body: strings.Replace(valid, `,"region"`, ",\x00\"region\"", 1), status: 400, errPrefix: malformed},
		{name: "raw newline in a string", body: envelope("region", "\"us\neast\""), status: 400, errPrefix: malformed},
		{name: "deep nesting in eventBody", body: detailWith("eventBody", `{"a":`+strings.Repeat("[", 100)+strings.Repeat("]", 100)+`}`), status: 400, errPrefix: malformed},
		{name: "deep objects", body: strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000), status: 400, errPrefix: malformed},
		{name: "top-level array", body: "[" + valid + "]", status: 400, errPrefix: unknown},
		{name: "top-level string", body: `"` + marker + `"`, status: 400, errPrefix: unknown},
		{name: "top-level null", body: `null`, status: 400, errPrefix: unknown},
		{name: "unknown envelope", body: `{"hello":"` + marker + `"}`, status: 400, errPrefix: unknown},
		{name: "empty object", body: `{}`, status: 400, errPrefix: unknown},
		{name: "id missing", body: envelope("id", ""), status: 400, errPrefix: invalid},
		{name: "id empty", body: envelope("id", `""`), status: 400, errPrefix: invalid},
		{name: "id number", body: envelope("id", `12345`), status: 400, errPrefix: invalid},
		{name: "id array", body: envelope("id", `["`+marker+`"]`), status: 400, errPrefix: invalid},
		{name: "id with escaped NUL", body: envelope("id", `"a\u0000b"`), status: 400, errPrefix: invalid},
		{name: "id with a control character beside the marker", body: envelope("id", `"`+marker+`\u0001"`), status: 400, errPrefix: invalid},
		{name: "id with DEL", body: envelope("id", "\"a\x7fb\""), status: 400, errPrefix: invalid},
		{name: "id with a C1 control", body: envelope("id", "\"a\u009bb\""), status: 400, errPrefix: invalid},
		{name: "id with an escaped C1 control", body: envelope("id", `"a\u0085b"`), status: 400, errPrefix: invalid},
		{name: "type with a right-to-left override", body: envelope("detail-type", `"invoice\u202efdp.exe"`), status: 400, errPrefix: invalid},
		{name: "huge id", body: envelope("id", `"`+strings.Repeat("x", 100<<10)+`"`), status: 400, errPrefix: invalid},
		{name: "source missing", body: envelope("source", ""), status: 400, errPrefix: invalid},
		{name: "source empty", body: envelope("source", `""`), status: 400, errPrefix: invalid},
		{name: "detail-type null", body: envelope("detail-type", `null`), status: 400, errPrefix: invalid},
		{name: "detail-type bool", body: envelope("detail-type", `true`), status: 400, errPrefix: invalid},
		{name: "source object", body: envelope("source", `{"s":"`+marker+`"}`), status: 400, errPrefix: invalid},
		{name: "account number", body: envelope("account", `123456789012`), status: 400, errPrefix: invalid},
		{name: "region array", body: envelope("region", `["us-east-1"]`), status: 400, errPrefix: invalid},
		{name: "time not a time", body: envelope("time", `"`+marker+`"`), status: 400, errPrefix: invalid},
		{name: "time number", body: envelope("time", `1655223131`), status: 400, errPrefix: invalid},
		{name: "time 25 o'clock", body: envelope("time", `"2022-06-14T25:12:11Z"`), status: 400, errPrefix: invalid},
		{name: "detail missing", body: envelope("detail", ""), status: 400, errPrefix: invalid},
		{name: "detail array", body: envelope("detail", `[{"topicName":"x"}]`), status: 400, errPrefix: invalid},
		{name: "detail string", body: envelope("detail", `"`+marker+`"`), status: 400, errPrefix: invalid},
		{name: "topicName number", body: detailWith("topicName", `42`), status: 400, errPrefix: invalid},
		{name: "eventBody string", body: detailWith("eventBody", `"`+marker+`"`), status: 400, errPrefix: invalid},
		{name: "eventBody array", body: detailWith("eventBody", `[1]`), status: 400, errPrefix: invalid},
		{name: "metadata array", body: detailWith("metadata", `["`+marker+`"]`), status: 400, errPrefix: invalid},
		{name: "CorrelationId object", body: detailWith("metadata", `{"CorrelationId":{}}`), status: 400, errPrefix: invalid},
		{name: "timestamp garbage", body: detailWith("timestamp", `"`+marker+`"`), status: 400, errPrefix: invalid},
		{name: "duplicate id", body: strings.Replace(valid, `"version":"0"`, `"id":"other"`, 1), status: 400, errPrefix: invalid},
		{name: "duplicate source (spoofing a proxy)", body: strings.Replace(valid, `"version":"0"`, `"source":"aws.partner/genesys.com/cloud/evil/bus"`, 1), status: 400, errPrefix: invalid},
		{name: "duplicate via escaped key", body: strings.Replace(valid, `"version":"0"`, `"i\u0064":"other"`, 1), status: 400, errPrefix: invalid},
		{name: "duplicate detail", body: valid[:len(valid)-1] + `,"detail":{}}`, status: 400, errPrefix: invalid},
		{name: "source written in another case", body: valid[:len(valid)-1] + `,"SoUrCe":"x"}`, status: 400, errPrefix: invalid, notEchoed: "SoUrCe"},
		{name: "duplicate topicName", body: detailWith("topicName", `"a","topicName":"b"`), status: 400, errPrefix: invalid},
		{name: "wrong account", body: valid, opts: []eventbridge.Option{eventbridge.WithAllowedAccounts("999999999999")}, status: 403, errPrefix: "eventbridge: account not allowed"},
		{name: "wrong source", body: valid, opts: []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/00000000-0000-0000-0000-000000000000/")}, status: 403, errPrefix: "eventbridge: source not allowed"},
		{name: "look-alike source prefix", body: envelope("source", `"aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d-evil/bus"`),
			opts: []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/")}, status: 403, errPrefix: "eventbridge: source not allowed"},
		{name: "restricted format", body: valid, opts: []eventbridge.Option{eventbridge.WithFormats(eventbridge.FormatCloudEvents)}, status: 400, errPrefix: unknown},
		{name: "cloudevents without specversion", contentType: "application/cloudevents+json", body: `{"id":"1","source":"s","type":"` + marker + `"}`, status: 400, errPrefix: invalid},
		{name: "cloudevents specversion holding the marker", contentType: "application/cloudevents+json", body: `{"specversion":"` + marker + `","id":"1","source":"s","type":"t"}`, status: 400, errPrefix: invalid},
		{name: "cloudevents marker as extension name", contentType: "application/cloudevents+json", body: `{"specversion":"1.0","id":"1","source":"s","type":"t","` + marker + `":"v"}`, status: 400, errPrefix: invalid},
		{name: "cloudevents data and data_base64", contentType: "application/cloudevents+json", body: `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{},"data_base64":"e30="}`, status: 400, errPrefix: invalid},
		{name: "websocket sample with a lost line", body: string(readSample(t, "websocket.v2.users.activity.malformed.txt")), status: 400, errPrefix: malformed},
		{name: "webhook event as array", body: `{"event":["` + marker + `"],"data":{}}`, status: 400, errPrefix: invalid},
		{name: "attributes webhook without attributes", body: `{"id":"1","eventType":"t"}`, status: 400, errPrefix: invalid},
		{name: "missing content type, not JSON", contentType: "-", body: marker, status: 400, errPrefix: malformed},
	}
	require.GreaterOrEqual(t, len(tests), 30)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			req := httptest.NewRequest(method, "/events", strings.NewReader(tt.body))
			switch tt.contentType {
			case "":
				req.Header.Set("Content-Type", "application/json")
			case "-":
			default:
				req.Header.Set("Content-Type", tt.contentType)
			}
			w := httptest.NewRecorder()
			newHandler(t, failDispatcher(t), tt.opts...).ServeHTTP(w, req)

			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
			var answer map[string]any
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &answer), "answer %q", w.Body.String())
			require.Len(t, answer, 1, "only an error, no id: %v", answer)
			msg, _ := answer["error"].(string)
			assert.True(t, strings.HasPrefix(msg, tt.errPrefix), "error %q, want prefix %q", msg, tt.errPrefix)
			assert.NotContains(t, w.Body.String(), marker)
			if tt.notEchoed != "" {
				assert.NotContains(t, w.Body.String(), tt.notEchoed)
			}
			assert.Less(t, w.Body.Len(), 300, "errors stay short")
			if tt.status == 405 {
				assert.Equal(t, "POST", w.Header().Get("Allow"))
			}
		})
	}
}

func TestHostileMissingContentTypeIsJSON(t *testing.T) {
	d := &recorder{}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader([]byte(envelope("", ""))))
	w := httptest.NewRecorder()
	newHandler(t, d).ServeHTTP(w, req)
	assert.Equal(t, 200, w.Code)
}
