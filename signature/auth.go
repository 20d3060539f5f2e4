package signature

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

const (
	authorizationHeader = "Authorization"
	// maxCredentials bounds the Authorization credentials read, so that a huge header cannot make
	// the verifier decode or hash much.
	maxCredentials = 4096
)

// authorization returns the credentials after scheme in the Authorization header. A header with
// another scheme counts as missing: the request carries no credentials of this kind (and Any moves
// on to the next verifier).
func authorization(h http.Header, scheme string) (string, error) {
	val, err := singleValue(h, authorizationHeader)
	if err != nil {
		return "", err
	}
	name, cred, _ := strings.Cut(val, " ")
	if !strings.EqualFold(name, scheme) {
		return "", fmt.Errorf("%w: Authorization header has no %s credentials", ErrMissing, scheme)
	}
	cred = strings.TrimLeft(cred, " ")
	switch {
	case cred == "":
		return "", fmt.Errorf("%w: empty %s credentials", ErrMalformed, scheme)
	case len(cred) > maxCredentials:
		return "", fmt.Errorf("%w: %s credentials longer than %d bytes", ErrMalformed, scheme, maxCredentials)
	}
	return cred, nil
}

// isToken68 reports whether s has the token68 syntax of RFC 9110 section 11.2, which bearer tokens
// and Basic credentials use.
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

// Basic returns a Verifier for HTTP Basic authentication (RFC 7617): the "Basic" authorization of
// an Amazon EventBridge API destination Connection. users maps each user name to its password.
//
// The credentials are split at the first colon, so passwords may contain colons. Both the user name
// and the password are compared in constant time against every configured user, so timing reveals
// neither which users exist nor how much of a password was right. Identity.User names the user.
//
// A user has one password here, and a Connection's password changes under the same user name.
// Amazon EventBridge does not retry an event answered 401, so to rotate the password without
// losing events, accept both while the Connection changes over, with Any of one Basic holding the
// old password and one holding the new:
//
//	old, err := signature.Basic(map[string]string{"eventbridge": oldPassword})
//	...
//	next, err := signature.Basic(map[string]string{"eventbridge": newPassword})
//	...
//	v, err := signature.Any(old, next)
//
// then update the Connection, and when its update has taken effect, go back to Basic with the new
// password alone. Any answers a failure as one Basic does (the same 401 with one challenge, the
// same reason) after checking it with both, so timing sets apart only a success, and which
// password it had; the Identity is the same for both (scheme basic, Key -1), so it cannot tell
// when the Connection has switched.
//
// Basic fails when users is empty, a user name is empty or contains a colon or a control
// character, a password is empty, or a user's encoded credentials would be longer than the 4096
// bytes the verifier reads (no request could present them).
func Basic(users map[string]string) (Verifier, error) {
	if len(users) == 0 {
		return nil, fmt.Errorf("signature: Basic needs at least one user")
	}
	v := &basicVerifier{users: make([]basicUser, 0, len(users))}
	for name, pass := range users {
		switch {
		case name == "":
			return nil, fmt.Errorf("signature: Basic user name is empty")
		case strings.ContainsRune(name, ':'):
			return nil, fmt.Errorf("signature: Basic user name %s contains a colon (the rest is not shown: it may be a password)", userForError(name))
		case hasControl(name):
			return nil, fmt.Errorf("signature: Basic user name %s contains a control character", userForError(name))
		case pass == "":
			return nil, fmt.Errorf("signature: Basic password of user %s is empty", userForError(name))
		case base64.StdEncoding.EncodedLen(len(name)+1+len(pass)) > maxCredentials:
			return nil, fmt.Errorf("signature: Basic credentials of user %s are longer than the %d bytes the verifier reads, once encoded",
				userForError(name), maxCredentials)
		}
		v.users = append(v.users, basicUser{name: name, user: digestOf(name), pass: digestOf(pass)})
	}
	return v, nil
}

// userForError quotes a user name for a construction error: only what comes before a colon (a
// name holding one is often "user:password" given as the name) and at most 64 bytes of it.
func userForError(name string) string {
	const limit = 64
	name, _, cut := strings.Cut(name, ":")
	if len(name) > limit {
		name, cut = name[:limit], true
	}
	if cut {
		return fmt.Sprintf("%q…", name)
	}
	return fmt.Sprintf("%q", name)
}

func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

type basicUser struct {
	name       string
	user, pass digest
}

type basicVerifier struct{ users []basicUser }

func (v *basicVerifier) Challenge() []string {
	return []string{`Basic realm="fanbridge", charset="UTF-8"`}
}

func (v *basicVerifier) Verify(_ context.Context, h http.Header, _ []byte) (Identity, error) {
	cred, err := authorization(h, "Basic")
	if err != nil {
		return Identity{}, err
	}
	user, pass, err := decodeBasic(cred)
	if err != nil {
		return Identity{}, err
	}
	du, dp := digest(sha256.Sum256(user)), digest(sha256.Sum256(pass))
	idx := -1
	for i := range v.users {
		countCompare()
		u := subtle.ConstantTimeCompare(du[:], v.users[i].user[:])
		p := subtle.ConstantTimeCompare(dp[:], v.users[i].pass[:])
		idx = subtle.ConstantTimeSelect(u&p, i, idx)
	}
	if idx < 0 {
		return Identity{}, fmt.Errorf("%w: Basic credentials match no user", ErrMismatch)
	}
	return Identity{Scheme: SchemeBasic, Key: -1, User: v.users[idx].name}, nil
}

// VerifyHeader implements HeaderVerifier: Verify never looks at the body.
func (v *basicVerifier) VerifyHeader(ctx context.Context, h http.Header) (Identity, error) {
	return v.Verify(ctx, h, nil)
}

// decodeBasic decodes Basic credentials and splits them at the first colon. The returned slices
// point into a buffer of their own.
func decodeBasic(cred string) (user, pass []byte, err error) {
	if !isToken68(cred) {
		return nil, nil, fmt.Errorf("%w: Basic credentials are not base64", ErrMalformed)
	}
	enc := base64.StdEncoding
	if len(cred)%4 != 0 {
		enc = base64.RawStdEncoding
	}
	buf := make([]byte, enc.DecodedLen(len(cred)))
	n, err := enc.Decode(buf, bytesOf(cred))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: Basic credentials are not base64", ErrMalformed)
	}
	u, p, ok := bytesCut(buf[:n], ':')
	if !ok {
		return nil, nil, fmt.Errorf("%w: Basic credentials have no colon", ErrMalformed)
	}
	return u, p, nil
}

func bytesCut(b []byte, sep byte) (before, after []byte, found bool) {
	for i, c := range b {
		if c == sep {
			return b[:i], b[i+1:], true
		}
	}
	return b, nil, false
}
