package signature

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

var bearerChallenge = []string{`Bearer realm="fanbridge"`}

// Bearer returns a Verifier for static bearer tokens (RFC 6750): "Authorization: Bearer <token>".
// Several tokens may be active at once for rotation; each request is compared against all of them
// in constant time, and Identity.Key tells which one matched.
//
// For tokens issued by an authorization server (the OAuth client-credentials authorization of an
// Amazon EventBridge API destination Connection) use BearerFunc.
//
// Bearer fails when a token is empty, repeated, padded with whitespace, holds a control character
// or is longer than 4096 bytes (the most the verifier reads): no request could present it.
func Bearer(tokens ...string) (Verifier, error) {
	if err := checkSecrets("bearer token", tokens); err != nil {
		return nil, err
	}
	if err := checkSendable("bearer token", tokens, maxCredentials); err != nil {
		return nil, err
	}
	v := &bearerVerifier{tokens: make(digestSet, len(tokens))}
	for i, t := range tokens {
		v.tokens[i] = digestOf(t)
	}
	return v, nil
}

type bearerVerifier struct{ tokens digestSet }

func (v *bearerVerifier) Challenge() []string { return bearerChallenge }

func (v *bearerVerifier) Verify(_ context.Context, h http.Header, _ []byte) (Identity, error) {
	tok, err := authorization(h, "Bearer")
	if err != nil {
		return Identity{}, err
	}
	d := digestOf(tok)
	i := v.tokens.match(&d)
	if i < 0 {
		return Identity{}, fmt.Errorf("%w: bearer token matches no token", ErrMismatch)
	}
	return Identity{Scheme: SchemeBearer, Key: i}, nil
}

// VerifyHeader implements HeaderVerifier: Verify never looks at the body.
func (v *bearerVerifier) VerifyHeader(ctx context.Context, h http.Header) (Identity, error) {
	return v.Verify(ctx, h, nil)
}

// BearerFunc returns a Verifier that hands each bearer token to validate: for tokens issued by an
// authorization server, checked by introspection or as a signed JWT. The token has the token68
// syntax and is at most 4096 bytes before validate sees it.
//
// validate returns nil to accept. To say "cannot tell now" (the authorization server is down) it
// returns an error wrapping ErrUnavailable, and the middleware answers 503 so the sender retries;
// a cancelled or expired ctx counts the same. Any other error rejects the request (401) and is
// wrapped together with ErrMismatch; it may reach the logger, so it must not contain the token.
//
// Identity.Key is -1. BearerFunc fails when validate is nil.
func BearerFunc(validate func(ctx context.Context, token string) error) (Verifier, error) {
	if validate == nil {
		return nil, errors.New("signature: BearerFunc needs a validation function")
	}
	return &bearerFuncVerifier{validate: validate}, nil
}

type bearerFuncVerifier struct {
	validate func(ctx context.Context, token string) error
}

func (v *bearerFuncVerifier) Challenge() []string { return bearerChallenge }

func (v *bearerFuncVerifier) Verify(ctx context.Context, h http.Header, _ []byte) (Identity, error) {
	tok, err := bearerToken(h)
	if err != nil {
		return Identity{}, err
	}
	if err := v.validate(ctx, tok); err != nil {
		if errors.Is(err, ErrUnavailable) {
			return Identity{}, err
		}
		if ctx.Err() != nil {
			return Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		return Identity{}, fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return Identity{Scheme: SchemeBearer, Key: -1}, nil
}

// bearerToken returns the request's bearer token, once it is there and token68.
func bearerToken(h http.Header) (string, error) {
	tok, err := authorization(h, "Bearer")
	if err != nil {
		return "", err
	}
	if !isToken68(tok) {
		return "", fmt.Errorf("%w: bearer token is not token68", ErrMalformed)
	}
	return tok, nil
}

// checkToken is what Verify refuses before it calls the validator: no token, or one that is not
// token68. Any uses it (see anyVerifier.precheck).
func (v *bearerFuncVerifier) checkToken(h http.Header) error {
	_, err := bearerToken(h)
	return err
}

// VerifyHeader implements HeaderVerifier: Verify never looks at the body.
func (v *bearerFuncVerifier) VerifyHeader(ctx context.Context, h http.Header) (Identity, error) {
	return v.Verify(ctx, h, nil)
}
