package signature

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Verifier decides whether a request comes from a trusted sender. It sees the request headers and
// the whole body, so it serves HTTP middleware (Verify), other frameworks (VerifyRequest, or a
// direct call with the framework's headers copied into an http.Header) and non-HTTP transports
// alike.
//
// The header keys must be in canonical form, as http.Header's Set and Add write them (a server's
// request headers always are); callers that start from another map copy it with Set.
//
// Verify returns the Identity of the sender on success. On failure the error wraps one of ErrMissing,
// ErrMalformed, ErrMismatch, ErrStale, ErrFuture, ErrReplayed (all answered 401) or ErrUnavailable
// (answered 503). A Verifier must be safe for concurrent use and must not keep body or header after
// it returns.
type Verifier interface {
	Verify(ctx context.Context, header http.Header, body []byte) (Identity, error)
}

// HeaderVerifier is implemented by verifiers that decide from the headers alone: APIKey, Basic,
// Bearer and BearerFunc, and Any when all of its members are. Verify and VerifyRequest call
// VerifyHeader before reading the body, so a request with wrong or missing credentials is refused
// without its body being read or buffered; a request that passes still has its body read, within
// the limit, and handed on as usual. VerifyHeader is then the only check made: Verify is not
// called as well.
//
// Implement it on a verifier of your own only when the body plays no part in the decision:
// VerifyHeader(ctx, header) must return what Verify(ctx, header, body) returns for every body.
type HeaderVerifier interface {
	Verifier
	VerifyHeader(ctx context.Context, header http.Header) (Identity, error)
}

// A prechecker is a Verifier that needs the body and yet can refuse some requests from their
// headers alone, before the body is read: precheck returns the error Verify would return for a
// request whose headers fail (no credentials, a malformed signature header, a stale or future
// timestamp), or nil when the body is needed to decide. It claims nothing and calls nothing
// outside the process. The middleware asks it first, so that a request with no valid-looking
// credentials costs no body read.
type prechecker interface {
	precheck(ctx context.Context, header http.Header) error
}

// VerifierFunc adapts a function to a Verifier.
type VerifierFunc func(ctx context.Context, header http.Header, body []byte) (Identity, error)

// Verify calls f(ctx, header, body).
func (f VerifierFunc) Verify(ctx context.Context, header http.Header, body []byte) (Identity, error) {
	return f(ctx, header, body)
}

// Challenger is implemented by verifiers whose scheme has an HTTP challenge (Basic, Bearer). The
// middleware sends each value as a WWW-Authenticate header on every 401 it answers, whatever the
// reason, so the headers reveal nothing either.
type Challenger interface {
	Challenge() []string
}

// Scheme names carried in Identity.Scheme and in the "scheme" metric attribute.
const (
	SchemeAPIKey           = "api-key"
	SchemeBasic            = "basic"
	SchemeBearer           = "bearer"
	SchemeHMAC             = "hmac"
	SchemeGitHub           = "github"
	SchemeOpenMessaging    = "open-messaging"
	SchemeStandardWebhooks = "standard-webhooks"
)

// Identity says who was verified, in terms that are not secret: which configured key matched (by
// index), which user, which message. Verify puts it in the request context; read it with
// IdentityFrom.
type Identity struct {
	// Scheme is the verifier's scheme, one of the Scheme constants (or a custom HMACScheme.Name).
	Scheme string
	// Key is the index, in the order given to the constructor, of the key, token or secret that
	// matched; -1 where no list applies (BearerFunc).
	Key int
	// User is the Basic user name.
	User string
	// MessageID is the sender's message id (Standard Webhooks webhook-id), the same on each retry
	// of a message. eventbridge's Handler takes the ID of an event whose body carries none from
	// it, so that a retry is deduplicated and two messages with equal bodies are not.
	MessageID string
	// Timestamp is the signed send time (Standard Webhooks webhook-timestamp).
	Timestamp time.Time

	// release undoes a replay-cache claim; nil when nothing was claimed.
	release func(ctx context.Context) error
	// settle ends the claim's time in flight once the request is answered (see trackedVerifier);
	// nil when nothing tracks it.
	settle func()
}

// trackedVerifier is a Verifier that claims message ids in a replay cache and keeps, while the
// middleware handles a request, the claim "in flight": a copy of the request that arrives then is
// refused as unavailable (503, retried) rather than as a replay (401, final), since the first may
// still fail and release the claim. verifyTracked is Verify for the middleware, which calls the
// Identity's settle once the request is answered; callers that would not (VerifyRequest, a
// direct Verify) use Verify, which tracks nothing.
type trackedVerifier interface {
	verifyTracked(ctx context.Context, header http.Header, body []byte) (Identity, error)
}

// PendingClaims is the set of replay-cache claims whose requests are still being handled, for a
// ReplayCache to share among the verifiers that use it (see ReplayCache). The zero value is
// empty and ready; it is safe for concurrent use. It has no methods of its own: the verifiers
// alone mark and settle claims in it.
type PendingClaims struct {
	mu   sync.Mutex
	keys map[string]struct{}
}

// inFlight is the set a verifier marks its claims in.
type inFlight = PendingClaims

// add marks key in flight, or reports false when it is already.
func (f *inFlight) add(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.keys[key]; ok {
		return false
	}
	if f.keys == nil {
		f.keys = make(map[string]struct{})
	}
	f.keys[key] = struct{}{}
	return true
}

func (f *inFlight) remove(key string) {
	f.mu.Lock()
	delete(f.keys, key)
	f.mu.Unlock()
}

// Release forgets the message id this Identity claimed in a replay cache, so that the sender's next
// attempt of the same message verifies again. Call it when the message was verified but then not
// accepted (the middleware does so by itself for every answer outside 2xx). It does nothing when no
// replay cache was involved.
func (id Identity) Release(ctx context.Context) error {
	if id.release == nil {
		return nil
	}
	return id.release(ctx)
}

type identityKey struct{}

// WithIdentity returns a copy of ctx carrying id.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, &id)
}

// IdentityFrom returns the Identity that Verify stored in ctx, and false when there is none.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(*Identity)
	if !ok {
		return Identity{}, false
	}
	return *id, true
}

// Any returns a Verifier that accepts a request when one of vs accepts it, trying them in order
// and stopping at the first success; use it when several senders post to one path.
//
// When all fail, the error wraps ErrMissing if every verifier reported ErrMissing (the request
// carries none of the expected credentials); otherwise it joins (errors.Join) the failures of the
// verifiers that did find their credentials, so errors.Is finds each of their sentinels, and Reason
// picks the most telling one (unavailable before replayed, stale, future, mismatch, malformed).
// Any's challenges are those of its members, each sent once however many members share it (so
// that Any of two Basic verifiers, during a password rotation, answers as one Basic does). Any
// stops early only at a success: a request that fails is checked by every member, so timing tells
// apart only a success (which the sender learns anyway) and which member accepted it. Any is a
// HeaderVerifier when every member is one (Any of APIKey and Basic, say), so that the body is read
// only after the credentials passed; with a member that needs the body, the body is read first.
func Any(vs ...Verifier) (Verifier, error) {
	if len(vs) == 0 {
		return nil, errors.New("signature: Any needs at least one verifier")
	}
	for i, v := range vs {
		if v == nil {
			return nil, fmt.Errorf("signature: Any: verifier %d is nil", i)
		}
	}
	a := &anyVerifier{vs: append([]Verifier(nil), vs...)}
	headerOnly := true
	for _, v := range vs {
		if c, ok := v.(Challenger); ok {
			for _, ch := range c.Challenge() {
				if !slices.Contains(a.challenges, ch) {
					a.challenges = append(a.challenges, ch)
				}
			}
		}
		if _, ok := v.(HeaderVerifier); !ok {
			headerOnly = false
		}
	}
	if headerOnly {
		return &anyHeaderVerifier{a}, nil
	}
	return a, nil
}

type anyVerifier struct {
	vs         []Verifier
	challenges []string
}

func (a *anyVerifier) Challenge() []string { return a.challenges }

func (a *anyVerifier) Verify(ctx context.Context, header http.Header, body []byte) (Identity, error) {
	return a.first(func(v Verifier) (Identity, error) { return v.Verify(ctx, header, body) })
}

func (a *anyVerifier) verifyTracked(ctx context.Context, header http.Header, body []byte) (Identity, error) {
	return a.first(func(v Verifier) (Identity, error) {
		if t, ok := v.(trackedVerifier); ok {
			return t.verifyTracked(ctx, header, body)
		}
		return v.Verify(ctx, header, body)
	})
}

// first returns the Identity of the first member that check accepts, or the combined failure.
func (a *anyVerifier) first(check func(Verifier) (Identity, error)) (Identity, error) {
	var failed []error
	for _, v := range a.vs {
		id, err := check(v)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, ErrMissing) {
			failed = append(failed, err)
		}
	}
	switch len(failed) {
	case 0:
		return Identity{}, fmt.Errorf("%w: none of %d verifiers found its credentials", ErrMissing, len(a.vs))
	case 1:
		return Identity{}, failed[0]
	default:
		return Identity{}, errors.Join(failed...)
	}
}

// precheck implements prechecker: the request is refused from its headers when every member
// refuses it from its headers, a header-only member included (at no more cost than its Verify, and
// with nothing claimed). A member that cannot tell without the body, or a header-only one that
// calls out (BearerFunc), lets the body be read.
func (a *anyVerifier) precheck(ctx context.Context, header http.Header) error {
	_, err := a.first(func(v Verifier) (Identity, error) {
		switch v := v.(type) {
		case prechecker:
			return Identity{}, v.precheck(ctx, header)
		case *apiKeyVerifier, *basicVerifier, *bearerVerifier:
			return v.(HeaderVerifier).VerifyHeader(ctx, header)
		case *bearerFuncVerifier:
			return Identity{}, v.checkToken(header)
		}
		return Identity{}, nil
	})
	return err
}

// anyHeaderVerifier is Any of verifiers that all decide from the headers, so it does too.
type anyHeaderVerifier struct{ *anyVerifier }

func (a *anyHeaderVerifier) VerifyHeader(ctx context.Context, header http.Header) (Identity, error) {
	return a.first(func(v Verifier) (Identity, error) { return v.(HeaderVerifier).VerifyHeader(ctx, header) })
}

// Must returns v, or panics when err is not nil. It suits verifiers built from constants at
// program start, e.g. Must(GitHub(secret)).
func Must(v Verifier, err error) Verifier {
	if err != nil {
		panic(err)
	}
	return v
}
