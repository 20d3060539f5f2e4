// Package signature checks who sent an HTTP request before fanbridge takes its event: static API
// keys, Basic and bearer credentials, HMAC signatures of the body, and Standard Webhooks signatures
// (symmetric v1 and ed25519 v1a).
//
// Verify is the middleware: it reads the body once (bounded), asks a Verifier, and passes the
// request on with the body intact, or answers the sender itself. Verifiers that decide from the
// headers alone (APIKey, Basic, Bearer, BearerFunc) are asked before the body is read.
//
//	v, err := signature.APIKey("X-Api-Key", os.Getenv("EVENTBRIDGE_API_KEY"))
//	if err != nil { ... }
//	mux.Handle("POST /events", signature.Verify(v, signature.WithLogger(log))(eventsHandler))
//
// # Which verifier for which sender
//
//	sender                                              verifier
//	Amazon EventBridge API destination, API key auth     APIKey(header, keys...)   (any header name)
//	Amazon EventBridge API destination, Basic auth       Basic(users)
//	Amazon EventBridge API destination, OAuth client     BearerFunc(validate)      (introspect or check the JWT)
//	  credentials (or a static bearer token)             Bearer(tokens...)
//	Genesys Cloud Open Messaging outbound webhooks       OpenMessaging(secrets...) (sha256=<base64>)
//	GitHub webhooks                                      GitHub(secrets...)        (sha256=<hex>)
//	Standard Webhooks and Svix senders                   StandardWebhooks(keys, opts...)
//	any other "HMAC of the body in a header" sender      HMAC(HMACScheme{...}, secrets...)
//	several of these on one path                         Any(verifiers...)
//
// AWS never signs what an API destination posts: the Connection's credentials are all there is, so
// use APIKey, Basic or Bearer there. Genesys Cloud itself signs only Open Messaging webhooks (base64,
// although the header name and prefix are GitHub's, whose signature is hex) and AudioHook. The
// X-Genesys-Event-Signature header that some tutorials describe is not sent by Genesys; a signing
// proxy of your own may add it, and HMAC(HMACScheme{Header: "X-Genesys-Event-Signature", Encoding:
// Hex}, secret) verifies it.
//
// APIKey, Bearer, GitHub, OpenMessaging, HMAC and StandardWebhooks take several keys at once, so
// keys rotate without downtime: add the new one, switch the sender, remove the old one.
// Identity.Key tells which one matched. Basic holds one password per user, while an EventBridge
// Connection changes its password under the same user name: during the switch, verify with
// Any(old, next) of two Basic verifiers, one holding the old password and one the new (see Basic).
// BearerFunc rotates as its validator does.
//
// Each HMAC scheme has a signer for clients and tests: SignHMAC, SignHMACRequest, SignGitHub,
// SignOpenMessaging, SignStandardWebhooks and SignStandardWebhooksRequest (v1 with a "whsec_" secret,
// v1a with a "whsk_" signing key); NewStandardWebhooksSecret and NewStandardWebhooksKeyPair make keys.
//
// # HTTP answers
//
//	situation                                              status  body
//	verified                                               (next handler answers)
//	body over the limit (default 260 KiB)                  413     {"error":"request body too large"}
//	body unreadable (client gone, short body)              400     {"error":"cannot read request body"}
//	credentials missing                                    401     {"error":"unauthorized"}
//	malformed header, header sent twice, wrong key or      401     {"error":"unauthorized"}
//	  signature, stale or future timestamp, replayed id
//	a replay cache or token validator failed               503     {"error":"verification unavailable, retry later"}, Retry-After: 1
//	a copy of a signed request still being handled         503     the same
//
// All 401 answers of a verifier are the same, status, headers and body, whatever the reason: a
// caller probing the endpoint learns nothing about which part was wrong. (A HeaderVerifier's 401
// comes before the body is read; when a body was announced, an HTTP/1.x connection closes after
// it, the server reading the rest of the body for two seconds at most, and an HTTP/2 stream is
// reset alone. The two seconds need the server's ResponseWriter to be reachable through Unwrap:
// behind http.TimeoutHandler only the server's ReadTimeout bounds them.) Basic
// and Bearer verifiers add their WWW-Authenticate challenge to every 401. The reason goes only to
// the logger (WithLogger), to the metrics (WithMeterProvider), to WithOnReject, and to Go callers
// as the error.
//
// # The body
//
// The next handler gets r.Body as a *Body over exactly the bytes that were verified, and
// r.ContentLength set to their length. Body has a Bytes method returning the whole body without a
// copy; handlers in other packages find it with a type assertion on that method alone (the
// eventbridge Handler does), or call BodyBytes. The bytes are never reused by this package, so
// handlers may keep them. A body larger than the limit is refused from its Content-Length before
// it is read. When Content-Length is known the body ends up in one slice of exactly that size, but
// memory is not allocated from the claim: a body of up to 16 KiB is read straight into its slice,
// and a larger one is collected in pooled 16 KiB chunks as it arrives and copied into its slice
// once complete, so a client that announces a large body and sends little holds little memory.
// A body without Content-Length (chunked) is collected the same way, up to its end or one byte
// past the limit, and copied once into a slice of its size.
//
// The order of the checks is: an announced size over the limit (413); then, for a HeaderVerifier
// (APIKey, Basic, Bearer, BearerFunc, or Any of only those), the credentials (401, the body left
// unread and the connection closed after the answer); for the HMAC and Standard Webhooks
// verifiers, and Any of them and header verifiers, what the headers alone can refuse (401, the body
// left unread likewise): a missing or repeated signature header, one that does not decode, a
// webhook-id or timestamp that is malformed, stale or in the future; then reading the body (413,
// 400); then the signature over headers and body (401). A request with no credentials, or with
// credentials that cannot be right, thus costs no body read. Any lets the body be read as soon as
// one member cannot refuse the request from its headers (a BearerFunc whose token is present, a
// Verifier of your own). A verifier of your own that needs no body opts in to the early check by
// implementing HeaderVerifier.
//
// Outside net/http middleware, call VerifyRequest (reads, verifies, leaves a re-readable body) or a
// Verifier's Verify method directly with the headers and body your framework gives you.
//
// # Standard Webhooks
//
// StandardWebhooks reads webhook-id, webhook-timestamp and webhook-signature (or svix-id,
// svix-timestamp and svix-signature when none of the former is present; WithSvixHeaders(false) turns
// that off). The signed content is "<id>.<timestamp>.<body>"; the signature header lists
// space-separated "v1,<base64>" (HMAC-SHA256 keyed with the base64-decoded "whsec_" secret) and
// "v1a,<base64>" (ed25519 under a "whpk_" public key) entries; one match with one key suffices.
// Of the v1a entries, only the first three are checked (see Security).
// Keys must carry their prefix: a bare base64 value is refused, because a public key given without
// "whpk_" would otherwise be taken for an HMAC secret, and whoever knows the public key could sign.
// The timestamp must lie within the tolerance of the clock in both directions (WithTolerance,
// default 5 minutes; WithClock for tests).
//
// With WithReplayCache, a verified webhook-id is remembered with its webhook-timestamp until that
// timestamp plus the tolerance, and a second request with both is refused (ErrReplayed): a
// captured request cannot change its timestamp without breaking the signature. A sender's retry of
// the same message is signed anew with a new timestamp, so it verifies, and the dispatcher's
// deduplication by event ID acknowledges it without delivering it twice. Only ids whose signature
// verified are stored, so forged requests cannot fill the cache. MemoryReplayCache is bounded: when full it
// evicts the id closest to expiry, which could then be replayed until that expiry; size it above
// the messages accepted within twice the tolerance. Several instances behind a load balancer need
// a shared ReplayCache (the interface is two methods). Replay protection rests on the timestamp:
// beyond the tolerance a request is stale anyway.
//
// # Delivery semantics
//
// A rejection (401, 413, 400) is final for the sender: Amazon EventBridge does not retry other 4xx.
// An ErrUnavailable (503 with Retry-After) makes it retry. When the next handler answers outside
// 2xx, or panics, after a replay-cache claim, Verify releases the claim, so that the very same
// request, sent again, verifies rather than being refused as a replay; only an accepted message
// keeps its claim. A copy of the request that comes while the first is still being handled (a
// sender's client that gave up waiting and resent it byte for byte) is
// answered 503 with Retry-After, not 401: the first may yet fail, and the copy's retry then
// verifies; once the first is accepted, a copy is a replay. This holds within one process, for
// every verifier over one MemoryReplayCache (a reloaded configuration's too; see ReplayCache); a
// copy that reaches another instance sharing a cache while the first is handled is refused as a
// replay. A handler that returns without writing has answered 200 and keeps it. A caller
// of VerifyRequest or Verifier.Verify does the same with Identity.Release.
//
// # Security
//
//   - Constant time. Keys, tokens, users and passwords are compared as SHA-256 digests with
//     crypto/subtle, so every comparison has the same length; HMAC signatures are compared with
//     hmac.Equal. Every configured secret (API keys, tokens, users, HMAC and Standard Webhooks
//     secrets) is compared on every request, with no early exit, so timing reveals neither which
//     secret matched nor whether the user name existed. Standard Webhooks public keys (v1a) are
//     tried only when no secret matched, and in turn until one verifies: they are not secret.
//   - No oracle. One 401 answer for every failure, see above.
//   - Memory before trust. Nothing large is allocated from the client's Content-Length: the memory
//     held for a body follows the bytes that arrive (in 16 KiB steps), and header-only credentials
//     are checked before the body is read at all, so connections that announce large bodies they
//     never send cost little.
//   - Strict parsing. A credential header sent twice is malformed, not merged. Hex and base64 are
//     never guessed: the scheme says which. Signatures of the wrong length are malformed. A
//     webhook-id over 256 bytes or containing "." (which would make the signed content ambiguous)
//     is malformed, and so is a webhook-signature of more than 16 entries.
//   - Bounded work before trust. A Standard Webhooks request, forged or not, costs at most one
//     HMAC-SHA256 per "whsec_" secret and, when no v1 entry matched, at most three ed25519
//     verifications per "whpk_" public key: only the first three v1a entries are checked, each
//     against the public keys in turn until one verifies (a sender rotating keys sends one entry
//     per key it holds, two during a rotation). Each of these hashes the whole signed content, so
//     a check costs more the larger the body, up to the body limit (WithMaxBodyBytes): with P
//     public keys, a forged request costs at most 3×P ed25519 verifications of a body at that
//     limit. The 16-entry limit bounds parsing only.
//   - Bad configuration fails in the constructor: empty or repeated keys, unknown encodings, Standard
//     Webhooks secrets shorter than the specification's 24 bytes, Standard Webhooks keys without
//     their whsec_ or whpk_ prefix, a signing key given to a receiver. The error names a key by its
//     index, never by its value.
//   - Logs carry the reason, method, path (cut to 256 bytes, its length noted) and remote
//     address, and on success the scheme, key index, user name and message id. Never a header value, key, signature, token or body byte. Errors
//     returned by a BearerFunc validator are logged as they are, so they must not contain the token.
//
// # Errors
//
// A Verifier's error wraps one of ErrMissing, ErrMalformed, ErrMismatch, ErrStale, ErrFuture,
// ErrReplayed or ErrUnavailable; reading the body can fail with ErrTooLarge or ErrUnreadable (with
// a HeaderVerifier, only once the credentials passed, unless Content-Length was over the limit).
// Test them with errors.Is, or map any error to a short label with Reason (the "reason" of logs and
// metrics). Any joins the failures of its members (see Any). Constructors return plain errors
// describing the configuration problem; Verify panics on a configuration error, because it has no
// error result and a server must not start misconfigured.
//
// # Metrics
//
// With WithMeterProvider, Verify counts fanbridge.signature.verified (attribute "scheme"; a
// custom verifier's schemes past the 64th are counted as "other") and
// fanbridge.signature.rejected (attribute "reason"). WithMetricAttributes adds attributes of your
// own to both, to tell apart several middlewares sharing one MeterProvider. Without
// WithMeterProvider, no metric code runs.
//
// # Concurrency
//
// Verifiers, the middleware and MemoryReplayCache are safe for concurrent use and immutable after
// construction. HMAC states are pooled per key, so concurrent requests never share one.
package signature
