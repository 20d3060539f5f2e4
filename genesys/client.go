package genesys

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/fanbridge/fanbridge/retry"
)

// Size limits for answers the client reads.
const (
	maxResponseBody = 32 << 20 // a successful answer (topic listings are the largest)
	maxErrorBody    = 64 << 10 // an error answer: only its JSON head matters
)

// Client calls the Genesys Cloud REST API endpoints fanbridge needs: integrations, notification
// topics and channels, and the organization. It authenticates with OAuth client credentials, caches
// the token and renews it before it expires, and retries what is safe to retry. A Client is safe
// for concurrent use.
type Client struct {
	region        Region
	baseURL       string // without a trailing slash
	http          *http.Client
	log           *slog.Logger
	retrier       *retry.Retrier
	clock         retry.Clock
	maxRetryAfter time.Duration
	userAgent     string
	tokens        *tokenCache
	own           *ownTransport // the transport of the HTTP client NewClient built, or nil
	closed        atomic.Bool
}

// NewClient returns a client for the Genesys Cloud region (a constant such as USEast1, a Region
// from ParseRegion, or any API host) using the OAuth client credentials clientID and clientSecret.
// The client's rights come from the roles given to the OAuth client in Genesys Cloud.
//
// NewClient makes no request; the first call fetches a token. It returns an error wrapping
// ErrInvalidConfig, which never contains the secret, for an argument or option it cannot use.
// Close the Client when done with it: it keeps connections open for reuse.
func NewClient(region Region, clientID, clientSecret string, opts ...Option) (*Client, error) {
	cfg := config{
		logger:        slog.New(slog.DiscardHandler),
		policy:        DefaultRetryPolicy,
		maxRetryAfter: DefaultMaxRetryAfter,
		clock:         retry.SystemClock,
		userAgent:     DefaultUserAgent,
	}
	for _, o := range opts {
		o.apply(&cfg)
	}
	switch {
	case strings.TrimSpace(clientID) == "":
		return nil, fmt.Errorf("%w: client id is empty", ErrInvalidConfig)
	case strings.TrimSpace(clientSecret) == "":
		return nil, fmt.Errorf("%w: client secret is empty", ErrInvalidConfig)
	case cfg.logger == nil:
		return nil, fmt.Errorf("%w: nil logger", ErrInvalidConfig)
	case cfg.clock == nil:
		return nil, fmt.Errorf("%w: nil clock", ErrInvalidConfig)
	case cfg.maxRetryAfter < 0:
		return nil, fmt.Errorf("%w: negative MaxRetryAfter %v", ErrInvalidConfig, cfg.maxRetryAfter)
	case strings.ContainsAny(cfg.userAgent, "\r\n"):
		return nil, fmt.Errorf("%w: User-Agent contains a line break", ErrInvalidConfig)
	}
	if err := region.validate(); err != nil {
		return nil, err
	}
	if cfg.baseURL == "" {
		cfg.baseURL = "https://" + region.APIHost()
	}
	if cfg.tokenURL == "" {
		if region.LoginHost() == "" {
			return nil, fmt.Errorf("%w: region %q does not start with \"api.\": give the token URL with WithTokenURL", ErrInvalidConfig, region)
		}
		cfg.tokenURL = "https://" + region.LoginHost() + "/oauth/token"
	}
	if _, err := parseHTTPURL("base URL", cfg.baseURL); err != nil {
		return nil, err
	}
	if _, err := parseHTTPURL("token URL", cfg.tokenURL); err != nil {
		return nil, err
	}
	var own *ownTransport
	if cfg.httpClient == nil {
		own = newOwnTransport()
		cfg.httpClient = &http.Client{Transport: own}
	}
	cfg.policy.MaxRetryAfter = cfg.maxRetryAfter
	if cfg.maxRetryAfter == 0 {
		cfg.policy.MaxRetryAfter = time.Nanosecond // zero would mean MaxInterval to the retry package
	}
	r, err := retry.New(cfg.policy, retry.WithClock(cfg.clock))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	c := &Client{
		region:        region,
		baseURL:       strings.TrimSuffix(cfg.baseURL, "/"),
		http:          cfg.httpClient,
		log:           cfg.logger,
		retrier:       r,
		clock:         cfg.clock,
		maxRetryAfter: cfg.maxRetryAfter,
		userAgent:     cfg.userAgent,
		own:           own,
	}
	// Genesys documents the header as base64(clientId:clientSecret), without the form encoding
	// RFC 6749 and oauth2.AuthStyleInHeader apply first (a "+" would become "%2B"), so the header
	// is set here and oauth2 adds no credentials of its own.
	c.tokens = newTokenCache(
		clientcredentials.Config{TokenURL: cfg.tokenURL, AuthStyle: oauth2.AuthStyleInParams},
		withBasicAuth(withUserAgent(cfg.httpClient, cfg.userAgent), clientID, clientSecret),
		cfg.clock, c)
	return c, nil
}

// parseHTTPURL checks a configured URL. Its errors quote the URL through redactURL: a URL refused
// for its user info or query is one that carries a secret.
func parseHTTPURL(what, s string) (*url.URL, error) {
	u, err := url.Parse(s)
	var problem string
	switch {
	case err != nil:
		// Not wrapped: url.Error quotes the URL whole.
		problem = "does not parse"
	case u.User != nil:
		problem = "holds user info; credentials go to NewClient"
	case u.RawQuery != "" || u.ForceQuery:
		problem = "has a query"
	case u.Fragment != "":
		problem = "has a fragment"
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		problem = "is not an http(s) URL with a host"
	default:
		return u, nil
	}
	return nil, fmt.Errorf("%w: %s %q %s", ErrInvalidConfig, what, clean(redactURL(s), 200), problem)
}

// withUserAgent returns a copy of hc whose requests carry ua; the oauth2 package sets none itself.
func withUserAgent(hc *http.Client, ua string) *http.Client {
	cp := *hc
	cp.Transport = newHeaderTransport(hc.Transport, "User-Agent", ua)
	return &cp
}

// withBasicAuth returns a copy of hc that sends Authorization: Basic base64(id:secret) on every
// request; it is used for the token endpoint only. It follows no redirect, so that the
// credentials never go to another address.
func withBasicAuth(hc *http.Client, id, secret string) *http.Client {
	cp := *hc
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	cp.Transport = newHeaderTransport(hc.Transport, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(id+":"+secret)))
	return &cp
}

// headerTransport sets one header on every request it passes on.
type headerTransport struct {
	base        http.RoundTripper
	name, value string
}

func newHeaderTransport(base http.RoundTripper, name, value string) headerTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	return headerTransport{base: base, name: name, value: value}
}

func (t headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(t.name, t.value)
	return t.base.RoundTrip(r)
}

// Region returns the region the client was built for.
func (c *Client) Region() Region { return c.region }

// HTTPClient returns the HTTP client the Client uses; package notifications dials WebSockets with
// it so that proxies and TLS settings apply there too. It is the one given with WithHTTPClient, or
// else the one NewClient built, which refuses new requests with an error wrapping ErrClosed once
// the Client is closed (see Close).
func (c *Client) HTTPClient() *http.Client { return c.http }

// request describes one API call.
type request struct {
	method string
	path   string // escaped path below the base URL, starting with "/"
	query  url.Values
	body   any
	// repeatable says whether sending the request again after an unclear failure is harmless.
	// GET, PUT, PATCH and DELETE are; a POST that creates something is not unless the caller says so.
	repeatable bool
	// tries, when not nil, counts the times r went out, as WithSendCount does.
	tries *int
}

// sendCountKey is the context key of WithSendCount.
type sendCountKey struct{}

// WithSendCount returns a copy of ctx with which every call of a Client adds to *n each time its
// request goes out: each time the transport has a connection for it (net/http/httptrace's
// GotConn). The transport may send a request more than once inside one http.Client.Do, and each
// copy counts: net/http's HTTP/2 transport sends it again after the peer reset its stream with
// PROTOCOL_ERROR (a proxy may, once the backend has the request), a caller's transport may retry,
// and net/http's sends it again on another connection when the kept-alive one it chose turns out
// closed (both count, though the first may never have left). See WithHTTPClient for a transport
// that does not report its connections. The token request does not count, nor a copy refused with a
// 401 that the client then sends again with a renewed token: Genesys did nothing with it. A call
// that counted nothing sent nothing, and Genesys will not carry it out. A request that is safe to
// repeat (a PUT) may go out more than once in one call, and an earlier copy may then be carried
// out after the answer to a later one. n is not synchronised: calls that run at the same time need
// their own.
func WithSendCount(ctx context.Context, n *int) context.Context {
	return context.WithValue(ctx, sendCountKey{}, n)
}

// countSends records that r went out copies more times.
func countSends(ctx context.Context, r request, copies int) {
	if copies <= 0 {
		return
	}
	if r.tries != nil {
		*r.tries += copies
	}
	if n, _ := ctx.Value(sendCountKey{}).(*int); n != nil {
		*n += copies
	}
}

func get(path string, q url.Values) request {
	return request{method: http.MethodGet, path: path, query: q, repeatable: true}
}

// do runs r with retries and decodes a successful answer into out (when out is not nil).
//
// The error it returns is classified for package retry: a 4xx that no retry can cure is marked
// Permanent; an exhausted quota carries its wait with retry.After; a request that kept failing
// with retryable errors is a *retry.Error, unmarked. All of them unwrap to the *APIError or
// *TokenError of the last attempt.
func (c *Client) do(ctx context.Context, r request, out any) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("genesys: encoding %s %s: %w", r.method, r.path, err)
		}
	}
	var last error
	err := c.retrier.Do(ctx, func(ctx context.Context) error {
		last = c.attempt(ctx, r, payload, out)
		return c.classify(r, last)
	}, retry.OnRetry(func(a retry.Attempt) {
		c.log.LogAttrs(ctx, slog.LevelWarn, "genesys: retrying request",
			slog.String("method", r.method), slog.String("path", r.path), slog.Int("attempt", a.Number),
			slogDuration("wait", a.Wait), slog.String("error", a.Err.Error()))
	}))
	if err == nil {
		return nil
	}
	var re *retry.Error
	if !errors.As(err, &re) {
		return err
	}
	switch re.Reason {
	case retry.ReasonPermanent:
		var q *quotaError
		if errors.As(re.Last, &q) {
			// Not permanent for the caller: the quota comes back. Say when.
			return retry.After(q, q.wait)
		}
		return re.Last
	default:
		return re
	}
}

// attempt sends r once, and a second time when a 401 says the token was refused: the token is then
// renewed first. It returns errors as they are; classify marks them for the retrier.
func (c *Client) attempt(ctx context.Context, r request, payload []byte, out any) error {
	for renewed := false; ; renewed = true {
		if err := c.errIfClosed(r); err != nil {
			return err
		}
		token, err := c.tokens.get(ctx)
		if err != nil {
			return err
		}
		var trace sendTrace
		status, h, body, err := c.send(ctx, r, payload, token, &trace)
		if err != nil {
			var tErr *transportError
			if errors.As(err, &tErr) && !tErr.nothingSent() {
				countSends(ctx, r, trace.copies())
			}
			return err
		}
		if status == http.StatusUnauthorized && !renewed {
			// The copy answered was refused before any work, and is sent again below: not
			// counted as sent. A copy the transport sent before it, in the same exchange, is.
			countSends(ctx, r, trace.copies()-1)
			c.log.LogAttrs(ctx, levelDebug, "genesys: token refused, renewing it",
				slog.String("method", r.method), slog.String("path", r.path))
			c.tokens.invalidate(token)
			continue
		}
		countSends(ctx, r, trace.copies())
		if status < 200 || status > 299 {
			e := parseAPIError(status, h, body, c.clock.Now())
			e.Method, e.Path = r.method, r.path
			return e
		}
		if out != nil && len(bytes.TrimSpace(body)) > 0 {
			if err := json.Unmarshal(body, out); err != nil {
				return &decodeError{method: r.method, path: r.path, err: err}
			}
			if v, ok := out.(idChecker); ok {
				if err := v.checkIDs(); err != nil {
					return &decodeError{method: r.method, path: r.path, err: err}
				}
			}
		}
		return nil
	}
}

// send performs one HTTP exchange and reads the whole answer; trace follows it through the
// transport.
func (c *Client) send(ctx context.Context, r request, payload []byte, token string, trace *sendTrace) (int, http.Header, []byte, error) {
	target := c.baseURL + r.path
	if len(r.query) > 0 {
		target += "?" + r.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace.hooks()), r.method, target, body)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("genesys: building %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := ctx.Err(); err != nil {
		// Ended before anything was sent: not a transport error, whose outcome would be unclear.
		return 0, nil, nil, err
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, ErrClosed) {
			// Refused by the transport of a closed Client before anything went out.
			return 0, nil, nil, fmt.Errorf("genesys: %s %s: %w", r.method, r.path, ErrClosed)
		}
		if cerr := ctx.Err(); cerr != nil && trace.unsent() {
			// Ended while the connection was being made (a dial, a TLS handshake, a wait for a
			// connection of the pool): the caller's cancellation, not a transport failure.
			return 0, nil, nil, fmt.Errorf("genesys: %s %s: ended before it was sent: %w", r.method, r.path, cerr)
		}
		return 0, nil, nil, &transportError{method: r.method, path: r.path, err: err,
			traced: trace.asked.Load(), connected: trace.conn.Load()}
	}
	defer resp.Body.Close()
	limit := int64(maxResponseBody)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		limit = maxErrorBody
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return 0, nil, nil, &transportError{method: r.method, path: r.path, err: err, afterHeaders: true, status: resp.StatusCode}
	}
	c.log.LogAttrs(ctx, levelDebug, "genesys: request",
		slog.String("method", r.method), slog.String("path", r.path), slog.Int("status", resp.StatusCode),
		slogDuration("took", time.Since(start)), slog.String("correlation_id", resp.Header.Get("ININ-Correlation-Id")))
	return resp.StatusCode, resp.Header, data, nil
}

// classify marks err for the retrier: which failures another attempt may cure, and for how long
// the server asked us to wait.
func (c *Client) classify(r request, err error) error {
	if err == nil {
		return nil
	}
	var (
		apiErr   *APIError
		tokenErr *TokenError
		tErr     *transportError
		dErr     *decodeError
	)
	switch {
	case errors.Is(err, ErrClosed):
		// No later attempt can go out either.
		return retry.Permanent(err)
	case errors.As(err, &apiErr):
		return c.classifyStatus(r, apiErr.Status, apiErr.RetryAfter, err)
	case errors.As(err, &tokenErr):
		// The token request is always safe to repeat: it creates nothing.
		return c.classifyStatus(request{repeatable: true}, tokenErr.Status, tokenErr.RetryAfter, err)
	case errors.As(err, &tErr):
		// A creation cancelled by the caller once it may have been sent is as unclear as one
		// that timed out: the server may carry it out all the same. One whose answer said the
		// server refused it (429 or another 4xx) before the body was cut off created nothing.
		if r.repeatable || tErr.nothingSent() || tErr.refusedCutOff() {
			return err
		}
		return retry.Permanent(fmt.Errorf("%w: %w", ErrOutcomeUnknown, err))
	case errors.As(err, &dErr):
		return retry.Permanent(err)
	default:
		// A token request that could not be exchanged, or a context that ended before the API
		// request was sent: nothing was created, so another attempt is harmless.
		return err
	}
}

func (c *Client) classifyStatus(r request, status int, wait time.Duration, err error) error {
	switch {
	case status == http.StatusTooManyRequests:
		// A 429 was refused before any work, so even a POST may be sent again.
		if wait > c.maxRetryAfter {
			return retry.Permanent(retry.After(&quotaError{wait: wait, ceiling: c.maxRetryAfter, err: err}, wait))
		}
		return retry.After(err, wait)
	case status >= 500 && status != http.StatusNotImplemented:
		if !r.repeatable {
			// Not sent again here, but the caller that decides to try again must wait as long as
			// the server asked.
			unknown := fmt.Errorf("%w: %w", ErrOutcomeUnknown, err)
			if wait > 0 {
				unknown = retry.After(unknown, wait)
			}
			return retry.Permanent(unknown)
		}
		return retry.After(err, wait)
	default:
		return retry.Permanent(err)
	}
}

// quotaError is a 429 whose Retry-After is above the client's ceiling.
type quotaError struct {
	wait, ceiling time.Duration
	err           error
}

func (q *quotaError) Error() string {
	return fmt.Sprintf("%v: the server asks to wait %v, longer than the %v this client waits for (WithMaxRetryAfter): %v",
		ErrQuotaExhausted, q.wait.Round(time.Second), q.ceiling, q.err)
}

func (q *quotaError) Unwrap() []error { return []error{ErrQuotaExhausted, q.err} }

// RetryAfter returns the wait the server asked for.
func (q *quotaError) RetryAfter() time.Duration { return q.wait }

// transportError is a failure to exchange a request and its answer.
type transportError struct {
	method, path string
	err          error
	afterHeaders bool // the answer's headers arrived, so the server did receive the request
	status       int  // with afterHeaders, the answer's status, whose body was cut off
	traced       bool // the transport's trace said it looked for a connection (GetConn)
	connected    bool // the trace said the transport had a connection for the request, or more
}

// successCutOff reports whether the answer was a success whose body was cut off: the server did
// what was asked, and only its answer is lost.
func (e *transportError) successCutOff() bool {
	return e.afterHeaders && e.status >= 200 && e.status <= 299
}

// refusedCutOff reports whether the answer was a 4xx, a 429 included, whose body was cut off:
// the server refused the request, so it did nothing.
func (e *transportError) refusedCutOff() bool {
	return e.afterHeaders && e.status >= 400 && e.status <= 499
}

func (e *transportError) Error() string {
	return fmt.Sprintf("genesys: %s %s: %v", e.method, e.path, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// nothingSent reports whether the request certainly never reached the server: the transport never
// had a connection for it. Only then is a non-repeatable request safe to send again. A trace that
// saw a connection settles it whatever the error: net/http's HTTP/2 transport sends a request again
// after a stream reset, on a new connection after a GOAWAY, so an exchange whose first copy reached
// the server can end with the failed dial of the next. Only a transport that reported no GetConn
// at all (see sendTrace) leaves it to the error: a failed dial or DNS lookup then says so.
func (e *transportError) nothingSent() bool {
	switch {
	case e.afterHeaders, e.connected:
		return false
	case e.traced:
		return true
	}
	var op *net.OpError
	if errors.As(e.err, &op) && op.Op == "dial" {
		return true
	}
	var dns *net.DNSError
	return errors.As(e.err, &dns)
}

// sendTrace follows a request through the transport with net/http/httptrace, to tell a failure
// before any of it can have gone out from one after. The hooks come on top of any trace already in
// the caller's context, which still sees every event.
//
// The line is drawn at GotConn, not at WroteHeaders: HTTP/2 writes the headers first and calls
// WroteHeaders after, and a RoundTrip cancelled in between returns without waiting for it, so a
// request whose headers reached the server could look unsent. net/http calls GotConn on the
// caller's goroutine before it hands the request to the connection. A transport that calls no
// hook (a caller's own, see WithHTTPClient) leaves every failure but a failed dial or DNS lookup
// unclear.
type sendTrace struct {
	asked atomic.Bool  // GetConn: the transport looks for a connection, and reports its steps
	conn  atomic.Bool  // GotConn or any later step: from here on the request may be on its way
	conns atomic.Int32 // GotConn calls: one for each copy the transport sent
}

func (t *sendTrace) hooks() *httptrace.ClientTrace {
	sent := func() { t.conn.Store(true) }
	return &httptrace.ClientTrace{
		GetConn: func(string) { t.asked.Store(true) },
		GotConn: func(httptrace.GotConnInfo) {
			t.conns.Add(1)
			sent()
		},
		WroteHeaders:         sent,
		WroteRequest:         func(httptrace.WroteRequestInfo) { sent() },
		GotFirstResponseByte: sent,
	}
}

// copies returns how many copies of the request the transport sent in the exchange, for one that
// may have gone out: one for each connection it had for the request, or one when it reported
// none (a transport that calls no hook, see WithHTTPClient).
func (t *sendTrace) copies() int {
	return max(int(t.conns.Load()), 1)
}

// unsent reports whether the transport said it was getting a connection for the request and never
// that it had one: then nothing of the request was written.
func (t *sendTrace) unsent() bool { return t.asked.Load() && !t.conn.Load() }

// decodeError is a successful answer whose body does not decode.
type decodeError struct {
	method, path string
	err          error
}

func (e *decodeError) Error() string {
	return fmt.Sprintf("genesys: %s %s: decoding the answer: %v", e.method, e.path, e.err)
}

func (e *decodeError) Unwrap() error { return e.err }

const levelDebug = slog.LevelDebug

func slogDuration(key string, d time.Duration) slog.Attr {
	return slog.String(key, d.Round(time.Millisecond).String())
}
