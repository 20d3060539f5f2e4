package service

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A request whose path is not clean gets the answer of an unknown path, on the intake's listener
// and on the admin one, rather than ServeMux's redirect to the clean path, which a sender does
// not follow and which came before any credential was looked at.
func TestUncleanPathsAreUnknown(t *testing.T) {
	const key = "k-0123456789"
	s, _ := newTestService(t, []byte(`intake:
  - path: /events
    verifiers:
      - api_key: {header: X-Api-Key, keys: ["`+key+`"]}
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: nothing, pattern: {source: ["never"]}, sinks: [consumer]}]
`))
	intake := httptest.NewServer(s.routes(false))
	t.Cleanup(intake.Close)
	admin := httptest.NewServer(s.adminRoutes())
	t.Cleanup(admin.Close)
	client := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	send := func(t *testing.T, method, url, apiKey string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(`{}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if apiKey != "" {
			req.Header.Set("X-Api-Key", apiKey)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, resp.Header, string(body)
	}

	for _, tc := range []struct {
		method, url, key string
	}{
		{http.MethodPost, intake.URL + "//events", ""},
		{http.MethodPost, intake.URL + "//events", key},
		{http.MethodPost, intake.URL + "/./events", ""},
		{http.MethodPost, intake.URL + "/x/../events", key},
		{http.MethodPost, intake.URL + "/events/.", ""},
		{http.MethodPost, intake.URL + "/events//", ""},
		{http.MethodGet, intake.URL + "//healthz", ""},
		{http.MethodGet, intake.URL + "/x/../readyz", ""},
		{http.MethodGet, admin.URL + "//metrics", ""},
		{http.MethodGet, admin.URL + "/./healthz", ""},
	} {
		name := tc.method + " " + strings.TrimPrefix(strings.TrimPrefix(tc.url, intake.URL), admin.URL)
		if tc.key != "" {
			name += " with the key"
		}
		t.Run(name, func(t *testing.T) {
			code, h, body := send(t, tc.method, tc.url, tc.key)
			assert.Equal(t, http.StatusNotFound, code)
			assert.Empty(t, h.Get("Location"))
			assert.JSONEq(t, `{"error":"no such path"}`, body)
		})
	}

	// The clean paths answer as before.
	code, _, _ := send(t, http.MethodPost, intake.URL+"/events", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, _, body := send(t, http.MethodPost, intake.URL+"/events", key)
	assert.Equal(t, http.StatusBadRequest, code, "the key is taken, the empty object is no event: %s", body)
	code, _, _ = send(t, http.MethodGet, intake.URL+"/healthz", "")
	assert.Equal(t, http.StatusOK, code)
	code, _, _ = send(t, http.MethodGet, admin.URL+"/metrics", "")
	assert.Equal(t, http.StatusOK, code)
	code, _, body = send(t, http.MethodPost, intake.URL+"/other", "")
	assert.Equal(t, http.StatusNotFound, code)
	assert.JSONEq(t, `{"error":"no such path"}`, body)
}
