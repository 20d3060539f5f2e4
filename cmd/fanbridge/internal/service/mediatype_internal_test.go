package service

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Each request the intake answers 415 is one the README's table of answers gives 415, in words
// the test finds in that row; a CloudEvent in binary mode is answered 415 only on a path without
// cloudevents_binary.
func TestUnsupportedMediaTypeAsDocumented(t *testing.T) {
	manual, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	require.NoError(t, err)
	var row string
	for _, l := range strings.Split(string(manual), "\n") {
		if strings.HasSuffix(l, "| 415 | error |") {
			require.Empty(t, row, "README.md's table of answers has two 415 rows")
			row = l
		}
	}
	require.NotEmpty(t, row, "README.md's table of answers has no 415 row")

	s, _ := newTestService(t, []byte(`intake:
  - {path: /events, insecure_no_auth: true}
  - {path: /binary, insecure_no_auth: true, cloudevents_binary: true}
sinks: [{name: consumer, grpc: {targets: ["127.0.0.1:1"], insecure: true}}]
routes: [{name: nothing, pattern: {source: ["never"]}, sinks: [consumer]}]
`))
	srv := httptest.NewServer(s.routes(true))
	t.Cleanup(srv.Close)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(t *testing.T, path string, header http.Header) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"a":1}`))
		require.NoError(t, err)
		req.Header = header
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	binary := func(contentType string) http.Header {
		return http.Header{"Content-Type": {contentType}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"},
			"Ce-Source": {"/test"}, "Ce-Type": {"test.event"}}
	}
	for _, tc := range []struct {
		name   string
		header http.Header
		words  []string // what the README's 415 row says of the case
	}{
		{"another type", http.Header{"Content-Type": {"text/plain"}}, []string{"`application/json`", "`application/cloudevents+json`"}},
		{"another charset", http.Header{"Content-Type": {"application/json; charset=latin1"}}, []string{"UTF-8"}},
		{"two types", http.Header{"Content-Type": {"application/json", "application/json"}}, []string{"twice"}},
		{"binary mode", binary("application/octet-stream"), []string{"binary-mode", "`ce-specversion`", "`cloudevents_binary: true`"}},
		{"binary mode in JSON", binary("application/json"), []string{"`ce-specversion`", "`application/json` included"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, http.StatusUnsupportedMediaType, post(t, "/events", tc.header))
			for _, w := range tc.words {
				assert.Contains(t, row, w, "README.md's 415 row")
			}
		})
	}
	t.Run("binary mode where it is on", func(t *testing.T) {
		for _, ct := range []string{"application/octet-stream", "application/json", "text/plain"} {
			assert.Equal(t, http.StatusOK, post(t, "/binary", binary(ct)), ct)
		}
		assert.Contains(t, row, "takes any Content-Type", "README.md's 415 row")
	})
}
