package signature_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/signature"
)

// The verifiers that need the body still refuse from the headers alone what the headers show
// cannot pass (no credentials, a signature that does not decode, a stale timestamp), without
// reading a byte of the body; headers that look right have the body read and checked.
func TestBodyVerifiersRefuseWhatTheHeadersShowBeforeReading(t *testing.T) {
	const payload = `{"detail-type":"x"}`
	github := signature.Must(signature.GitHub("s3cret"))
	sw := signature.Must(signature.StandardWebhooks([]string{secretA}, signature.WithClock(fixedClock)))
	bearer := signature.Must(signature.Bearer("tok-1"))
	validator := signature.Must(signature.BearerFunc(func(context.Context, string) error { return nil }))
	stale := swHeader(t, testMessage, testNow.Add(-time.Hour), []byte(payload), secretA)
	wellFormedWrong := headers("X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
	for _, tt := range []struct {
		name     string
		v        signature.Verifier
		header   http.Header
		readBody bool
		status   int // 401 unless set
	}{
		{"github, no signature", github, headers(), false, 0},
		{"github, malformed signature", github, headers("X-Hub-Signature-256", "sha256=zz"), false, 0},
		{"github, well-formed but wrong", github, wellFormedWrong, true, 0},
		{"standard webhooks, no headers", sw, headers(), false, 0},
		{"standard webhooks, stale", sw, stale, false, 0},
		{"any, nothing anyone accepts", signature.Must(signature.Any(github, sw, bearer)),
			headers("Authorization", "Bearer wrong"), false, 0},
		{"any, one well-formed signature", signature.Must(signature.Any(github, sw, bearer)), wellFormedWrong, true, 0},
		{"any with a validator that calls out", signature.Must(signature.Any(github, validator)),
			headers("Authorization", "Bearer some-token"), true, http.StatusNoContent},
		{"any with a validator, no token", signature.Must(signature.Any(github, validator)), headers(), false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rejected error
			h := signature.Verify(tt.v, signature.WithOnReject(func(_ *http.Request, err error) { rejected = err }))(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
			body := &trickleBody{data: []byte(payload), step: 1, end: io.EOF}
			r := httptest.NewRequest(http.MethodPost, "/", nil)
			r.Body, r.ContentLength = body, int64(len(payload))
			for k, vs := range tt.header {
				r.Header[k] = vs
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if tt.status != 0 {
				require.Equal(t, tt.status, w.Code)
			} else {
				require.Equal(t, http.StatusUnauthorized, w.Code)
				assert.Equal(t, `{"error":"unauthorized"}`+"\n", w.Body.String())
				assert.Error(t, rejected)
			}
			assert.Equal(t, tt.readBody, body.read(), "body read")
			if !tt.readBody {
				assert.Equal(t, "close", w.Header().Get("Connection"))
			}
		})
	}
}
