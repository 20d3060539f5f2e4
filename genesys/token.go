package genesys

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/fanbridge/fanbridge/retry"
)

// maxRefreshMargin is how long before its expiry a token is replaced at most; short-lived tokens
// are replaced when 10% of their lifetime remains.
const maxRefreshMargin = 60 * time.Second

// tokenCache holds the current access token and fetches a new one, once for all waiting callers,
// when it is missing, about to expire, or was refused by the API.
type tokenCache struct {
	conf   clientcredentials.Config
	http   *http.Client
	clock  retry.Clock
	c      *Client
	mu     sync.Mutex // held during a fetch, so concurrent callers share one token request
	token  string
	expiry time.Time // when the server says the token expires
	renew  time.Time // when we replace it, a margin before expiry
}

// get returns a valid access token, fetching one when needed.
func (t *tokenCache) get(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.clock.Now().Before(t.renew) {
		return t.token, nil
	}
	return t.fetchLocked(ctx)
}

// invalidate drops token if it is still the cached one, so that the next get fetches a new one.
// Comparing avoids throwing away a token another request has just fetched.
func (t *tokenCache) invalidate(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token == token {
		t.token = ""
	}
}

func (t *tokenCache) fetchLocked(ctx context.Context) (string, error) {
	start := t.clock.Now()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.http)
	tok, err := t.conf.Token(ctx)
	if err != nil {
		return "", t.c.tokenError(err)
	}
	lifetime := tokenLifetime(tok)
	if lifetime <= 0 {
		return "", fmt.Errorf("genesys: token answer has no usable expires_in")
	}
	margin := min(maxRefreshMargin, lifetime/10)
	t.token = tok.AccessToken
	t.expiry = start.Add(lifetime)
	t.renew = t.expiry.Add(-margin)
	t.c.log.LogAttrs(ctx, levelDebug, "genesys: fetched access token",
		slogDuration("lifetime", lifetime), slogDuration("refresh_margin", margin))
	return t.token, nil
}

// tokenLifetime reads expires_in from the token answer. It does not use tok.Expiry, which the
// oauth2 package computes from the wall clock, so that a fake clock drives expiry in tests.
func tokenLifetime(tok *oauth2.Token) time.Duration {
	var secs float64
	switch v := tok.Extra("expires_in").(type) {
	case float64:
		secs = v
	case json.Number:
		secs, _ = v.Float64()
	case string:
		secs, _ = strconv.ParseFloat(v, 64)
	}
	if secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if !tok.Expiry.IsZero() {
		return time.Until(tok.Expiry)
	}
	return 0
}

// tokenError turns an oauth2 error into a *TokenError (for an answer) or a transport error. The
// retrier's marks are added by classify.
func (c *Client) tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// A transport error: the URL in it is the token URL, which holds no secret.
		return fmt.Errorf("genesys: token request: %w", err)
	}
	status := 0
	var h http.Header
	if re.Response != nil {
		status, h = re.Response.StatusCode, re.Response.Header
	}
	return parseTokenError(status, h, re.Body, c.clock.Now())
}
