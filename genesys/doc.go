// Package genesys is a small client for the Genesys Cloud REST API endpoints fanbridge needs:
// provisioning the Amazon EventBridge source integration, listing notification topics, opening
// notification channels for the WebSocket path (package genesys/notifications), and reading the
// organization. It replaces the official SDK (thousands of generated files, a new major version
// almost every release) with the dozen calls that matter, each checked against Genesys'
// documentation.
//
// # Regions and authentication
//
// A Region is the API host of a Genesys Cloud region; the constants name every public region after
// its AWS region (USEast1 is "api.mypurecloud.com"), and ParseRegion reads "eu-west-1",
// "mypurecloud.ie", "api.mypurecloud.ie" or a URL. An AWS region name Genesys Cloud does not run
// in ("eu-north-1"), and a host without a dot, are configuration errors, not hosts to look up.
// The OAuth server is the API host with "api." replaced by "login.".
//
// NewClient authenticates with OAuth client credentials (golang.org/x/oauth2/clientcredentials):
// POST https://login.<region>/oauth/token with Authorization: Basic base64(clientId:clientSecret)
// exactly as Genesys documents it (id and secret are not form-encoded first, as RFC 6749 would
// have it) and grant_type=client_credentials. The token is cached and replaced before it expires:
// expires_in is read from the answer (Genesys lets each OAuth client choose 5 minutes to 48
// hours) and the token is renewed when 10% of its lifetime, at most 60 seconds, remains. A 401 from the API (a revoked
// or expired token) renews the token once and replays the request once. The client's rights come
// from the roles given to the OAuth client; OAuth scopes do not apply to this grant.
//
// # Provisioning the EventBridge integration
//
// EnsureEventBridgeIntegration does what Genesys' own Terraform provider does, idempotently: it
// validates the spec, checks every topic filter against GET /api/v2/notifications/availabletopics
// (an unknown one, or one not carried on EventBridge, fails with an *UnknownTopicsError naming each
// and suggesting the template when a concrete id was given), finds the amazon-eventbridge-source
// integration by name (GET /api/v2/integrations, all pages) or creates it
// (POST /api/v2/integrations), reads the config version (GET .../config/current), writes the
// config (PUT .../config/current) only when it differs, re-reading the version after a 409, and
// enables the integration (PATCH /api/v2/integrations/{id}). Nothing is written before every check
// has passed, and a second run with the same spec only reads.
//
// The partner event source name, aws.partner/genesys.com/cloud/{orgId}/{suffix}, needs the
// organization id. The provisioning endpoints do not return it, so it comes from the spec or, when
// the spec leaves it empty, from GET /api/v2/organizations/me, the documented public endpoint that
// returns the caller's organization (its "id" is the orgId). Either way it must be a UUID, and it
// is written in lower case, as sources carry it.
//
// Genesys ties the partner event source to the AWS account, region and suffix of the integration.
// fanbridge therefore never changes them in place: when an existing integration has other values,
// EnsureEventBridgeIntegration writes nothing and returns an *ImmutableChangeError naming each
// difference, unless EventBridgeSpec.Replace asks it to delete the integration and create it again
// (the AWS side must then link the new partner event source).
//
// Creating an integration is not safe to repeat blindly: if the answer to the POST is lost (a
// timeout, a reset connection, a 5xx from a gateway), the integration may exist anyway. The client
// never replays such a POST; EnsureEventBridgeIntegration sends the name in the create request and,
// after such a failure, lists the integrations by name again, after waits that grow to 30 seconds,
// and creates again only if none is there 5 minutes after the lost request failed (so at least 5
// minutes after it was sent): a gateway can answer 504 while the backend goes on and creates it
// later. Such a run can therefore take over 5 minutes (RunProvisionCommand's -timeout, 10 minutes
// by default, leaves room for it); when its context ends first, or a lookup by name fails, the
// error wraps ErrOutcomeUnknown and says to look the integration up or run again after that time.
//
// Two runs at the same time with the same spec (two replicas starting, a job started twice) can
// both find nothing and both create the integration. Provisioning still ends with one: a run
// that created one lists by name again; it deletes its own creation, and carries on with the
// other, when another run's is enabled (a run enables only the one it keeps) or has a smaller
// id, and otherwise waits for the others to be deleted by their runs or enabled by the run that
// keeps its own. Every run then returns the same integration, and EventBridgeResult.
// DuplicateDeleted tells the runs that deleted their own. A run never deletes an integration it
// did not create, which needs the integrations:integration:delete permission. A run that stops
// between creating and listing again (a crash, a kill) leaves a disabled integration: alone, the
// next run takes it over as it would any integration of the name; made while another run was
// creating its own, that run takes it over after waiting for it for a minute more than the
// WithMaxRetryAfter ceiling (4 minutes by default). Several integrations of the name that no run
// can tell apart (made by hand, or several leftovers) make a run fail with ErrAmbiguousName,
// naming their ids: delete all but one, in the admin UI or with DeleteIntegration, and run again.
//
// RunProvisionCommand wraps all this as a command line that reads the usual environment variables
// (GENESYS_REGION, GENESYS_CLIENT_ID, GENESYS_CLIENT_SECRET, GENESYS_ORGANIZATION_ID...).
//
// # Retries
//
// Requests are retried with package retry on connection errors, 429 and 5xx except 501, never on
// other 4xx. A 429 waits as long as its Retry-After says, up to a ceiling (WithMaxRetryAfter,
// default 180 seconds as in the official SDKs); a daily quota that asks for longer fails at once
// with ErrQuotaExhausted naming the wait, instead of sleeping for hours. Only requests that are
// safe to repeat are retried after an unclear failure: GET, PUT, PATCH and DELETE. A POST that
// creates something, the creation of a notification channel included (a channel created twice
// leaves one unused, which counts against MaxChannels until it expires; see CreateChannel), is
// retried only when it certainly did not reach the server (connection refused, a failure while the
// connection was being made, unless the transport had had a connection for an earlier copy of it:
// net/http's HTTP/2 transport sends a request again after a stream reset, on a new connection after
// a GOAWAY, and the hooks cannot tell a copy the server read from one it never saw, so a copy
// refused on a dead kept-alive connection or by a graceful GOAWAY, followed by a refused dial,
// also counts as unclear) or the server refused it (429, or another 4xx whose body was cut off); otherwise (a
// 5xx, a timeout, a broken connection, a context cancelled once the request had a connection) its
// error wraps ErrOutcomeUnknown, and carries the wait a 5xx's Retry-After asked for
// (retry.RetryAfter), for a caller that tries again. A context cancelled before the request had a
// connection (during the dial, the TLS handshake, or a wait for a connection of the pool) sent
// nothing, and its error is the context's (retry.ClassCanceled).
//
// The client learns whether a request had a connection from the net/http/httptrace hooks that
// net/http's transport calls (GetConn and GotConn), which it adds to any trace already in the
// request's context. With a transport of the caller's (WithHTTPClient) that calls none of them, it
// cannot tell: a failure other than a failed dial (a refused connection, say) or DNS lookup then
// counts as unclear, and a creation's error wraps ErrOutcomeUnknown. A creation answered 2xx with
// an answer that cannot be used (a channel without id or connectUri, an integration without id, or
// a body that does not decode) wraps ErrOutcomeUnknown too: Genesys created it, and provisioning
// looks the integration up by name instead of creating another.
//
// A caller that must know whether a request may still be carried out after a call returned (a
// PUT sent again after a 5xx, whose first copy may land after the answer to the second; a call
// cut short once the request had gone out) learns from WithSendCount how often the call's request
// went out, counted by the same hooks, one for each copy: the transport may itself send a request
// again inside one exchange (net/http's HTTP/2 transport does after a stream reset with
// PROTOCOL_ERROR, which a proxy may send once the backend has the request). The token request does
// not count, nor a copy refused with a 401 that the client sent again with a renewed token.
//
// # Errors
//
// A non-2xx answer is an *APIError with the status, Genesys' code, message and contextId, and the
// ININ-Correlation-Id header, which Genesys support asks for. It matches the sentinels ErrNotFound,
// ErrConflict, ErrBadRequest, ErrUnauthorized, ErrForbidden, ErrRateLimited and ErrServer with
// errors.Is; IsNotFound, IsConflict and the other helpers say the same. A failed token request is
// a *TokenError (OAuth's error and description); refused credentials match ErrUnauthorized.
//
// Errors are classified for package retry: those no retry can cure (4xx, refused credentials) are
// marked retry.Permanent; an exhausted quota carries its wait (retry.RetryAfter); a request that
// kept failing with retryable errors returns the *retry.Error, which unwraps to the last *APIError.
// Provisioning errors add ErrInvalidSpec (each bad field named), ErrUnknownTopic,
// ErrImmutableConfig and ErrAmbiguousName.
//
// The client secret and access tokens never appear in errors or logs; the text of the server's
// error answers (message, code, contextId, details) is capped and stripped of control characters
// (C1 ones included) and of the bidirectional formatting characters that make text display in
// another order than it reads. The ids of integrations and channels in Genesys' answers are
// printed, logged and put in errors as they are, so they are checked as the answer is read: an id
// longer than 128 bytes, or with a control, formatting or space character, makes the answer fail
// as one that does not decode (a creation's error then wraps ErrOutcomeUnknown: Genesys made it,
// see above). A base URL, token URL or region that NewClient or ParseRegion refuses is quoted with
// its user info, query and fragment replaced by "[redacted]", since those are where credentials
// and tokens end up in a URL.
//
// # Concurrency
//
// A Client is safe for concurrent use. Concurrent calls share one token; when it needs renewing,
// one call fetches it while the others wait. A waiting call stops waiting when its own context
// ends, returning an error that wraps the context's error, and leaves the fetch of the other
// call running.
//
// # Closing
//
// Close releases the connections a Client keeps for reuse: without it, those of the HTTP client
// NewClient built stay open, each with its socket and goroutines, for up to 90 seconds after
// their last request. Idle connections close at once, the others, over HTTP/1.1 and HTTP/2 alike,
// at the latest when the last request in flight ends (its answer's body is closed, or it fails);
// Close does not wait for it. Calls that start after Close, and the next attempt of a call
// in flight, fail with an error wrapping ErrClosed, as does any request sent afterwards with the
// HTTP client from HTTPClient that NewClient built; nothing of them goes out. A Source of package
// genesys/notifications does not close the Client it was given: close the Source first, then the
// Client. An HTTP client given with WithHTTPClient stays the caller's, and Close leaves it alone.
// Close may be called more than once, and concurrently with calls.
//
// # Testing
//
// Package genesys/genesystest is a local fake of Genesys Cloud (token endpoint, integrations,
// topics, channels and their WebSocket) with fault injection; point a Client at it with
// WithBaseURL and WithTokenURL.
package genesys
