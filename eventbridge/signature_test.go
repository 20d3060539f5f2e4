package eventbridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/eventbridge"
	"github.com/fanbridge/fanbridge/signature"
)

// sendSigned posts body to url with the given headers over real HTTP and returns status and answer.
func sendSigned(t *testing.T, url string, body []byte, sign func(*http.Request)) (int, map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if sign != nil {
		sign(req)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var answer map[string]string
	require.NoError(t, json.Unmarshal(raw, &answer), "answer %q", raw)
	return resp.StatusCode, answer
}

func TestSignatureInFrontOfHandler(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")
	const secret = "s3cr3t-shared-with-the-signing-proxy"
	scheme := signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}
	v, err := signature.HMAC(scheme, secret)
	require.NoError(t, err)

	var calls atomic.Int32
	h := newHandler(t, eventbridge.DispatcherFunc(func(_ context.Context, e *fanbridge.Event) error {
		calls.Add(1)
		return nil
	}))
	srv := httptest.NewServer(signature.Verify(v)(h))
	defer srv.Close()

	signWith := func(key string, signed []byte) func(*http.Request) {
		return func(r *http.Request) {
			sig, err := signature.SignHMAC(scheme, key, signed)
			require.NoError(t, err)
			r.Header.Set(scheme.Header, sig)
		}
	}
	tampered := bytes.Replace(body, []byte(`"SESSION_ONGOING"`), []byte(`"SESSION_ENDED__"`), 1)
	require.NotEqual(t, body, tampered)

	tests := []struct {
		name   string
		body   []byte
		sign   func(*http.Request)
		status int
		calls  int32
	}{
		{"signed", body, signWith(secret, body), 200, 1},
		{"missing signature", body, nil, 401, 0},
		{"wrong secret", body, signWith("another-secret", body), 401, 0},
		{"body changed after signing", tampered, signWith(secret, body), 401, 0},
		{"garbage signature", body, func(r *http.Request) { r.Header.Set(scheme.Header, "zz") }, 401, 0},
		{"signed but malformed event", []byte(`{"id":`), signWith(secret, []byte(`{"id":`)), 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls.Store(0)
			status, answer := sendSigned(t, srv.URL, tt.body, tt.sign)
			assert.Equal(t, tt.status, status, "%v", answer)
			assert.Equal(t, tt.calls, calls.Load())
			if status == 401 {
				assert.Equal(t, map[string]string{"error": "unauthorized"}, answer, "the same body for every reason")
			}
		})
	}
}

func TestStandardWebhooksInFrontOfHandler(t *testing.T) {
	body := readSample(t, "v2.audits.entitytype.UserPresence.update.json")
	secret, err := signature.NewStandardWebhooksSecret()
	require.NoError(t, err)
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	cache, err := signature.NewMemoryReplayCache(100)
	require.NoError(t, err)
	v, err := signature.StandardWebhooks([]string{secret},
		signature.WithClock(func() time.Time { return now }), signature.WithReplayCache(cache))
	require.NoError(t, err)

	var fail atomic.Bool
	var calls atomic.Int32
	h := newHandler(t, eventbridge.DispatcherFunc(func(context.Context, *fanbridge.Event) error {
		calls.Add(1)
		if fail.Load() {
			return fanbridge.ErrOverloaded
		}
		return nil
	}))
	srv := httptest.NewServer(signature.Verify(v)(h))
	defer srv.Close()

	sign := func(id string, at time.Time) func(*http.Request) {
		return func(r *http.Request) {
			require.NoError(t, signature.SignStandardWebhooksRequest(r, id, at, body, secret))
		}
	}

	status, _ := sendSigned(t, srv.URL, body, sign("msg_stale", now.Add(-10*time.Minute)))
	assert.Equal(t, 401, status, "stale timestamp")
	status, _ = sendSigned(t, srv.URL, body, sign("msg_future", now.Add(10*time.Minute)))
	assert.Equal(t, 401, status, "timestamp from the future")
	assert.Zero(t, calls.Load())

	// A 503 releases the message id, so the sender's retry is accepted, and then a replay is not.
	fail.Store(true)
	status, answer := sendSigned(t, srv.URL, body, sign("msg_1", now))
	assert.Equal(t, 503, status)
	assert.Equal(t, "eventbridge: overloaded, retry later", answer["error"])
	fail.Store(false)
	status, answer = sendSigned(t, srv.URL, body, sign("msg_1", now))
	assert.Equal(t, 200, status)
	assert.Equal(t, "delivered", answer["status"])
	status, _ = sendSigned(t, srv.URL, body, sign("msg_1", now))
	assert.Equal(t, 401, status, "replayed message id")
	assert.Equal(t, int32(2), calls.Load())
}

// The Handler must take the verified bytes from signature.Body rather than read a second copy.
func TestHandlerUsesVerifiedBytes(t *testing.T) {
	body := readSample(t, "v2.conversations.transcription.json")
	d := &recorder{}
	h := newHandler(t, d)
	req := httptest.NewRequest(http.MethodPost, "/", nil)
	req.Body = signature.NewBody(body)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	require.Equal(t, 200, w.Code)
	e, _ := d.last(t)
	assert.True(t, within(e.Raw, body) && len(e.Raw) == len(body))
}

// Verify reads the body before the Handler, with its own limit, even for a verifier that decides
// from the headers alone: WithMaxBodySize takes a larger body only when Verify is given the same
// limit with signature.WithMaxBodyBytes.
func TestBodyLimitBehindVerify(t *testing.T) {
	const limit = 1 << 20
	v, err := signature.APIKey("X-Api-Key", "k3y-shared-with-the-connection")
	require.NoError(t, err)
	body := []byte(`{"event":"e","data":{"p":"` + strings.Repeat("x", 300<<10) + `"}}`)
	withKey := func(r *http.Request) { r.Header.Set("X-Api-Key", "k3y-shared-with-the-connection") }
	h := newHandler(t, &recorder{}, eventbridge.WithMaxBodySize(limit))

	tests := []struct {
		name   string
		opts   []signature.Option
		status int
	}{
		{"only the Handler's limit raised", nil, http.StatusRequestEntityTooLarge},
		{"both raised", []signature.Option{signature.WithMaxBodyBytes(limit)}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(signature.Verify(v, tt.opts...)(h))
			defer srv.Close()
			status, _ := sendSigned(t, srv.URL, body, withKey)
			assert.Equal(t, tt.status, status)
		})
	}
}
