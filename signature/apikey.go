package signature

import (
	"context"
	"fmt"
	"net/http"
)

// APIKey returns a Verifier for a static key in a header of any name: the "API key" authorization
// of an Amazon EventBridge API destination Connection, where the Connection names the header and its
// value.
//
// Several keys may be active at once for rotation: add the new key, switch the Connection, then
// remove the old key. Every request is compared against all keys in constant time (see the package
// documentation), and Identity.Key tells which one matched.
//
// APIKey fails when header is not a valid field name or is Host or Transfer-Encoding (net/http
// takes those out of Request.Header), or when a key is empty, repeated, padded with whitespace or
// holds a control character (no header could carry it).
func APIKey(header string, keys ...string) (Verifier, error) {
	canon, err := checkHeaderName(header)
	if err != nil {
		return nil, err
	}
	if err := checkSecrets("API key", keys); err != nil {
		return nil, err
	}
	if err := checkSendable("API key", keys, 0); err != nil {
		return nil, err
	}
	v := &apiKeyVerifier{header: canon, keys: make(digestSet, len(keys))}
	for i, k := range keys {
		v.keys[i] = digestOf(k)
	}
	return v, nil
}

type apiKeyVerifier struct {
	header string
	keys   digestSet
}

func (v *apiKeyVerifier) Verify(_ context.Context, h http.Header, _ []byte) (Identity, error) {
	val, err := singleValue(h, v.header)
	if err != nil {
		return Identity{}, err
	}
	d := digestOf(val)
	i := v.keys.match(&d)
	if i < 0 {
		return Identity{}, fmt.Errorf("%w: %s matches no API key", ErrMismatch, v.header)
	}
	return Identity{Scheme: SchemeAPIKey, Key: i}, nil
}

// VerifyHeader implements HeaderVerifier: Verify never looks at the body.
func (v *apiKeyVerifier) VerifyHeader(ctx context.Context, h http.Header) (Identity, error) {
	return v.Verify(ctx, h, nil)
}
