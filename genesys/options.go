package genesys

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/fanbridge/fanbridge/retry"
)

// Option configures a Client.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// DefaultMaxRetryAfter is the longest Retry-After the client waits for by default; it is the
// ceiling the official Genesys SDKs use.
const DefaultMaxRetryAfter = 180 * time.Second

// DefaultUserAgent is the User-Agent header sent by default.
const DefaultUserAgent = "fanbridge-genesys/1"

// DefaultRetryPolicy is the retry policy of a Client built without WithRetryPolicy.
var DefaultRetryPolicy = retry.Policy{
	InitialInterval: 500 * time.Millisecond,
	Multiplier:      2,
	MaxInterval:     30 * time.Second,
	MaxAttempts:     5,
	AttemptTimeout:  60 * time.Second,
}

type config struct {
	httpClient    *http.Client
	logger        *slog.Logger
	policy        retry.Policy
	maxRetryAfter time.Duration
	clock         retry.Clock
	baseURL       string
	tokenURL      string
	userAgent     string
}

// WithHTTPClient sets the HTTP client used for API calls, token requests and (in package
// notifications) WebSocket dials. Its Timeout, if any, bounds each attempt. Its transport should
// call the net/http/httptrace hooks GetConn and GotConn of the request's context, as net/http's
// does, also when it wraps another, and GotConn for every copy of a request it sends: without them
// the client cannot tell a creation that failed before it had a connection, which it may send
// again, from one that may have reached Genesys (see ErrOutcomeUnknown), and cannot count the
// copies that went out (see WithSendCount). A transport that calls neither hook is counted as
// sending each request it is given once, unless it fails with a dial or DNS error, which counts
// as nothing sent; such a transport must not send a request again itself, since WithSendCount
// would not count the copies. The client stays the caller's: Client.Close neither closes its
// connections nor stops it, and its idle connections are the caller's to close
// (http.Client.CloseIdleConnections). The default is a client with its own clone of
// http.DefaultTransport and no overall timeout, whose connections Client.Close releases; attempts
// are bounded by the retry policy's AttemptTimeout.
func WithHTTPClient(c *http.Client) Option {
	return optionFunc(func(cfg *config) { cfg.httpClient = c })
}

// WithLogger sets the logger for request outcomes, retries and token refreshes. Secrets, tokens and
// bodies are never logged. The default is a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return optionFunc(func(cfg *config) { cfg.logger = l })
}

// WithRetryPolicy sets how requests are retried on connection errors, 429 and 5xx (except 501).
// Its MaxRetryAfter is replaced by the WithMaxRetryAfter ceiling. The default is
// DefaultRetryPolicy: 5 attempts, 500ms doubling to at most 30s with full jitter, 60s per attempt.
func WithRetryPolicy(p retry.Policy) Option {
	return optionFunc(func(cfg *config) { cfg.policy = p })
}

// WithMaxRetryAfter sets the longest Retry-After the client is willing to wait for. A 429 asking
// for longer (a daily quota can ask for hours) fails at once with an error wrapping
// ErrQuotaExhausted that names the wait. The default is DefaultMaxRetryAfter (180s).
func WithMaxRetryAfter(d time.Duration) Option {
	return optionFunc(func(cfg *config) { cfg.maxRetryAfter = d })
}

// WithClock sets the clock used for retry waits and token lifetimes; tests pass the fake clock of
// package retry/retrytest. The default is retry.SystemClock.
func WithClock(c retry.Clock) Option {
	return optionFunc(func(cfg *config) { cfg.clock = c })
}

// WithBaseURL sets the base URL of the REST API, such as "https://api.mypurecloud.com" or the URL
// of a test server (http is allowed), without user info, query or fragment. The default is
// "https://" plus the region's API host.
func WithBaseURL(u string) Option {
	return optionFunc(func(cfg *config) { cfg.baseURL = u })
}

// WithTokenURL sets the OAuth token endpoint, an http(s) URL without user info, query or fragment
// (the credentials given to NewClient are sent in the Authorization header). It is required for a
// region whose host does not start with "api.". The default is "https://" plus the region's login
// host plus "/oauth/token".
func WithTokenURL(u string) Option {
	return optionFunc(func(cfg *config) { cfg.tokenURL = u })
}

// WithUserAgent sets the User-Agent header of every request. The default is DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return optionFunc(func(cfg *config) { cfg.userAgent = ua })
}
