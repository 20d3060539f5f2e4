package genesys_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge/genesys"
	"github.com/fanbridge/fanbridge/genesys/genesystest"
	"github.com/fanbridge/fanbridge/retry"
	"github.com/fanbridge/fanbridge/retry/retrytest"
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

// holdTokenEndpoint makes the fake's token endpoint hang until release is called (or the request
// ends), and reports on the returned channel each token request that arrives.
func holdTokenEndpoint(t *testing.T, srv *genesystest.Server) (arrived <-chan struct{}, release func()) {
	t.Helper()
	in := make(chan struct{}, 64)
	gate := make(chan struct{})
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before the server closes, which waits for its handlers
	srv.SetHook(func(r *http.Request) {
		if r.URL.Path != "/oauth/token" {
			return
		}
		in <- struct{}{}
		select {
		case <-gate:
		case <-r.Context().Done():
		}
	})
	return in, release
}

// waitingContext closes waiting the first time Done is called, which is when a call starts to wait
// on it: the client's retrier only asks Err before the first attempt.
type waitingContext struct {
	context.Context
	once    sync.Once
	waiting chan struct{}
}

func newWaitingContext(ctx context.Context) *waitingContext {
	return &waitingContext{Context: ctx, waiting: make(chan struct{})}
}

func (c *waitingContext) Done() <-chan struct{} {
	c.once.Do(func() { close(c.waiting) })
	return c.Context.Done()
}

// receive returns the next value from ch, failing the test if none comes before ctx ends.
func receive[T any](t *testing.T, ctx context.Context, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		require.FailNow(t, "timed out waiting for "+what)
		var zero T
		return zero
	}
}

// A call waiting for the token another call is fetching gives up when its own context ends, even
// though the attempt timeout is long and the token endpoint hangs, and its giving up neither
// cancels that fetch nor starts another.
func TestTokenWaitEndsWithTheCallersContext(t *testing.T) {
	tests := []struct {
		name   string
		policy retry.Policy
		// wait starts the waiting call on a context derived from parent and ends that context.
		wait func(t *testing.T, parent context.Context, c *genesys.Client) <-chan error
		want error
	}{
		// Without an attempt timeout the call's context reaches the token cache as it is, so the
		// first Done is the wait itself.
		{"canceled while waiting", fastPolicy, func(t *testing.T, parent context.Context, c *genesys.Client) <-chan error {
			ctx, cancel := context.WithCancel(parent)
			t.Cleanup(cancel)
			wctx := newWaitingContext(ctx)
			done := make(chan error, 1)
			go func() {
				_, err := c.Organization(wctx)
				done <- err
			}()
			receive(t, parent, wctx.waiting, "the second call to wait on its context")
			cancel()
			return done
		}, context.Canceled},
		{"short deadline", retry.Policy{InitialInterval: time.Millisecond, MaxAttempts: 1, AttemptTimeout: 60 * time.Second}, func(t *testing.T, parent context.Context, c *genesys.Client) <-chan error {
			ctx, cancel := context.WithTimeout(parent, 100*time.Millisecond)
			t.Cleanup(cancel)
			done := make(chan error, 1)
			go func() {
				_, err := c.Organization(ctx)
				done <- err
			}()
			return done
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil, genesys.WithRetryPolicy(tt.policy))
			arrived, release := holdTokenEndpoint(t, f.srv)
			ctx := testContext(t)

			first := make(chan error, 1)
			go func() {
				_, err := f.client.Organization(ctx)
				first <- err
			}()
			receive(t, ctx, arrived, "the first call's token request")

			// The token endpoint stays held: only the waiting call's own context can end its wait.
			bounded, stop := context.WithTimeout(ctx, 5*time.Second)
			defer stop()
			err := receive(t, bounded, tt.wait(t, bounded, f.client), "the waiting call to return")
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), "genesys: ")

			release()
			require.NoError(t, receive(t, ctx, first, "the first call to return"))
			assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/oauth/token"))
			assert.Equal(t, 1, f.srv.TokensIssued())
		})
	}
}

// Calls that need a token while one is being fetched wait for that one: a single token request
// serves them all.
func TestConcurrentCallsShareOneTokenRequest(t *testing.T) {
	const waiters = 7
	f := newFixture(t, nil)
	arrived, release := holdTokenEndpoint(t, f.srv)
	ctx := testContext(t)

	errs := make(chan error, waiters+1)
	go func() {
		_, err := f.client.Organization(ctx)
		errs <- err
	}()
	receive(t, ctx, arrived, "the first token request")
	bounded, stop := context.WithTimeout(ctx, 5*time.Second)
	defer stop()
	for range waiters {
		wctx := newWaitingContext(ctx)
		go func() {
			_, err := f.client.Organization(wctx)
			errs <- err
		}()
		receive(t, bounded, wctx.waiting, "a call to wait for the token")
	}
	select {
	case <-arrived:
		require.FailNow(t, "a second token request was sent while the first was in flight")
	default:
	}
	release()
	for range waiters + 1 {
		require.NoError(t, receive(t, ctx, errs, "a call to return"))
	}
	assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/oauth/token"))
	assert.Equal(t, 1, f.srv.TokensIssued())
	assert.Equal(t, waiters+1, f.srv.Count(http.MethodGet, "/api/v2/organizations/me"))
}

// Faults injected on the fake's token endpoint come in the login server's OAuth shape, so the
// client decodes them as it decodes real token errors: a 429 waits its Retry-After, and a refusal
// is a permanent *TokenError with the OAuth code and description.
func TestTokenEndpointFaults(t *testing.T) {
	t.Run("429 is retried", func(t *testing.T) {
		clk := retrytest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		f := newFixture(t, []genesystest.Option{genesystest.WithClock(clk.Now)}, genesys.WithClock(clk))
		ctx := testContext(t)
		f.srv.Fail(genesystest.Fault{Path: "/oauth/token", Status: http.StatusTooManyRequests})
		done := make(chan error, 1)
		go func() {
			_, err := f.client.Organization(ctx)
			done <- err
		}()
		require.NoError(t, clk.WaitTimers(ctx, 1))
		due, ok := clk.NextDue()
		require.True(t, ok)
		assert.Equal(t, time.Second, due, "the default Retry-After of a 429 is one second")
		clk.Advance(time.Second)
		require.NoError(t, receive(t, ctx, done, "the call to return"))
		assert.Equal(t, 1, f.srv.TokensIssued())
	})
	t.Run("refusal is a TokenError", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.Fail(genesystest.Fault{Path: "/oauth/token", Status: http.StatusBadRequest, Code: "invalid_grant", Message: "grant refused"})
		_, err := f.client.Organization(testContext(t))
		var te *genesys.TokenError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, http.StatusBadRequest, te.Status)
		assert.Equal(t, "invalid_grant", te.Code)
		assert.Equal(t, "grant refused", te.Description)
		assert.True(t, genesys.IsUnauthorized(err), "a 400 from the login server refuses the credentials")
		assert.True(t, retry.IsPermanent(err))
		assert.Equal(t, 1, f.srv.Count(http.MethodPost, "/oauth/token"))
	})
	// The token request creates nothing, so a 5xx from the login server is retried whatever the
	// call waiting for the token, a creation that is never sent twice included.
	for _, call := range []struct {
		name string
		do   func(context.Context, *genesys.Client) error
	}{
		{"5xx is retried before a read", func(ctx context.Context, c *genesys.Client) error {
			_, err := c.Organization(ctx)
			return err
		}},
		{"5xx is retried before a creation", func(ctx context.Context, c *genesys.Client) error {
			_, err := c.CreateChannel(ctx)
			return err
		}},
	} {
		t.Run(call.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.srv.Fail(genesystest.Fault{Path: "/oauth/token", Status: http.StatusServiceUnavailable})
			require.NoError(t, call.do(testContext(t), f.client))
			assert.Equal(t, 2, f.srv.Count(http.MethodPost, "/oauth/token"))
			assert.Equal(t, 1, f.srv.TokensIssued())
		})
	}
}

// Genesys' login server explains a refusal in "error_description", "description" or both; the
// TokenError carries whichever is there, error_description first.
func TestTokenErrorDescription(t *testing.T) {
	for _, tc := range []struct {
		name string
		body map[string]string
		want string
	}{
		{"both", map[string]string{"error": "invalid_client", "description": "short", "error_description": "client not found"}, "client not found"},
		{"description alone", map[string]string{"error": "invalid_client", "description": "client not found"}, "client not found"},
		{"error_description alone", map[string]string{"error": "invalid_client", "error_description": "client not found"}, "client not found"},
		{"neither", map[string]string{"error": "invalid_client"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				_ = json.NewEncoder(w).Encode(tc.body)
			}))
			t.Cleanup(login.Close)
			c, err := genesys.NewClient(genesys.USEast1, "client-1", "secret-1",
				genesys.WithBaseURL(login.URL), genesys.WithTokenURL(login.URL+"/oauth/token"), genesys.WithRetryPolicy(fastPolicy))
			require.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
			_, err = c.Organization(testContext(t))
			var te *genesys.TokenError
			require.ErrorAs(t, err, &te)
			assert.Equal(t, "invalid_client", te.Code)
			assert.Equal(t, tc.want, te.Description)
		})
	}
}

// A login server that redirects the token request never gets the credentials to another address:
// the client does not follow the redirect.
func TestTokenRequestFollowsNoRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "t", "token_type": "bearer", "expires_in": 3600})
	}))
	t.Cleanup(other.Close)
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/oauth/token", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(login.Close)
	c, err := genesys.NewClient(genesys.USEast1, "client-1", oddSecret,
		genesys.WithBaseURL(login.URL), genesys.WithTokenURL(login.URL+"/oauth/token"), genesys.WithRetryPolicy(fastPolicy))
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	_, err = c.Organization(testContext(t))
	var te *genesys.TokenError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, http.StatusTemporaryRedirect, te.Status)
	assert.Zero(t, elsewhere.Load(), "the token request went to the redirect's target")
}
