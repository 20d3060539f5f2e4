package genesys

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. An *APIError matches the one that fits its status with errors.Is, so callers
// classify failures without reading status codes.
var (
	// ErrInvalidConfig is wrapped by every error NewClient returns for arguments or options it
	// cannot use.
	ErrInvalidConfig = errors.New("genesys: invalid client configuration")
	// ErrBadRequest matches a 400 answer.
	ErrBadRequest = errors.New("genesys: bad request")
	// ErrUnauthorized matches a 401 answer that a fresh token did not cure, and token errors.
	ErrUnauthorized = errors.New("genesys: unauthorized")
	// ErrForbidden matches a 403 answer: the OAuth client lacks a role with the permission.
	ErrForbidden = errors.New("genesys: forbidden")
	// ErrNotFound matches a 404 answer.
	ErrNotFound = errors.New("genesys: not found")
	// ErrConflict matches a 409 answer, such as a stale integration config version.
	ErrConflict = errors.New("genesys: conflict")
	// ErrRateLimited matches a 429 answer.
	ErrRateLimited = errors.New("genesys: rate limited")
	// ErrServer matches a 5xx answer.
	ErrServer = errors.New("genesys: server error")
	// ErrQuotaExhausted reports a 429 whose Retry-After is longer than the client's ceiling (see
	// WithMaxRetryAfter), typically a daily quota. The client returns it at once instead of
	// sleeping for hours; the error names the wait and carries it for retry.RetryAfter.
	ErrQuotaExhausted = errors.New("genesys: API quota exhausted")
	// ErrOutcomeUnknown reports that a request that is not safe to repeat (a POST that creates
	// something) failed in a way that leaves open whether the server acted on it: a timeout, a
	// reset connection, a 5xx. The client does not replay such a request; callers that must know
	// look the result up (EnsureEventBridgeIntegration re-lists by name).
	ErrOutcomeUnknown = errors.New("genesys: request outcome unknown")
	// ErrClosed is wrapped by the error of a call that starts, or of an attempt that a call in
	// flight makes, after Client.Close, and by a request sent after Close with the HTTP client
	// that NewClient built (see Client.HTTPClient). Nothing of such a request went out.
	ErrClosed = errors.New("genesys: client closed")
)

// maxErrorText caps the server message kept in an error, so that an unexpected HTML page or a huge
// body never floods logs.
const maxErrorText = 512

// APIError is a non-2xx answer of the Genesys Cloud REST API, decoded from its error body
// {"message","code","status","contextId","details","errors"} and the ININ-Correlation-Id header.
// Use errors.As to read it and errors.Is with the sentinels (ErrNotFound, ErrConflict...) or the
// helpers (IsNotFound, IsConflict...) to classify it.
type APIError struct {
	// Status is the HTTP status code of the answer.
	Status int
	// Code is Genesys' error code, such as "not.found" or "too.many.requests.retry.after".
	Code string
	// Message is Genesys' human-readable message, capped in length.
	Message string
	// ContextID is the body's contextId, which Genesys support asks for.
	ContextID string
	// CorrelationID is the ININ-Correlation-Id response header, which Genesys support asks for.
	CorrelationID string
	// Details are the body's details entries (at most 16), when the server gives any.
	Details []ErrorDetail
	// Errors are nested errors of the same shape, when the server gives any.
	Errors []APIError
	// Method and Path name the request that failed (no query string, no body).
	Method, Path string
	// RetryAfter is the wait the server asked for in a Retry-After header, or zero.
	RetryAfter time.Duration
}

// ErrorDetail is one entry of an error body's "details" array. Each field is server text,
// capped at 128 bytes and cleaned like the message.
type ErrorDetail struct {
	ErrorCode  string `json:"errorCode,omitempty"`
	FieldName  string `json:"fieldName,omitempty"`
	EntityID   string `json:"entityId,omitempty"`
	EntityName string `json:"entityName,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("genesys: ")
	if e.Method != "" {
		b.WriteString(e.Method)
		b.WriteByte(' ')
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	fmt.Fprintf(&b, "%d", e.Status)
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.CorrelationID != "" {
		b.WriteString(" (correlation id ")
		b.WriteString(e.CorrelationID)
		b.WriteByte(')')
	}
	return b.String()
}

// Is lets errors.Is match an *APIError against the sentinel of its status class.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.Status == http.StatusBadRequest
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500 && e.Status <= 599
	}
	return false
}

// IsNotFound reports whether err is (or wraps) a 404 answer.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsConflict reports whether err is (or wraps) a 409 answer.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsRateLimited reports whether err is (or wraps) a 429 answer, including an exhausted quota.
func IsRateLimited(err error) bool {
	return errors.Is(err, ErrRateLimited) || errors.Is(err, ErrQuotaExhausted)
}

// IsUnauthorized reports whether err is (or wraps) a 401 answer or a token error.
func IsUnauthorized(err error) bool { return errors.Is(err, ErrUnauthorized) }

// IsForbidden reports whether err is (or wraps) a 403 answer.
func IsForbidden(err error) bool { return errors.Is(err, ErrForbidden) }

// errorBody is the JSON shape of Genesys error answers.
type errorBody struct {
	Message   string          `json:"message"`
	Code      string          `json:"code"`
	Status    int             `json:"status"`
	ContextID string          `json:"contextId"`
	Details   []ErrorDetail   `json:"details"`
	Errors    []errorBodyLite `json:"errors"`
}

// errorBodyLite is a nested error; nesting deeper than one level is not decoded.
type errorBodyLite struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Status  int    `json:"status"`
}

// parseAPIError builds an *APIError from an answer's status, headers and (possibly truncated)
// body. It never fails: a body that is not Genesys' JSON shape yields an error with the status
// and a short, sanitised excerpt of the body as its message.
func parseAPIError(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status, CorrelationID: clean(h.Get("ININ-Correlation-Id"), 128)}
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		e.RetryAfter = d
	}
	var b errorBody
	if err := json.Unmarshal(body, &b); err == nil {
		e.Code = clean(b.Code, 128)
		e.Message = clean(b.Message, maxErrorText)
		e.ContextID = clean(b.ContextID, 128)
		for _, d := range b.Details[:min(len(b.Details), 16)] {
			e.Details = append(e.Details, ErrorDetail{
				ErrorCode: clean(d.ErrorCode, 128), FieldName: clean(d.FieldName, 128),
				EntityID: clean(d.EntityID, 128), EntityName: clean(d.EntityName, 128),
			})
		}
		for _, n := range b.Errors[:min(len(b.Errors), 16)] {
			e.Errors = append(e.Errors, APIError{Status: n.Status, Code: clean(n.Code, 128), Message: clean(n.Message, maxErrorText)})
		}
	} else if len(body) > 0 {
		e.Message = clean(string(body), 120)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// clean makes s safe to embed in an error string or print on a terminal: valid UTF-8, at most n
// bytes, and no control characters (C0, DEL and C1, whose CSI U+009B starts an escape sequence on
// some terminals) nor bidirectional formatting characters (U+202E and the like, which make text
// display in another order than it reads).
func clean(s string, n int) string {
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) && len(s) > 0 {
			s = s[:len(s)-1]
		}
	}
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) {
			return ' '
		}
		return r
	}, s)
}

// maxIDLen bounds the ids the client takes from Genesys' answers (integrations, channels), which
// are UUIDs or as short.
const maxIDLen = 128

// idChecker is an answer that holds ids of Genesys' (see checkID); the client checks them as it
// decodes the answer, which then fails like one that does not decode.
type idChecker interface{ checkIDs() error }

// checkID refuses id, an id of the given kind that Genesys sent, when it is longer than maxIDLen
// bytes or holds anything but printable characters other than space: ids are printed, logged and
// put in errors as they are, so control characters (terminal escapes) and bidirectional
// formatting characters must not get that far. An empty id is left to the caller, which knows
// whether one is needed.
func checkID(kind, id string) error {
	switch {
	case len(id) > maxIDLen:
		return fmt.Errorf("%s id of %d bytes, longer than %d", kind, len(id), maxIDLen)
	case !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return r == ' ' || !unicode.IsPrint(r) }):
		return fmt.Errorf("%s id %q holds a control, formatting or space character, or is not UTF-8", kind, clean(id, maxIDLen))
	}
	return nil
}

// redactURL returns s, a URL or host that was refused, fit to be quoted in an error: user info,
// query and fragment, which may hold credentials or tokens, become "[redacted]". It works on the
// text, because a refused value often does not parse; when a '?' or '#' comes before the last '@',
// it cannot tell a password from a query and hides everything after the scheme.
func redactURL(s string) string {
	const hidden = "[redacted]"
	head, rest := "", s
	if i := strings.Index(s, "://"); i > 0 && isScheme(s[:i]) {
		head, rest = s[:i+3], s[i+3:]
	}
	at := strings.LastIndexByte(rest, '@')
	q := strings.IndexAny(rest, "?#")
	if at >= 0 && q >= 0 && q < at {
		return head + hidden
	}
	if at >= 0 {
		rest = hidden + "@" + rest[at+1:]
		q = strings.IndexAny(rest, "?#")
	}
	if q >= 0 {
		rest = rest[:q+1] + hidden
	}
	return head + rest
}

// isScheme reports whether s is a URL scheme as RFC 3986 section 3.1 spells it.
func isScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

// TokenError is a failed OAuth token request, decoded from Genesys' token error body
// {error, description, error_description}. It matches ErrUnauthorized with errors.Is when the
// login server refused the credentials (400 or 401). It never holds the client secret.
type TokenError struct {
	// Status is the HTTP status of the token answer.
	Status int
	// Code is the OAuth error code, such as "invalid_client".
	Code string
	// Description is the server's explanation.
	Description string
	// CorrelationID is the ININ-Correlation-Id header of the answer, when present.
	CorrelationID string
	// RetryAfter is the wait the server asked for in a Retry-After header, or zero.
	RetryAfter time.Duration
}

func (e *TokenError) Error() string {
	s := fmt.Sprintf("genesys: token request failed: %d", e.Status)
	if e.Code != "" {
		s += " " + e.Code
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.CorrelationID != "" {
		s += " (correlation id " + e.CorrelationID + ")"
	}
	return s
}

// Is matches ErrUnauthorized for refused credentials, and ErrRateLimited and ErrServer like
// APIError does.
func (e *TokenError) Is(target error) bool {
	switch target {
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized || e.Status == http.StatusBadRequest
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrServer:
		return e.Status >= 500 && e.Status <= 599
	}
	return false
}

type tokenErrorBody struct {
	Error            string `json:"error"`
	Description      string `json:"description"`
	ErrorDescription string `json:"error_description"`
}

// parseTokenError decodes a token endpoint's error answer.
func parseTokenError(status int, h http.Header, body []byte, now time.Time) *TokenError {
	e := &TokenError{Status: status, CorrelationID: clean(h.Get("ININ-Correlation-Id"), 128)}
	if d, ok := parseRetryAfter(h.Get("Retry-After"), now); ok {
		e.RetryAfter = d
	}
	var b tokenErrorBody
	if json.Unmarshal(body, &b) == nil {
		e.Code = clean(b.Error, 128)
		e.Description = clean(cmpOr(b.ErrorDescription, b.Description), maxErrorText)
	}
	return e
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
