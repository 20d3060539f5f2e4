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
	conf  clientcredentials.Config
	http  *http.Client
	clock retry.Clock
	c     *Client
	// fetching is a one-slot semaphore held during a fetch, so that concurrent callers share one
	// token request. It is a channel rather than a mutex so that a waiting caller can give up
	// when its own context ends, without touching the fetch of the caller that holds it.
	fetching chan struct{}

	mu     sync.Mutex // guards the fields below; never held during a request
	token  string
	expiry time.Time // when the server says the token expires
	renew  time.Time // when we replace it, a margin before expiry
}

func newTokenCache(conf clientcredentials.Config, hc *http.Client, clock retry.Clock, c *Client) *tokenCache {
	return &tokenCache{conf: conf, http: hc, clock: clock, c: c, fetching: make(chan struct{}, 1)}
}

// get returns a valid access token, fetching one when needed. While another caller fetches, it
// waits for that token or for the end of ctx, whichever comes first.
func (t *tokenCache) get(ctx context.Context) (string, error) {
	if tok, ok := t.cached(); ok {
		return tok, nil
	}
	select {
	case t.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("genesys: waiting for an access token: %w", ctx.Err())
	}
	defer func() { <-t.fetching }()
	// The caller that held the slot may have fetched the token meanwhile.
	if tok, ok := t.cached(); ok {
		return tok, nil
	}
	return t.fetch(ctx)
}

// cached returns the current token unless it is missing or due for renewal.
func (t *tokenCache) cached() (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.clock.Now().Before(t.renew) {
		return t.token, true
	}
	return "", false
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

// fetch requests a new token and caches it; the caller holds the fetching slot.
func (t *tokenCache) fetch(ctx context.Context) (string, error) {
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
	t.mu.Lock()
	t.token = tok.AccessToken
	t.expiry = start.Add(lifetime)
	t.renew = t.expiry.Add(-margin)
	t.mu.Unlock()
	t.c.log.LogAttrs(ctx, levelDebug, "genesys: fetched access token",
		slogDuration("lifetime", lifetime), slogDuration("refresh_margin", margin))
	return tok.AccessToken, nil
}

// maxTokenLifetime is the longest lifetime a token answer is taken to give.
const maxTokenLifetime = 365 * 24 * time.Hour

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
		// A token said never to expire (a huge expires_in) is renewed after a year: converted
		// whole, the seconds would overflow a Duration.
		return time.Duration(min(secs, maxTokenLifetime.Seconds()) * float64(time.Second))
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
