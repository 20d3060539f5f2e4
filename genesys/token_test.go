package genesys_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
)

// A secret holding characters that form encoding changes, and a colon, which only the id may not
// hold.
const oddSecret = "a+b/c=d$e%f g:h"

// The token request carries Authorization: Basic base64(clientId:clientSecret) exactly, as Genesys
// documents it: no form encoding of id and secret first, and no credentials in the body.
func TestTokenRequestSendsPlainBasicCredentials(t *testing.T) {
	const id = "6c1d2e4f-0a1b-4c2d-8e3f-405162738495"
	var seen http.Header
	var body url.Values
	srv := genesystest.NewServer(genesystest.WithCredentials(id, oddSecret))
	t.Cleanup(srv.Close)
	spy := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasSuffix(r.URL.Path, "/oauth/token") {
			seen = r.Header.Clone()
			rc, err := r.GetBody() // a copy: the request's own body is sent
			require.NoError(t, err)
			b, err := io.ReadAll(rc)
			require.NoError(t, err)
			body, err = url.ParseQuery(string(b))
			require.NoError(t, err)
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	c, err := genesys.NewClient(genesys.USEast1, id, oddSecret, genesys.WithBaseURL(srv.URL), genesys.WithTokenURL(srv.TokenURL()),
		genesys.WithHTTPClient(spy), genesys.WithRetryPolicy(fastPolicy))
	require.NoError(t, err)
	_, err = c.Organization(testContext(t))
	require.NoError(t, err)
	assert.Equal(t, "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+oddSecret)), seen.Get("Authorization"))
	assert.Equal(t, url.Values{"grant_type": {"client_credentials"}}, body)
}

// genesystest's token endpoint decodes the header as Genesys documents it: a form-encoded secret
// is not the secret.
func TestFakeTokenEndpointReadsPlainBasicCredentials(t *testing.T) {
	const id = "client-1"
	srv := genesystest.NewServer(genesystest.WithCredentials(id, oddSecret))
	t.Cleanup(srv.Close)
	for _, tc := range []struct {
		name, user, pass string
		status           int
	}{
		{"plain", id, oddSecret, http.StatusOK},
		{"form-encoded", url.QueryEscape(id), url.QueryEscape(oddSecret), http.StatusUnauthorized},
		{"wrong secret", id, "a+b", http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, srv.TokenURL(), strings.NewReader("grant_type=client_credentials"))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(tc.user, tc.pass)
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			_ = resp.Body.Close()
			assert.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
