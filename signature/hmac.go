package signature

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"sync"
)

// Encoding is how a signature header writes the MAC bytes.
type Encoding int

// Encodings of a signature header. The zero Encoding is invalid, so that a scheme always says which
// one it uses: hex and base64 are easily confused, and Genesys and GitHub use the same header name
// with different encodings.
const (
	// Hex is hexadecimal; verification accepts upper and lower case, signing writes lower case.
	Hex Encoding = iota + 1
	// Base64 is the standard alphabet (RFC 4648 section 4); verification accepts it with or without
	// padding, signing writes it padded.
	Base64
	// Base64URL is the URL-safe alphabet (RFC 4648 section 5); verification accepts it with or
	// without padding, signing writes it padded.
	Base64URL
)

func (e Encoding) String() string {
	switch e {
	case Hex:
		return "hex"
	case Base64:
		return "base64"
	case Base64URL:
		return "base64url"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// Hash is the digest inside the HMAC.
type Hash int

// Hashes an HMACScheme may use. The zero Hash is SHA256.
const (
	SHA256 Hash = iota
	// SHA1 exists for legacy senders only (GitHub's X-Hub-Signature).
	SHA1
	SHA512
)

func (h Hash) new() (func() hash.Hash, int, error) {
	switch h {
	case SHA256:
		return sha256.New, sha256.Size, nil
	case SHA1:
		return sha1.New, sha1.Size, nil
	case SHA512:
		return sha512.New, sha512.Size, nil
	}
	return nil, 0, fmt.Errorf("signature: unknown hash %d", int(h))
}

// HMACScheme describes a signature header carrying an HMAC of the raw body:
//
//	<Header>: <Prefix><Encoding(HMAC-<Hash>(secret, body))>
//
// The same value serves HMAC (to verify) and SignHMAC (to sign).
type HMACScheme struct {
	// Name is reported as Identity.Scheme and in metrics. The default is "hmac".
	Name string
	// Header carries the signature, e.g. "X-Hub-Signature-256". Required.
	Header string
	// Encoding of the MAC bytes. Required.
	Encoding Encoding
	// Prefix precedes the encoded MAC, e.g. "sha256=". It is matched exactly. The default is none.
	Prefix string
	// Hash inside the HMAC. The default is SHA256.
	Hash Hash
}

// GitHubScheme is GitHub's webhook signature: "X-Hub-Signature-256: sha256=<hex HMAC-SHA256>".
// Do not modify it; copy it.
var GitHubScheme = HMACScheme{
	Name:     SchemeGitHub,
	Header:   "X-Hub-Signature-256",
	Encoding: Hex,
	Prefix:   "sha256=",
}

// OpenMessagingScheme is the signature of Genesys Cloud Open Messaging outbound webhooks:
// "X-Hub-Signature-256: sha256=<base64 HMAC-SHA256>". Same header and prefix as GitHub, but base64,
// not hex. Do not modify it; copy it.
var OpenMessagingScheme = HMACScheme{
	Name:     SchemeOpenMessaging,
	Header:   "X-Hub-Signature-256",
	Encoding: Base64,
	Prefix:   "sha256=",
}

// compiled is a validated HMACScheme.
type compiled struct {
	name     string
	header   string
	prefix   string
	encoding Encoding
	newHash  func() hash.Hash
	size     int
}

func (s HMACScheme) compile() (compiled, error) {
	c := compiled{name: s.Name, prefix: s.Prefix, encoding: s.Encoding}
	if c.name == "" {
		c.name = SchemeHMAC
	}
	var err error
	if c.header, err = checkHeaderName(s.Header); err != nil {
		return c, err
	}
	switch s.Encoding {
	case Hex, Base64, Base64URL:
	default:
		return c, fmt.Errorf("signature: HMAC scheme %s: encoding must be Hex, Base64 or Base64URL", c.header)
	}
	for i := 0; i < len(s.Prefix); i++ {
		if s.Prefix[i] <= ' ' || s.Prefix[i] >= 0x7f {
			return c, fmt.Errorf("signature: HMAC scheme %s: prefix %q must be visible ASCII", c.header, s.Prefix)
		}
	}
	if c.newHash, c.size, err = s.Hash.new(); err != nil {
		return c, err
	}
	return c, nil
}

// HMAC returns a Verifier for an HMAC of the body in one header, as described by s. Several secrets
// may be active at once for rotation; the signature is checked against each of them (all are
// computed, none skipped) and Identity.Key tells which one matched.
//
// Use it for any sender that signs this way, for example the hex header X-Genesys-Event-Signature
// that some tutorials describe (Genesys Cloud itself does not send it; a signing proxy may):
//
//	signature.HMAC(signature.HMACScheme{Header: "X-Genesys-Event-Signature", Encoding: signature.Hex}, secret)
//
// HMAC fails when the scheme is incomplete or invalid, or a secret is empty or repeated.
func HMAC(s HMACScheme, secrets ...string) (Verifier, error) {
	c, err := s.compile()
	if err != nil {
		return nil, err
	}
	if len(secrets) == 0 {
		return nil, errors.New("signature: HMAC needs at least one secret")
	}
	v := &hmacVerifier{scheme: c, keys: make([]*macPool, len(secrets))}
	seen := make(map[string]int, len(secrets))
	for i, sec := range secrets {
		if sec == "" {
			return nil, fmt.Errorf("signature: HMAC secret %d is empty", i)
		}
		if j, dup := seen[sec]; dup {
			return nil, fmt.Errorf("signature: HMAC secret %d repeats secret %d", i, j)
		}
		seen[sec] = i
		v.keys[i] = newMACPool(c.newHash, []byte(sec))
	}
	return v, nil
}

// GitHub returns a Verifier for GitHub webhook signatures (GitHubScheme).
func GitHub(secrets ...string) (Verifier, error) { return HMAC(GitHubScheme, secrets...) }

// OpenMessaging returns a Verifier for Genesys Cloud Open Messaging outbound webhook signatures
// (OpenMessagingScheme: base64, not GitHub's hex). eventbridge's Handler behind it decodes the
// messages Genesys posts there (the Outbound Open NormalizedMessage) as its open-messaging format.
func OpenMessaging(secrets ...string) (Verifier, error) { return HMAC(OpenMessagingScheme, secrets...) }

// macState is one reusable HMAC with room for its sum.
type macState struct {
	h   hash.Hash
	sum [sha512.Size]byte
}

// macPool keeps HMAC states keyed with one secret. hmac.New costs several allocations and the
// ipad/opad setup; Reset restores the keyed state cheaply, so verifying allocates nothing.
type macPool struct{ pool sync.Pool }

func newMACPool(newHash func() hash.Hash, key []byte) *macPool {
	p := &macPool{}
	p.pool.New = func() any { return &macState{h: hmac.New(newHash, key)} }
	return p
}

func (p *macPool) get() *macState {
	st := p.pool.Get().(*macState)
	st.h.Reset()
	return st
}

func (p *macPool) put(st *macState) { p.pool.Put(st) }

type hmacVerifier struct {
	scheme compiled
	keys   []*macPool
}

func (v *hmacVerifier) Verify(_ context.Context, h http.Header, body []byte) (Identity, error) {
	var sig [sha512.Size]byte
	n, err := v.signature(h, &sig)
	if err != nil {
		return Identity{}, err
	}
	idx := -1
	for i, p := range v.keys {
		countCompare()
		st := p.get()
		st.h.Write(body)
		sum := st.h.Sum(st.sum[:0])
		idx = subtle.ConstantTimeSelect(boolInt(hmac.Equal(sum, sig[:n])), i, idx)
		p.put(st)
	}
	if idx < 0 {
		return Identity{}, fmt.Errorf("%w: %s matches no secret", ErrMismatch, v.scheme.header)
	}
	return Identity{Scheme: v.scheme.name, Key: idx}, nil
}

// signature decodes the request's signature header into sig and returns its length.
func (v *hmacVerifier) signature(h http.Header, sig *[sha512.Size]byte) (int, error) {
	val, err := singleValue(h, v.scheme.header)
	if err != nil {
		return 0, err
	}
	n, err := decodeMAC(sig, val, v.scheme.prefix, v.scheme.encoding, v.scheme.size)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %w", ErrMalformed, v.scheme.header, err)
	}
	return n, nil
}

// precheck implements prechecker: a missing, repeated or malformed signature header.
func (v *hmacVerifier) precheck(_ context.Context, h http.Header) error {
	var sig [sha512.Size]byte
	_, err := v.signature(h, &sig)
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

var (
	errPrefix = errors.New("value does not start with the expected prefix")
	errLength = errors.New("signature has the wrong length")
	errDigits = errors.New("signature is not valid for its encoding")
)

// decodeMAC strips prefix from val and decodes the rest with enc into dst. The result must be
// exactly size bytes long.
func decodeMAC(dst *[sha512.Size]byte, val, prefix string, enc Encoding, size int) (int, error) {
	if len(val) < len(prefix) || val[:len(prefix)] != prefix {
		return 0, errPrefix
	}
	s := val[len(prefix):]
	switch enc {
	case Hex:
		if len(s) != 2*size {
			return 0, errLength
		}
		for i := 0; i < size; i++ {
			hi, ok1 := unhex(s[2*i])
			lo, ok2 := unhex(s[2*i+1])
			if !ok1 || !ok2 {
				return 0, errDigits
			}
			dst[i] = hi<<4 | lo
		}
		return size, nil
	case Base64, Base64URL:
		return decodeBase64(dst[:], s, enc == Base64URL, size)
	}
	return 0, errDigits
}

// base64Scratch holds the decoding of any accepted signature: StdEncoding.DecodedLen of the padded
// encoding of 64 bytes is 66.
const base64Scratch = sha512.Size + 3

// decodeBase64 decodes s (padded or not) into dst, which must receive exactly size bytes.
func decodeBase64(dst []byte, s string, url bool, size int) (int, error) {
	var e *base64.Encoding
	switch {
	case len(s) == base64.StdEncoding.EncodedLen(size):
		e = base64.StdEncoding
		if url {
			e = base64.URLEncoding
		}
	case len(s) == base64.RawStdEncoding.EncodedLen(size):
		e = base64.RawStdEncoding
		if url {
			e = base64.RawURLEncoding
		}
	default:
		return 0, errLength
	}
	// Decode needs room for DecodedLen(len(s)) bytes, which exceeds size when padding characters
	// are replaced by data (44 characters without "=" claim 33 bytes): decode into scratch space
	// and copy only a result of the right length.
	var scratch [base64Scratch]byte
	n, err := e.Strict().Decode(scratch[:], bytesOf(s))
	if err != nil {
		return 0, errDigits
	}
	if n != size {
		return 0, errLength
	}
	return copy(dst, scratch[:n]), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// SignHMAC returns the header value that scheme s puts on body signed with secret: the prefix
// followed by the encoded MAC (lower-case hex or padded base64). It fails when s is invalid or
// secret is empty.
func SignHMAC(s HMACScheme, secret string, body []byte) (string, error) {
	c, err := s.compile()
	if err != nil {
		return "", err
	}
	if secret == "" {
		return "", errors.New("signature: HMAC secret is empty")
	}
	m := hmac.New(c.newHash, []byte(secret))
	m.Write(body)
	sum := m.Sum(nil)
	switch c.encoding {
	case Hex:
		return c.prefix + hex.EncodeToString(sum), nil
	case Base64URL:
		return c.prefix + base64.URLEncoding.EncodeToString(sum), nil
	default:
		return c.prefix + base64.StdEncoding.EncodeToString(sum), nil
	}
}

// SignHMACRequest signs body with secret and sets scheme s's header on r. body must be exactly what
// r sends.
func SignHMACRequest(r *http.Request, s HMACScheme, secret string, body []byte) error {
	val, err := SignHMAC(s, secret, body)
	if err != nil {
		return err
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	r.Header.Set(s.Header, val)
	return nil
}

// SignGitHub returns the X-Hub-Signature-256 value GitHub would send for body: "sha256=<hex>".
func SignGitHub(secret string, body []byte) (string, error) {
	return SignHMAC(GitHubScheme, secret, body)
}

// SignOpenMessaging returns the X-Hub-Signature-256 value Genesys Cloud Open Messaging would send
// for body: "sha256=<base64>".
func SignOpenMessaging(secret string, body []byte) (string, error) {
	return SignHMAC(OpenMessagingScheme, secret, body)
}
