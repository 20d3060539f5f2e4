package eventbridge_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
)

// A CloudEvent in the HTTP binding's binary mode carries its attributes in ce-* headers: decoded
// from its body alone it would be another event (a webhook with an id made from the body, the
// sender's id, type and source dropped). Unless binary mode is turned on it is refused 415,
// naming the structured mode, and nothing is dispatched. In structured mode ce-* headers change
// nothing.
func TestCloudEventsBinaryModeIsRefused(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, rec, eventbridge.WithFormats(eventbridge.FormatCloudEvents, eventbridge.FormatWebhook))
	body := []byte(`{"event":"order.created","data":{"order":7}}`)
	w := post(h, body, "Ce-Specversion", "1.0", "Ce-Id", "A234-1234-1234", "Ce-Source", "/orders", "Ce-Type", "com.example.someevent")
	assert.Equal(t, http.StatusUnsupportedMediaType, w.Code)
	assert.Contains(t, w.Body.String(), "binary content mode")
	assert.Contains(t, w.Body.String(), "application/cloudevents+json")
	assert.Empty(t, rec.events)

	w = post(h, body) // the same body without the headers is a webhook
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())

	structured := []byte(`{"specversion":"1.0","id":"A234","source":"/orders","type":"com.example.someevent","data":{"order":7}}`)
	w = post(h, structured, "Content-Type", "application/cloudevents+json", "Ce-Specversion", "1.0")
	assert.Equal(t, http.StatusOK, w.Code, w.Body.String())
	e, _ := rec.last(t)
	assert.Equal(t, "A234", e.ID)
}

// postBinary posts body with the Content-Type ct (none when empty) and the headers in pairs,
// added rather than set, so that a test can repeat one.
func postBinary(h http.Handler, body []byte, ct string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

var binaryCore = []string{"Ce-Specversion", "1.0", "Ce-Id", "A234-1234-1234", "Ce-Source", "/mycontext", "Ce-Type", "com.example.someevent"}

func withCore(extra ...string) []string {
	return append(append([]string(nil), binaryCore...), extra...)
}

// With WithCloudEventsBinaryMode the attributes come from the ce-* headers, percent-decoded and
// unquoted as the binding says, datacontenttype from Content-Type and data from the body; the
// event is the one the same CloudEvent makes in structured mode, and its Raw is that rendering.
func TestCloudEventsBinaryModeDecodes(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode())
	body := []byte("{\n  \"order\": 7\n}\n")
	w := postBinary(h, body, "application/json; charset=utf-8", withCore(
		"Ce-Subject", "Euro%20%E2%82%AC%20%f0%9f%98%80",
		"Ce-Time", "2018-04-05T03:56:24Z",
		"Ce-Dataschema", "https://example.com/order.json",
		"Ce-Comexampleext", `"quoted \"value\" %25"`,
		"Ce-Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"Ce-Region", "eu-west-1", // an envelope fact no sender sets
		"Ce-Progress", "100% done, 50%",
	)...)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	e, _ := rec.last(t)
	assert.Equal(t, "A234-1234-1234", e.ID)
	assert.Equal(t, "com.example.someevent", e.Type)
	assert.Equal(t, "/mycontext", e.Source)
	assert.Equal(t, "Euro € 😀", e.Topic)
	assert.Equal(t, "100% done, 50%", e.Metadata["progress"], "a %% without two hex digits stays")
	assert.Equal(t, time.Date(2018, 4, 5, 3, 56, 24, 0, time.UTC), e.Time.UTC())
	assert.JSONEq(t, `{"order":7}`, string(e.Data))
	assert.Equal(t, map[string]string{
		eventbridge.MetaDataContentType: "application/json; charset=utf-8",
		eventbridge.MetaDataSchema:      "https://example.com/order.json",
		"comexampleext":                 `quoted "value" %`,
		"progress":                      "100% done, 50%",
		fanbridge.MetaTraceparent:       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		fanbridge.MetaFormat:            string(eventbridge.FormatCloudEvents),
	}, e.Metadata)

	// Raw is the structured rendering: it decodes, without the headers, to the same event, and
	// Data lies inside it, as a dead-letter queue keeps them.
	again, err := eventbridge.Decode(e.Raw, "application/cloudevents+json")
	require.NoError(t, err, "%s", e.Raw)
	assert.Equal(t, e.ID, again.ID)
	assert.Equal(t, e.Topic, again.Topic)
	assert.Equal(t, e.Metadata, again.Metadata)
	assert.Equal(t, string(e.Data), string(again.Data))
	assert.True(t, bytes.Contains(e.Raw, e.Data))
	assert.True(t, bytes.HasPrefix(e.Raw, []byte(`{"specversion":"1.0",`)), "%s", e.Raw)

	// The exported decoder gives the same event.
	hdr := http.Header{}
	for i := 0; i < len(binaryCore); i += 2 {
		hdr.Set(binaryCore[i], binaryCore[i+1])
	}
	hdr.Set("Content-Type", "application/json")
	d, err := eventbridge.DecodeCloudEventsBinary(hdr, body)
	require.NoError(t, err)
	assert.Equal(t, "A234-1234-1234", d.ID)
	assert.JSONEq(t, `{"order":7}`, string(d.Data))
}

// Data that is not JSON keeps what it is: text/* as a JSON string, anything else (or a body
// that is not JSON without a Content-Type) as base64, marked so; an empty body has no data.
func TestCloudEventsBinaryModeData(t *testing.T) {
	png := []byte{0x89, 'P', 'N', 'G', 0, 1, 2, 0xff}
	for _, tc := range []struct {
		name, ct string
		body     []byte
		data     string
		base64   bool
	}{
		{"text", "text/plain; charset=utf-8", []byte("hello \"world\"\n"), `"hello \"world\"\u000a"`, false},
		{"xml", "application/xml", []byte("<a>1</a>"), `"` + base64.StdEncoding.EncodeToString([]byte("<a>1</a>")) + `"`, true},
		{"octets", "application/octet-stream", png, `"` + base64.StdEncoding.EncodeToString(png) + `"`, true},
		{"text that is not UTF-8", "text/plain", png, `"` + base64.StdEncoding.EncodeToString(png) + `"`, true},
		{"no type, not JSON", "", []byte("plain words"), `"` + base64.StdEncoding.EncodeToString([]byte("plain words")) + `"`, true},
		{"no type, JSON", "", []byte(`[1,2]`), `[1,2]`, false},
		{"json suffix", "application/vnd.order+json", []byte(`{"a":1}`), `{"a":1}`, false},
		{"empty", "application/json", nil, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode())
			w := postBinary(h, tc.body, tc.ct, binaryCore...)
			require.Equal(t, http.StatusOK, w.Code, w.Body.String())
			e, _ := rec.last(t)
			assert.Equal(t, tc.data, string(e.Data))
			assert.Equal(t, tc.ct, e.Meta(eventbridge.MetaDataContentType))
			assert.Equal(t, tc.base64, e.Meta(eventbridge.MetaDataBase64) == "true")
			if tc.base64 {
				got, err := base64.StdEncoding.DecodeString(strings.Trim(string(e.Data), `"`))
				require.NoError(t, err)
				assert.Equal(t, tc.body, got, "the bytes come back whole")
			}
		})
	}
}

// What the binding or the structured checks forbid is refused 400, naming the header and not its
// value, and nothing is dispatched.
func TestCloudEventsBinaryModeRefuses(t *testing.T) {
	const secret = "s3cr3t-value"
	for _, tc := range []struct {
		name, ct string
		body     string
		header   []string
		want     string
	}{
		{"no id", "application/json", `{}`, []string{"Ce-Specversion", "1.0", "Ce-Source", "/s", "Ce-Type", "t"}, "id"},
		{"other version", "application/json", `{}`, []string{"Ce-Specversion", "0.3", "Ce-Id", "1", "Ce-Source", "/s", "Ce-Type", "t"}, "specversion"},
		{"overlong UTF-8", "application/json", `{}`, withCore("Ce-Subject", secret+"%C0%A0"), "UTF-8"},
		{"control character", "application/json", `{}`, withCore("Ce-Subject", secret+"%0A"), "subject"},
		{"bad quoting", "application/json", `{}`, withCore("Ce-Subject", `"`+secret+`\"`), "backslash"},
		{"quote inside quotes", "application/json", `{}`, withCore("Ce-Subject", `"a"b"`), "double quote"},
		{"datacontenttype header", "application/json", `{}`, withCore("Ce-Datacontenttype", "application/json"), "ce-datacontenttype"},
		{"data header", "application/json", `{}`, withCore("Ce-Data", secret), "ce-data"},
		{"repeated header", "application/json", `{}`, withCore("Ce-Id", "B"), "more than once"},
		{"bad name", "application/json", `{}`, withCore("Ce-My-Ext", secret), "Ce-My-Ext"},
		{"not JSON as JSON", "application/json", secret + `{`, binaryCore, "not the JSON"},
		{"bad time", "application/json", `{}`, withCore("Ce-Time", "yesterday"), "time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode())
			w := postBinary(h, []byte(tc.body), tc.ct, tc.header...)
			assert.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			assert.Contains(t, w.Body.String(), tc.want)
			assert.NotContains(t, w.Body.String(), secret)
			assert.Empty(t, rec.events)
		})
	}

	t.Run("too many headers", func(t *testing.T) {
		rec := &recorder{}
		h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode())
		hdr := withCore()
		for i := range 80 {
			hdr = append(hdr, fmt.Sprintf("Ce-X%d", i), "v")
		}
		w := postBinary(h, []byte(`{}`), "application/json", hdr...)
		assert.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
		assert.Empty(t, rec.events)
	})

	t.Run("CloudEvents not accepted", func(t *testing.T) {
		_, err := eventbridge.NewHandler(&recorder{}, eventbridge.WithCloudEventsBinaryMode(), eventbridge.WithFormats(eventbridge.FormatWebhook))
		assert.ErrorIs(t, err, eventbridge.ErrInvalidConfig)
		assert.ErrorContains(t, err, "needs FormatCloudEvents")
	})
}

// Over a real connection, header names in any case reach the decoder, two spellings of one
// attribute are one header sent twice and refused, and the sender's allow-list still applies.
func TestCloudEventsBinaryModeOverHTTP(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode(), eventbridge.WithAllowedSources("/mycontext"))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	send := func(header map[string][]string) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(`{"a":1}`))
		require.NoError(t, err)
		for k, vs := range header {
			req.Header[k] = vs // sent as spelled
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		_ = resp.Body.Close()
		return resp
	}
	core := map[string][]string{"ce-specversion": {"1.0"}, "CE-ID": {"x1"}, "ce-Source": {"/mycontext"}, "cE-type": {"t"}, "content-type": {"application/json"}}
	assert.Equal(t, http.StatusOK, send(core).StatusCode)
	e, _ := rec.last(t)
	assert.Equal(t, "x1", e.ID)
	assert.Equal(t, "t", e.Type)

	core["ce-id"] = []string{"x2"}
	assert.Equal(t, http.StatusBadRequest, send(core).StatusCode)
	delete(core, "ce-id")
	core["ce-Source"] = []string{"/other"}
	assert.Equal(t, http.StatusForbidden, send(core).StatusCode)
	assert.Len(t, rec.events, 1)
}

// Whatever the headers and body, binary-mode decoding does not panic, and an event it returns is
// the one its Raw decodes to in structured mode.
func FuzzCloudEventsBinary(f *testing.F) {
	f.Add("Euro%20%E2%82%AC", "comexampleext", `"quoted \"v\""`, "application/json", []byte(`{"a":1}`))
	f.Add("s", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "text/plain", []byte("hi"))
	f.Add("%C0%A0", "x", "%", "", []byte{0xff, 0})
	f.Add("", "datacontenttype", "", "application/cloudevents+json", []byte(`{}`))
	f.Fuzz(func(t *testing.T, subject, extName, extValue, ct string, body []byte) {
		hdr := http.Header{}
		for i := 0; i < len(binaryCore); i += 2 {
			hdr.Set(binaryCore[i], binaryCore[i+1])
		}
		hdr["Ce-Subject"] = []string{subject}
		hdr["Ce-"+extName] = []string{extValue}
		if ct != "" {
			hdr["Content-Type"] = []string{ct}
		}
		e, err := eventbridge.DecodeCloudEventsBinary(hdr, body)
		if err != nil {
			return
		}
		again, err := eventbridge.Decode(e.Raw, "application/cloudevents+json")
		if err != nil {
			t.Fatalf("Raw %q does not decode again: %v", e.Raw, err)
		}
		if again.ID != e.ID || again.Type != e.Type || again.Source != e.Source || again.Topic != e.Topic ||
			!bytes.Equal(again.Data, e.Data) || fmt.Sprint(again.Metadata) != fmt.Sprint(e.Metadata) {
			t.Fatalf("Raw decodes to another event: %+v, not %+v", again, e)
		}
		if len(body) > 0 && len(e.Data) == 0 {
			t.Fatalf("a body of %d bytes was dropped", len(body))
		}
	})
}

// Content-Type sent twice is refused whatever the order of the two: a proxy in front that reads
// the last copy and this Handler, which would read the first, must not disagree on the type.
func TestContentTypeSentTwiceIsRefused(t *testing.T) {
	rec := &recorder{}
	h := newHandler(t, rec, eventbridge.WithCloudEventsBinaryMode())
	body := []byte(`{"event":"order.created","data":{"order":7}}`)
	for _, cts := range [][]string{{"application/json", "text/plain"}, {"text/plain", "application/json"}, {"application/json", "application/json"}} {
		req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
		req.Header["Content-Type"] = cts
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		assert.Equal(t, http.StatusUnsupportedMediaType, w.Code, "%q", cts)
		assert.Contains(t, w.Body.String(), "more than once")
	}
	w := postBinary(h, []byte(`{}`), "", append(binaryCore, "Content-Type", "application/json", "Content-Type", "text/plain")...)
	assert.Equal(t, http.StatusUnsupportedMediaType, w.Code, "in binary mode too")
	assert.Empty(t, rec.events)
}
