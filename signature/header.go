package signature

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// singleValue returns the one value of header key (canonical form). An absent or empty header is
// ErrMissing; a header sent more than once is ErrMalformed, because two credentials on one request
// are ambiguous and a proxy may have added one of them.
func singleValue(h http.Header, key string) (string, error) {
	vs := h[key]
	switch {
	case len(vs) == 0 || (len(vs) == 1 && vs[0] == ""):
		return "", fmt.Errorf("%w: no %s header", ErrMissing, key)
	case len(vs) > 1:
		return "", fmt.Errorf("%w: %s header sent %d times", ErrMalformed, key, len(vs))
	}
	return vs[0], nil
}

// checkHeaderName validates a configured header name and returns its canonical form.
func checkHeaderName(name string) (string, error) {
	if name == "" {
		return "", errors.New("signature: header name is empty")
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return "", fmt.Errorf("signature: header name %q is not a valid HTTP field name", name)
		}
	}
	canon := http.CanonicalHeaderKey(name)
	if canon == "Host" || canon == "Transfer-Encoding" {
		// net/http moves these into Request.Host and Request.TransferEncoding: a verifier would
		// never find them in the header and refuse every request.
		return "", fmt.Errorf("signature: header %q never reaches a handler's Request.Header", name)
	}
	return canon, nil
}

// isTokenChar reports whether c may appear in an HTTP token (RFC 9110 section 5.6.2).
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkSecrets validates a list of configured credentials: at least one, none empty, no
// duplicates, no surrounding whitespace (HTTP strips it from header values, so such a credential
// could never match).
func checkSecrets(what string, secrets []string) error {
	if len(secrets) == 0 {
		return fmt.Errorf("signature: at least one %s is required", what)
	}
	seen := make(map[string]int, len(secrets))
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("signature: %s %d is empty", what, i)
		}
		if t := strings.TrimSpace(s); t == "" {
			return fmt.Errorf("signature: %s %d is blank (only whitespace)", what, i)
		} else if t != s {
			return fmt.Errorf("signature: %s %d has leading or trailing whitespace", what, i)
		}
		if j, dup := seen[s]; dup {
			return fmt.Errorf("signature: %s %d repeats %s %d", what, i, what, j)
		}
		seen[s] = i
	}
	return nil
}

// checkSendable refuses header credentials no request could carry: a control character other than
// a tab is not allowed in a header field value (RFC 9110 section 5.5; net/http refuses such a
// request before any handler runs), and a value over limit bytes is refused by the verifier. The
// error names the credential by its position, never by its value.
func checkSendable(what string, secrets []string, limit int) error {
	for i, s := range secrets {
		if limit > 0 && len(s) > limit {
			return fmt.Errorf("signature: %s %d is %d bytes, more than the %d a request may carry", what, i, len(s), limit)
		}
		for j := 0; j < len(s); j++ {
			if c := s[j]; c < 0x20 && c != '\t' || c == 0x7f {
				return fmt.Errorf("signature: %s %d contains a control character, which no HTTP header can carry", what, i)
			}
		}
	}
	return nil
}
