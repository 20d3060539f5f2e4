package signature

import (
	"errors"
)

// Errors a Verifier returns, wrapped with %w and some context (never a secret or a signature).
// Classify them with errors.Is, or turn them into a short label with Reason.
var (
	// ErrMissing reports that the request carries none of the credentials the verifier looks for:
	// the header is absent or empty, or the Authorization header uses another scheme.
	ErrMissing = errors.New("signature: credentials missing")
	// ErrMalformed reports credentials that cannot be parsed: bad base64 or hex, a wrong prefix, a
	// signature of the wrong length, a non-numeric timestamp, a header sent twice.
	ErrMalformed = errors.New("signature: credentials malformed")
	// ErrMismatch reports well-formed credentials that match no configured key, token, user or
	// password.
	ErrMismatch = errors.New("signature: credentials do not match")
	// ErrStale reports a signed timestamp older than the tolerance.
	ErrStale = errors.New("signature: timestamp too old")
	// ErrFuture reports a signed timestamp further in the future than the tolerance.
	ErrFuture = errors.New("signature: timestamp in the future")
	// ErrReplayed reports a message id already accepted within its validity window.
	ErrReplayed = errors.New("signature: message replayed")
	// ErrTooLarge reports a request body over the size limit.
	ErrTooLarge = errors.New("signature: body too large")
	// ErrUnreadable reports a body that could not be read: the client went away, or the body is
	// shorter than its Content-Length. The middleware answers 400.
	ErrUnreadable = errors.New("signature: cannot read body")
	// ErrUnavailable reports that verification could not be completed because something it depends
	// on failed (a replay cache, a token validator, a cancelled context). The request was neither
	// accepted nor proven bad, so the middleware answers 503 and the sender retries.
	ErrUnavailable = errors.New("signature: verification unavailable")
)

// Reason labels used in logs and metrics (attribute "reason").
const (
	ReasonMissing     = "missing"
	ReasonMalformed   = "malformed"
	ReasonMismatch    = "mismatch"
	ReasonStale       = "stale"
	ReasonFuture      = "future"
	ReasonReplayed    = "replayed"
	ReasonTooLarge    = "too_large"
	ReasonUnavailable = "unavailable"
	ReasonUnreadable  = "unreadable"
	ReasonOther       = "other"
)

// reasons is ordered: when an error wraps several sentinels (Any joins them), the first one listed
// here names it, so that the most telling cause wins.
var reasons = []struct {
	err    error
	reason string
}{
	{ErrUnavailable, ReasonUnavailable},
	{ErrTooLarge, ReasonTooLarge},
	{ErrUnreadable, ReasonUnreadable},
	{ErrReplayed, ReasonReplayed},
	{ErrStale, ReasonStale},
	{ErrFuture, ReasonFuture},
	{ErrMismatch, ReasonMismatch},
	{ErrMalformed, ReasonMalformed},
	{ErrMissing, ReasonMissing},
}

// Reason returns the label of err for logs and metrics: one of the Reason constants, ReasonOther
// for an error that wraps no sentinel of this package, and "" for nil.
func Reason(err error) string {
	if err == nil {
		return ""
	}
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return ReasonOther
}
