package eventbridge_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/retry"
)

// recorder is a Dispatcher that keeps what it was given and answers with err.
type recorder struct {
	mu     sync.Mutex
	err    error
	events []*fanbridge.Event
	ctxs   []context.Context
}

func (r *recorder) Dispatch(ctx context.Context, e *fanbridge.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	r.ctxs = append(r.ctxs, ctx)
	return r.err
}

func (r *recorder) last(t *testing.T) (*fanbridge.Event, context.Context) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.NotEmpty(t, r.events, "the dispatcher was not called")
	return r.events[len(r.events)-1], r.ctxs[len(r.ctxs)-1]
}

func newHandler(t *testing.T, d eventbridge.Dispatcher, opts ...eventbridge.Option) *eventbridge.Handler {
	t.Helper()
	h, err := eventbridge.NewHandler(d, opts...)
	require.NoError(t, err)
	return h
}

func post(h http.Handler, body []byte, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func decodeAnswer(t *testing.T, w *httptest.ResponseRecorder) map[string]string {
	t.Helper()
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var m map[string]string
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &m), "answer %q", w.Body.String())
	return m
}

func TestHandlerDispatchOutcomes(t *testing.T) {
	body := readSample(t, "v2.detail.events.conversation.customer.end.json")
	const id = "58fb5dac-f077-4eec-a25f-c638dbdd4368"
	tests := []struct {
		name       string
		err        error
		opts       []eventbridge.Option
		status     int
		answer     map[string]string
		retryAfter string
	}{
		{name: "delivered", status: 200, answer: map[string]string{"status": "delivered", "id": id}},
		{name: "dead-lettered counts as delivered", err: nil, status: 200, answer: map[string]string{"status": "delivered", "id": id}},
		{name: "no match", err: fanbridge.ErrNoMatch, status: 200, answer: map[string]string{"status": "ignored"}},
		{name: "no match wrapped", err: fmt.Errorf("routes: %w", fanbridge.ErrNoMatch), status: 200,
			answer: map[string]string{"status": "ignored"}},
		{name: "no match, 202 configured", err: fanbridge.ErrNoMatch, opts: []eventbridge.Option{eventbridge.WithIgnoredStatus(202)},
			status: 202, answer: map[string]string{"status": "ignored"}},
		{name: "duplicate", err: fanbridge.ErrDuplicate, status: 200, answer: map[string]string{"status": "duplicate"}},
		{name: "overloaded with its own wait", err: retry.After(fanbridge.ErrOverloaded, 2500*time.Millisecond), status: 503,
			answer: map[string]string{"error": "eventbridge: overloaded, retry later", "id": id}, retryAfter: "3"},
		{name: "closed", err: fanbridge.ErrClosed, status: 503,
			answer: map[string]string{"error": "eventbridge: shutting down, retry later", "id": id}, retryAfter: "1"},
		{name: "sink failure text stays private", err: errors.New("kafka broker 10.0.0.7:9092 password=hunter2 refused"), status: 503,
			answer: map[string]string{"error": "eventbridge: delivery failed, retry later", "id": id}, retryAfter: "1"},
		{name: "configured retry-after rounds up", err: errors.New("x"), opts: []eventbridge.Option{eventbridge.WithRetryAfter(1200 * time.Millisecond)},
			status: 503, answer: map[string]string{"error": "eventbridge: delivery failed, retry later", "id": id}, retryAfter: "2"},
		{name: "a tiny wait is still one second", err: retry.After(errors.New("x"), time.Millisecond), status: 503,
			answer: map[string]string{"error": "eventbridge: delivery failed, retry later", "id": id}, retryAfter: "1"},
		{name: "the longest wait does not wrap around", err: retry.After(errors.New("x"), time.Duration(math.MaxInt64)), status: 503,
			answer: map[string]string{"error": "eventbridge: delivery failed, retry later", "id": id}, retryAfter: "9223372037"},
		{name: "timeout", err: fmt.Errorf("sink: %w", context.DeadlineExceeded), status: 503,
			answer: map[string]string{"error": "eventbridge: delivery did not finish in time, retry later", "id": id}, retryAfter: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &recorder{err: tt.err}
			w := post(newHandler(t, d, tt.opts...), body)
			assert.Equal(t, tt.status, w.Code)
			assert.Equal(t, tt.answer, decodeAnswer(t, w))
			assert.Equal(t, tt.retryAfter, w.Header().Get("Retry-After"))
			assert.NotContains(t, w.Body.String(), "hunter2")
			e, _ := d.last(t)
			assert.Equal(t, id, e.ID)
		})
	}

	t.Run("204 for ignored has no body", func(t *testing.T) {
		w := post(newHandler(t, &recorder{err: fanbridge.ErrNoMatch}, eventbridge.WithIgnoredStatus(204)), body)
		assert.Equal(t, 204, w.Code)
		assert.Empty(t, w.Body.Bytes())
	})
}

func TestHandlerDispatchContext(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")

	t.Run("deadline is the budget", func(t *testing.T) {
		d := &recorder{}
		h := newHandler(t, d, eventbridge.WithDispatchTimeout(1500*time.Millisecond))
		before := time.Now()
		post(h, body)
		after := time.Now()
		_, ctx := d.last(t)
		deadline, ok := ctx.Deadline()
		require.True(t, ok)
		assert.False(t, deadline.Before(before.Add(1500*time.Millisecond)), "deadline %v", deadline)
		assert.False(t, deadline.After(after.Add(1500*time.Millisecond)), "deadline %v", deadline)
	})

	t.Run("default budget stays under EventBridge's 5 s", func(t *testing.T) {
		d := &recorder{}
		before := time.Now()
		post(newHandler(t, d), body)
		after := time.Now()
		_, ctx := d.last(t)
		deadline, ok := ctx.Deadline()
		require.True(t, ok)
		assert.Equal(t, 4*time.Second, eventbridge.DefaultDispatchTimeout)
		assert.False(t, deadline.Before(before.Add(4*time.Second)), "deadline %v", deadline)
		assert.False(t, deadline.After(after.Add(4*time.Second)), "deadline %v", deadline)
	})

	t.Run("a budget that runs out answers 503", func(t *testing.T) {
		d := eventbridge.DispatcherFunc(func(ctx context.Context, _ *fanbridge.Event) error {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * time.Second):
				t.Error("the dispatch context has no deadline")
				return nil
			}
		})
		h := newHandler(t, d, eventbridge.WithDispatchTimeout(20*time.Millisecond))
		w := post(h, body)
		assert.Equal(t, 503, w.Code)
		assert.Equal(t, "1", w.Header().Get("Retry-After"))
	})

	t.Run("a sender hanging up does not cancel the dispatch", func(t *testing.T) {
		var errAtDispatch error = errors.New("not called")
		h := newHandler(t, eventbridge.DispatcherFunc(func(ctx context.Context, _ *fanbridge.Event) error {
			errAtDispatch = ctx.Err()
			return nil
		}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)).WithContext(ctx)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		assert.Equal(t, 200, w.Code)
		assert.NoError(t, errAtDispatch)
	})
}

func TestHandlerAllowedSourcesAndAccounts(t *testing.T) {
	body := readSample(t, "v2.audits.entitytype.OAuthClient.delete.json")
	// source aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart-test, account 490606849374
	tests := []struct {
		name   string
		opts   []eventbridge.Option
		status int
		reason string
	}{
		{"exact source", []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart-test")}, 200, ""},
		{"prefix with slash", []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/")}, 200, ""},
		{"prefix with star", []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/23faea37-*")}, 200, ""},
		{"other org", []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/00000000-1117-4c0a-88a2-572c46780b03/")}, 403, "eventbridge: source not allowed"},
		{"exact does not prefix", []eventbridge.Option{eventbridge.WithAllowedSources("aws.partner/genesys.com/cloud/23faea37-1117-4c0a-88a2-572c46780b03/quickstart")}, 403, "eventbridge: source not allowed"},
		{"one of several", []eventbridge.Option{eventbridge.WithAllowedSources("a", "b/"), eventbridge.WithAllowedSources("aws.partner/genesys.com/")}, 200, ""},
		{"account", []eventbridge.Option{eventbridge.WithAllowedAccounts("111111111111", "490606849374")}, 200, ""},
		{"wrong account", []eventbridge.Option{eventbridge.WithAllowedAccounts("111111111111")}, 403, "eventbridge: account not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &recorder{}
			w := post(newHandler(t, d, tt.opts...), body)
			assert.Equal(t, tt.status, w.Code)
			if tt.status == 403 {
				assert.Equal(t, map[string]string{"error": tt.reason}, decodeAnswer(t, w))
				assert.Empty(t, d.events)
			}
		})
	}

	t.Run("an event without source or account is refused when a list is set", func(t *testing.T) {
		ws := readSample(t, "websocket.v2.users.activity.REPAIRED.json")
		assert.Equal(t, 403, post(newHandler(t, &recorder{}, eventbridge.WithAllowedSources("x/")), ws).Code)
		assert.Equal(t, 403, post(newHandler(t, &recorder{}, eventbridge.WithAllowedAccounts("111111111111")), ws).Code)
		assert.Equal(t, 200, post(newHandler(t, &recorder{}), ws).Code)
	})
}

func TestHandlerTraceContext(t *testing.T) {
	body := readSample(t, "v2.detail.events.conversation.customer.start.json")
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	tests := []struct {
		name          string
		headers       []string
		parent, state string
	}{
		{"valid pair", []string{"traceparent", tp, "tracestate", "congo=t61rcWkgMzE"}, tp, "congo=t61rcWkgMzE"},
		{"parent only", []string{"traceparent", tp}, tp, ""},
		{"upper-case hex", []string{"traceparent", strings.ToUpper(tp), "tracestate", "a=b"}, "", ""},
		{"zero trace id", []string{"traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01"}, "", ""},
		{"version ff", []string{"traceparent", "ff" + tp[2:]}, "", ""},
		{"too long for 00", []string{"traceparent", tp + "-x"}, "", ""},
		{"future version keeps its known fields", []string{"traceparent", "01" + tp[2:] + "-what", "tracestate", "a=b"}, "01" + tp[2:], "a=b"},
		{"future version of exactly 55", []string{"traceparent", "cc" + tp[2:]}, "cc" + tp[2:], ""},
		{"future version, huge non-ASCII rest", []string{"traceparent", "01" + tp[2:] + "-" + strings.Repeat("é", 100<<10)}, "01" + tp[2:], ""},
		{"future version, rest without dash", []string{"traceparent", "01" + tp[2:] + "x"}, "", ""},
		{"tracestate alone", []string{"tracestate", "a=b"}, "", ""},
		{"tracestate with control", []string{"traceparent", tp, "tracestate", "a=b\x01"}, tp, ""},
		// Kept as OpenTelemetry reads it, so that the sinks and the spans carry the same list.
		{"tracestate with spaces and empty members", []string{"traceparent", tp, "tracestate", "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,"}, tp, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		{"tracestate key outside the W3C grammar", []string{"traceparent", tp, "tracestate", "1abc=x,congo=t61rcWkgMzE"}, tp, ""},
		{"tracestate multi-tenant key", []string{"traceparent", tp, "tracestate", "tenant1@vendor=x"}, tp, "tenant1@vendor=x"},
		{"tracestate multi-tenant key", []string{"traceparent", tp, "tracestate", "fw529a3039@dt=ffffffff"}, tp, "fw529a3039@dt=ffffffff"},
		{"tracestate upper-case key", []string{"traceparent", tp, "tracestate", "Congo=t61rcWkgMzE"}, tp, ""},
		{"tracestate without =", []string{"traceparent", tp, "tracestate", "congo"}, tp, ""},
		{"tracestate key twice", []string{"traceparent", tp, "tracestate", "a=1,a=2"}, tp, ""},
		{"tracestate non-ASCII", []string{"traceparent", tp, "tracestate", "a=é"}, tp, ""},
		{"tracestate of 512", []string{"traceparent", tp, "tracestate", "a=" + strings.Repeat("v", 254) + ",b=" + strings.Repeat("v", 253)}, tp, "a=" + strings.Repeat("v", 254) + ",b=" + strings.Repeat("v", 253)},
		{"tracestate over 512", []string{"traceparent", tp, "tracestate", "a=" + strings.Repeat("v", 254) + ",b=" + strings.Repeat("v", 254)}, tp, ""},
		{"tracestate of 33 members", []string{"traceparent", tp, "tracestate", strings.Repeat("a=b,", 32) + "z=y"}, tp, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &recorder{}
			require.Equal(t, 200, post(newHandler(t, d), body, tt.headers...).Code)
			e, _ := d.last(t)
			assert.Equal(t, tt.parent, e.Meta(fanbridge.MetaTraceparent))
			assert.Equal(t, tt.state, e.Meta(fanbridge.MetaTracestate))
		})
	}

	// Valid headers replace the trace context of the body as a whole; invalid ones leave it.
	const bodyParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ce := []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","traceparent":"` + bodyParent + `","tracestate":"body=1","data":{}}`)
	for _, tt := range []struct {
		name          string
		headers       []string
		parent, state string
	}{
		{"headers win", []string{"traceparent", tp}, tp, ""},
		{"headers win with their tracestate", []string{"traceparent", tp, "tracestate", "hdr=2"}, tp, "hdr=2"},
		{"invalid header leaves the body's", []string{"traceparent", "garbage", "tracestate", "hdr=2"}, bodyParent, "body=1"},
	} {
		t.Run("body and "+tt.name, func(t *testing.T) {
			d := &recorder{}
			require.Equal(t, 200, post(newHandler(t, d), ce, tt.headers...).Code)
			e, _ := d.last(t)
			assert.Equal(t, tt.parent, e.Meta(fanbridge.MetaTraceparent))
			assert.Equal(t, tt.state, e.Meta(fanbridge.MetaTracestate))
		})
	}
}

// bytesBody is a request body that was read already: it offers its bytes and fails the test if
// read again.
type bytesBody struct {
	t    *testing.T
	data []byte
}

func (b *bytesBody) Bytes() []byte { return b.data }
func (b *bytesBody) Read([]byte) (int, error) {
	b.t.Error("the handler read a body whose bytes it was offered")
	return 0, io.EOF
}
func (b *bytesBody) Close() error { return nil }

func TestHandlerBodyReuse(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")
	d := &recorder{}
	h := newHandler(t, d)
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = &bytesBody{t: t, data: body}
	req.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, 200, w.Code)
	e, _ := d.last(t)
	assert.True(t, within(e.Raw, body) && len(e.Raw) == len(body), "Raw must be the offered bytes, not a copy")
	assert.True(t, within(e.Data, body))

	t.Run("the limit still applies", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Body = &bytesBody{t: t, data: body}
		w := httptest.NewRecorder()
		newHandler(t, failDispatcher(t), eventbridge.WithMaxBodySize(int64(len(body))-1)).ServeHTTP(w, req)
		assert.Equal(t, 413, w.Code, "one byte over the limit")
	})
}

// chunks is a reader that hands out its data a few bytes at a time, like a chunked upload.
type chunks struct {
	data []byte
	n    int
}

func (c *chunks) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), c.n, len(c.data))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

func TestHandlerBodyLimits(t *testing.T) {
	// The largest event EventBridge accepts has 256 KiB; its API destination wraps it in an
	// envelope, and the default limit takes both.
	filler := strings.Repeat("x", 256<<10-200)
	body := []byte(`{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"v2.users.{id}.activity",` +
		`"source":"aws.partner/genesys.com/cloud/cf6cb7d5-d0ea-45b5-b0cf-73ad5f5b8721/DA-VOICE-SB","account":"765425735388",` +
		`"time":"2026-03-19T22:04:48Z","region":"us-east-2","resources":[],` +
		`"detail":{"topicName":"v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.activity","eventBody":{"notes":"` + filler + `"}}}`)
	require.Greater(t, len(body), 256<<10)
	d := &recorder{}
	w := httptest.NewRecorder()
	newHandler(t, d).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body)))
	assert.Equal(t, 200, w.Code, w.Body.String())
	assert.Len(t, d.events, 1)

	// A lower limit set around the handler with http.MaxBytesHandler is answered like the
	// handler's own: 413, and the connection is not reused.
	d = &recorder{}
	w = httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
	req.ContentLength = -1
	http.MaxBytesHandler(newHandler(t, d), 1000).ServeHTTP(w, req)
	assert.Equal(t, 413, w.Code, w.Body.String())
	assert.Equal(t, "close", w.Header().Get("Connection"))
	assert.Empty(t, d.events)
}

func TestHandlerBodyReading(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")
	tests := []struct {
		name          string
		contentLength int64
		chunk         int
		limit         int64
		status        int
	}{
		{"unknown length, small reads", -1, 7, 0, 200},
		{"unknown length, limit exactly the body", -1, 100, int64(len(body)), 200},
		{"unknown length, one byte over", -1, 100, int64(len(body)) - 1, 413},
		{"known length, exactly the limit", int64(len(body)), 4096, int64(len(body)), 200},
		{"declared length over the limit", int64(len(body)), 4096, 1000, 413},
		{"unknown length, big limit", -1, 3, 1 << 20, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &recorder{}
			var opts []eventbridge.Option
			if tt.limit > 0 {
				opts = append(opts, eventbridge.WithMaxBodySize(tt.limit))
			}
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			req.Body = io.NopCloser(&chunks{data: body, n: tt.chunk})
			req.ContentLength = tt.contentLength
			w := httptest.NewRecorder()
			newHandler(t, d, opts...).ServeHTTP(w, req)
			assert.Equal(t, tt.status, w.Code, w.Body.String())
			if tt.status == 200 {
				e, _ := d.last(t)
				assert.Equal(t, body, e.Raw)
			} else {
				assert.Empty(t, d.events)
				assert.Equal(t, "close", w.Header().Get("Connection"))
			}
		})
	}

	t.Run("read error", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Body = io.NopCloser(io.MultiReader(strings.NewReader(`{"id":`), errReader{}))
		w := httptest.NewRecorder()
		newHandler(t, failDispatcher(t)).ServeHTTP(w, req)
		assert.Equal(t, 400, w.Code)
		assert.Equal(t, map[string]string{"error": "eventbridge: reading the body failed"}, decodeAnswer(t, w))
	})
}

// routeMap and eventChan are Dispatchers of other kinds that have a nil: a nil map answers nil to
// everything without anyone having filled it, and a nil channel blocks every send.
type routeMap map[string]error

func (m routeMap) Dispatch(_ context.Context, e *fanbridge.Event) error { return m[e.Type] }

type eventChan chan *fanbridge.Event

func (c eventChan) Dispatch(ctx context.Context, e *fanbridge.Event) error {
	select {
	case c <- e:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset by peer") }

func TestNewHandlerValidation(t *testing.T) {
	d := &recorder{}
	tests := map[string][]eventbridge.Option{
		"size":                  {eventbridge.WithMaxBodySize(0)},
		"ignored 400":           {eventbridge.WithIgnoredStatus(400)},
		"ignored 199":           {eventbridge.WithIgnoredStatus(199)},
		"retry-after":           {eventbridge.WithRetryAfter(0)},
		"timeout":               {eventbridge.WithDispatchTimeout(-time.Second)},
		"star source":           {eventbridge.WithAllowedSources("*")},
		"empty source":          {eventbridge.WithAllowedSources("")},
		"empty account":         {eventbridge.WithAllowedAccounts("")},
		"short account":         {eventbridge.WithAllowedAccounts("12345678901")},
		"account with a letter": {eventbridge.WithAllowedAccounts("12345678901O")},
		"no formats":            {eventbridge.WithFormats()},
		"bad format":            {eventbridge.WithFormats("soap")},
		"nil logger":            {eventbridge.WithLogger(nil)},
		"nil meter":             {eventbridge.WithMeterProvider(nil)},
		"nil tracer":            {eventbridge.WithTracerProvider(nil)},
		"empty attribute key":   {eventbridge.WithMetricAttributes(attribute.String("", "x"))},
		"attribute reason":      {eventbridge.WithMetricAttributes(attribute.String("reason", "x"))},
		"attribute outcome":     {eventbridge.WithMetricAttributes(attribute.String("outcome", "x"))},
		"attribute status":      {eventbridge.WithMetricAttributes(attribute.Int("http.response.status_code", 1))},
		"attribute twice": {eventbridge.WithMetricAttributes(attribute.String("intake", "/a")),
			eventbridge.WithMetricAttributes(attribute.String("intake", "/b"))},
		"nil option": {nil},
	}
	for name, opts := range tests {
		t.Run(name, func(t *testing.T) {
			h, err := eventbridge.NewHandler(d, opts...)
			require.ErrorIs(t, err, eventbridge.ErrInvalidConfig)
			assert.Nil(t, h)
		})
	}
	t.Run("nil dispatcher", func(t *testing.T) {
		_, err := eventbridge.NewHandler(nil)
		require.ErrorIs(t, err, eventbridge.ErrInvalidConfig)
	})
	// A nil of a Dispatcher type passes d == nil and would fail every request (a constructor's
	// error left unchecked: var d *fanout.Dispatcher; d, err = fanout.New(...)).
	typedNils := map[string]eventbridge.Dispatcher{
		"nil pointer":        (*recorder)(nil),
		"nil DispatcherFunc": eventbridge.DispatcherFunc(nil),
		"nil map":            routeMap(nil),
		"nil channel":        eventChan(nil),
	}
	for name, d := range typedNils {
		t.Run(name, func(t *testing.T) {
			h, err := eventbridge.NewHandler(d)
			require.ErrorIs(t, err, eventbridge.ErrInvalidConfig)
			assert.Nil(t, h)
			assert.Contains(t, err.Error(), fmt.Sprintf("nil %T", d))
		})
	}
	t.Run("all errors reported together", func(t *testing.T) {
		_, err := eventbridge.NewHandler(nil, eventbridge.WithMaxBodySize(-1), eventbridge.WithRetryAfter(0))
		require.Error(t, err)
		assert.Contains(t, err.Error(), "dispatcher")
		assert.Contains(t, err.Error(), "max body size")
		assert.Contains(t, err.Error(), "retry-after")
	})
}

func TestHandlerFormats(t *testing.T) {
	h := newHandler(t, &recorder{}, eventbridge.WithFormats(eventbridge.FormatNotification))
	assert.Equal(t, 200, post(h, readSample(t, "websocket.v2.users.activity.REPAIRED.json")).Code)
	w := post(h, readSample(t, "v2.conversations.transcription.json"))
	assert.Equal(t, 400, w.Code)
	assert.Equal(t, map[string]string{"error": "eventbridge: unknown event format: eventbridge envelopes are not accepted here"},
		decodeAnswer(t, w))
}

func TestHandlerLogging(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	body := readSample(t, "v2.conversations.transcription.json")

	h := newHandler(t, &recorder{err: errors.New("sink exploded")}, eventbridge.WithLogger(logger))
	require.Equal(t, 503, post(h, body).Code)
	require.Equal(t, 400, post(h, bytes.ReplaceAll(body, []byte(`"EXTERNAL"`), []byte(`"EXTERNAL`))).Code)
	out := buf.String()
	assert.Contains(t, out, "dispatch failed")
	assert.Contains(t, out, "sink exploded")
	assert.Contains(t, out, "6efd5506-3fd6-09a1-5599-09ae48bd6dd8")
	assert.Contains(t, out, "request rejected")
	assert.NotContains(t, out, "cissians", "bodies never reach the log")

	t.Run("silent by default", func(t *testing.T) {
		// Nothing to observe but the absence of a panic and of output elsewhere; the default
		// logger discards.
		assert.Equal(t, 503, post(newHandler(t, &recorder{err: errors.New("x")}), body).Code)
	})
}

func TestHandlerTelemetry(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	d := &recorder{}
	h := newHandler(t, d, eventbridge.WithMeterProvider(mp), eventbridge.WithTracerProvider(tp))
	body := readSample(t, "v2.conversations.transcription.json")

	const tp1 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	require.Equal(t, 200, post(h, body, "traceparent", tp1).Code)
	require.Equal(t, 405, func() int {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w.Code
	}())
	require.Equal(t, 400, post(h, []byte(`{`)).Code)
	d.err = fanbridge.ErrNoMatch
	require.Equal(t, 200, post(h, body).Code)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	sums := map[string]int64{}
	var histCount uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					key := m.Name
					for _, kv := range dp.Attributes.ToSlice() {
						key += "," + string(kv.Key) + "=" + kv.Value.Emit()
					}
					sums[key] += dp.Value
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					histCount += dp.Count
					// Seconds: a request of this test takes far less than one, so it must
					// land in a bucket below 1 s, not in one as wide as the whole budget.
					require.NotEmpty(t, dp.Bounds)
					assert.Less(t, dp.Bounds[0], 0.001, "the smallest bucket is under a millisecond")
					var under1s uint64
					for i, b := range dp.Bounds {
						if b <= 1 {
							under1s += dp.BucketCounts[i]
						}
					}
					assert.Equal(t, dp.Count, under1s)
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"fanbridge.eventbridge.requests":                     4,
		"fanbridge.eventbridge.rejected,reason=method":       1,
		"fanbridge.eventbridge.rejected,reason=malformed":    1,
		"fanbridge.eventbridge.dispatched,outcome=delivered": 1,
		"fanbridge.eventbridge.dispatched,outcome=ignored":   1,
	}, sums)
	assert.Equal(t, uint64(4), histCount)

	ended := spans.Ended()
	require.Len(t, ended, 4)
	first := ended[0]
	assert.Equal(t, "0af7651916cd43dd8448eb211c80319c", first.SpanContext().TraceID().String(), "child of the sender's trace")
	assert.Equal(t, trace.SpanKindServer, first.SpanKind())
	attrs := map[string]string{}
	for _, kv := range first.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	assert.Equal(t, "6efd5506-3fd6-09a1-5599-09ae48bd6dd8", attrs["messaging.message.id"])
	assert.Equal(t, "v2.conversations.{id}.transcription", attrs["fanbridge.event.type"])
	assert.Equal(t, "200", attrs["http.response.status_code"])

	_, dctx := d.last(t)
	assert.Equal(t, ended[3].SpanContext().SpanID(), trace.SpanContextFromContext(dctx).SpanID(),
		"the dispatcher runs inside the request's span")
}

// Concurrent requests share the Handler and its pooled scanners; every event must come out as its
// own body says (run with -race).
func TestHandlerConcurrent(t *testing.T) {
	files := []string{
		"v2.conversations.transcription.json",
		"v2.audits.entitytype.OAuthClient.delete.json",
		"v2.detail.events.conversation.customer.start.json",
		"websocket.v2.users.activity.REPAIRED.json",
	}
	bodies := make([][]byte, len(files))
	want := make([]*fanbridge.Event, len(files))
	for i, f := range files {
		bodies[i] = readSample(t, f)
		e, err := eventbridge.Decode(bodies[i], "")
		require.NoError(t, err)
		want[i] = e
	}
	h := newHandler(t, eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
		for _, w := range want {
			if w.ID == e.ID {
				if w.Type != e.Type || w.Topic != e.Topic || !bytes.Equal(w.Data, e.Data) ||
					w.Meta(fanbridge.MetaCorrelationID) != e.Meta(fanbridge.MetaCorrelationID) {
					return errors.New("event decoded wrongly")
				}
				return nil
			}
		}
		return errors.New("unknown event")
	}))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				w := post(h, bodies[(g+i)%len(bodies)])
				if w.Code != 200 {
					t.Errorf("status %d: %s", w.Code, w.Body.String())
					return
				}
			}
		}()
	}
	wg.Wait()
}

// The receive span's parent is the trace context the Handler accepts for the event, never one it
// refuses; trace context that came in the body is linked; and a Dispatcher that panics still
// leaves an ended span.
func TestHandlerSpanParentAndLinks(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	d := &recorder{}
	h := newHandler(t, d, eventbridge.WithTracerProvider(tp))
	const (
		tpA = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
		tpB = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	)

	t.Run("two traceparent headers", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/events", bytes.NewReader(readSample(t, "v2.conversations.transcription.json")))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Add("traceparent", tpA)
		req.Header.Add("traceparent", tpB)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		require.Equal(t, 200, w.Code)
		e, _ := d.last(t)
		assert.Empty(t, e.Meta(fanbridge.MetaTraceparent), "refused: the W3C rule wants one")
		ended := spans.Ended()
		sp := ended[len(ended)-1]
		assert.False(t, sp.Parent().IsValid(), "the span has no parent the event does not carry")
	})
	t.Run("trace context in the body", func(t *testing.T) {
		body := []byte(`{"specversion":"1.0","id":"1","source":"urn:x","type":"t","traceparent":"` + tpB + `","data":{}}`)
		require.Equal(t, 200, post(h, body).Code)
		e, dctx := d.last(t)
		assert.Equal(t, tpB, e.Meta(fanbridge.MetaTraceparent), "the event keeps it for its sinks")
		ended := spans.Ended()
		sp := ended[len(ended)-1]
		require.Len(t, sp.Links(), 1)
		assert.Equal(t, "4bf92f3577b34da6a3ce929d0e0e4736", sp.Links()[0].SpanContext.TraceID().String())
		assert.Equal(t, sp.SpanContext().SpanID(), trace.SpanContextFromContext(dctx).SpanID(),
			"the dispatcher still runs inside the request's span")
	})
	t.Run("a dispatcher that panics", func(t *testing.T) {
		ph := newHandler(t, panicker{}, eventbridge.WithTracerProvider(tp))
		before := len(spans.Ended())
		func() {
			defer func() { assert.NotNil(t, recover()) }()
			post(ph, readSample(t, "v2.conversations.transcription.json"))
		}()
		require.Len(t, spans.Ended(), before+1, "the span was ended")
	})
}

// A request the sender got wrong is not a server failure: its span says why it was refused, with
// the status left unset, as OpenTelemetry's HTTP conventions ask of server spans; a 5xx is an
// error.
func TestHandlerSpanStatusOfRejections(t *testing.T) {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	h := newHandler(t, &recorder{}, eventbridge.WithTracerProvider(tp))
	last := func() sdktrace.ReadOnlySpan {
		ended := spans.Ended()
		require.NotEmpty(t, ended)
		return ended[len(ended)-1]
	}
	reasonOf := func(sp sdktrace.ReadOnlySpan) string {
		for _, kv := range sp.Attributes() {
			if kv.Key == "fanbridge.rejected.reason" {
				return kv.Value.AsString()
			}
		}
		return ""
	}

	require.Equal(t, 400, post(h, []byte(`{`)).Code)
	sp := last()
	assert.Equal(t, codes.Unset, sp.Status().Code, "a malformed body is the sender's fault")
	assert.Equal(t, "malformed", reasonOf(sp))

	req := httptest.NewRequest(http.MethodPost, "/events", strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "text/plain")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, 415, w.Code)
	sp = last()
	assert.Equal(t, codes.Unset, sp.Status().Code)
	assert.Equal(t, "content_type", reasonOf(sp))

	// A body that stops arriving is answered 503 (retry later): the server gave up, an error.
	slow := newHandler(t, &recorder{}, eventbridge.WithTracerProvider(tp))
	req = httptest.NewRequest(http.MethodPost, "/events", timeoutReader{})
	req.Header.Set("Content-Type", "application/json")
	w = httptest.NewRecorder()
	slow.ServeHTTP(w, req)
	require.Equal(t, 503, w.Code)
	sp = last()
	assert.Equal(t, codes.Error, sp.Status().Code)
	assert.Equal(t, "read", reasonOf(sp))
}

type panicker struct{}

func (panicker) Dispatch(context.Context, *fanbridge.Event) error { panic("dispatcher bug") }

// Two Handlers on one MeterProvider, told apart by WithMetricAttributes, keep series of their
// own: every measurement carries the attribute, beside the Handler's own.
func TestHandlerMetricAttributes(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	a := newHandler(t, &recorder{}, eventbridge.WithMeterProvider(mp),
		eventbridge.WithMetricAttributes(attribute.String("intake", "/a"), attribute.Bool("edge", true)))
	b := newHandler(t, &recorder{err: fanbridge.ErrNoMatch}, eventbridge.WithMeterProvider(mp),
		eventbridge.WithMetricAttributes(attribute.String("intake", "/b")))
	panicking := newHandler(t, &recorder{}, eventbridge.WithMeterProvider(mp), eventbridge.WithMetricAttributes(attribute.String("intake", "/p")))
	body := readSample(t, "v2.conversations.transcription.json")
	require.Equal(t, 200, post(a, body).Code)
	require.Equal(t, 400, post(a, []byte(`{`)).Code)
	require.Equal(t, 200, post(b, body).Code)
	require.Equal(t, 200, post(b, body).Code)
	// An answer outside the list of prepared ones (here the 500 of no answer at all) still
	// carries the attribute.
	require.Panics(t, func() {
		panicking.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", &panicReader{}))
	})

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			add := func(attrs attribute.Set, v int64) {
				key := m.Name
				for _, kv := range attrs.ToSlice() {
					key += "," + string(kv.Key) + "=" + kv.Value.Emit()
				}
				got[key] += v
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, dp := range data.DataPoints {
					add(dp.Attributes, dp.Value)
				}
			case metricdata.Histogram[float64]:
				for _, dp := range data.DataPoints {
					add(dp.Attributes, int64(dp.Count))
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{
		"fanbridge.eventbridge.requests,edge=true,intake=/a":                                       2,
		"fanbridge.eventbridge.requests,intake=/b":                                                 2,
		"fanbridge.eventbridge.requests,intake=/p":                                                 1,
		"fanbridge.eventbridge.rejected,edge=true,intake=/a,reason=malformed":                      1,
		"fanbridge.eventbridge.dispatched,edge=true,intake=/a,outcome=delivered":                   1,
		"fanbridge.eventbridge.dispatched,intake=/b,outcome=ignored":                               2,
		"fanbridge.eventbridge.request.duration,edge=true,http.response.status_code=200,intake=/a": 1,
		"fanbridge.eventbridge.request.duration,edge=true,http.response.status_code=400,intake=/a": 1,
		"fanbridge.eventbridge.request.duration,http.response.status_code=200,intake=/b":           2,
		"fanbridge.eventbridge.request.duration,http.response.status_code=500,intake=/p":           1,
	}, got)
}

// panicReader is a request body whose first read panics, as a broken middleware's might.
type panicReader struct{}

func (*panicReader) Read([]byte) (int, error) { panic("the body cannot be read") }

// With WithQueuingDispatcher a nil from the Dispatcher is answered and counted as queued, not as
// delivered; errors are answered as without it.
func TestQueuingDispatcher(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	d := &recorder{}
	h := newHandler(t, d, eventbridge.WithQueuingDispatcher(), eventbridge.WithMeterProvider(mp))
	body := readSample(t, "v2.conversations.transcription.json")

	w := post(h, body)
	require.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"status":"queued","id":"6efd5506-3fd6-09a1-5599-09ae48bd6dd8"}`, w.Body.String())
	d.err = fanbridge.ErrNoMatch
	w = post(h, body)
	require.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"status":"ignored"}`, w.Body.String())
	d.err = fanbridge.ErrOverloaded
	require.Equal(t, http.StatusServiceUnavailable, post(h, body).Code)

	var rm metricdata.ResourceMetrics
	require.NoError(t, reader.Collect(context.Background(), &rm))
	outcomes := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if data, ok := m.Data.(metricdata.Sum[int64]); ok && m.Name == "fanbridge.eventbridge.dispatched" {
				for _, dp := range data.DataPoints {
					v, _ := dp.Attributes.Value("outcome")
					outcomes[v.Emit()] += dp.Value
				}
			}
		}
	}
	assert.Equal(t, map[string]int64{"queued": 1, "ignored": 1, "overloaded": 1}, outcomes)
}

// A body that arrives too slowly for the server's ReadTimeout is answered 503 with Retry-After
// and Connection: close, not 400: the connection is still there, the sender hears the answer, and
// it may well send the body in time on another try (400 is never retried).
func TestSlowBodyIsRetryable(t *testing.T) {
	h := newHandler(t, &recorder{})
	srv := httptest.NewUnstartedServer(h)
	// The worst case: the write deadline passes together with the read one.
	srv.Config.ReadTimeout = 200 * time.Millisecond
	srv.Config.WriteTimeout = 200 * time.Millisecond
	srv.Start()
	t.Cleanup(srv.Close)
	resp := postHalfABody(t, srv.Listener.Addr().String())
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))
	assert.True(t, resp.Close, "Connection: close")
}

// postHalfABody sends a request announcing 100 bytes of body and sends only a few, then reads
// the answer the server gives when its read deadline passes.
func postHalfABody(t *testing.T, addr string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	require.NoError(t, conn.SetDeadline(time.Now().Add(20*time.Second)))
	_, err = io.WriteString(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"id\":")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	_ = resp.Body.Close()
	return resp
}

// timeoutReader fails as a body does when the server's read deadline passes.
type timeoutReader struct{}

func (timeoutReader) Read([]byte) (int, error) { return 0, os.ErrDeadlineExceeded }
