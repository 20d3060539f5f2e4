package dlq

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/tracectx"
	"github.com/fanbridge/fanbridge/retry"
)

// QueueFunc adapts a function to a Queue, for tests and small adapters.
type QueueFunc func(ctx context.Context, e Entry) error

// Put calls f(ctx, e).
func (f QueueFunc) Put(ctx context.Context, e Entry) error { return f(ctx, e) }

// MaxIDLength caps Entry.ID, so that an ID fits a Kafka key, a log line and a command line.
const MaxIDLength = 128

// NewEntry builds the entry for an event that one sink did not get: the sink's name, the route
// that selected it, err (what delivery ended with, usually the *retry.Error of the sink's
// Retrier) and the times of the first and last attempts.
//
// From a *retry.Error it takes Attempts, Condition (see ConditionFromReason) and the last
// attempt's error (the *retry.Error's own text when it has none); from any other error one attempt, ConditionPermanent when err is marked
// permanent and ConditionAttempts otherwise. Class is retry.Classify(err); Error is err's text,
// capped by TruncateError; TraceID comes from the event's traceparent metadata. The entry gets a
// fresh ID from NewID, so that the caller can log it.
//
// The entry shares ev's Data, Raw and Metadata, which nobody may modify (see fanbridge.Event).
// A dispatcher whose circuit breaker was open sets Condition to ConditionCircuitOpen and Attempts
// to zero afterwards.
func NewEntry(ev *fanbridge.Event, sinkName, route string, err error, first, last time.Time) Entry {
	e := Entry{
		ID:           NewID(),
		Event:        *ev,
		Sink:         sinkName,
		Route:        route,
		FirstAttempt: first,
		LastAttempt:  last,
		TraceID:      TraceID(ev.Meta(fanbridge.MetaTraceparent)),
	}
	describe(&e, err)
	return e
}

// describe sets e's class, attempts, condition and error from err. An error from a sink is the
// sink's code: one whose Error, Unwrap, Is or As panics (a nil pointer of the sink's own error
// type, returned as an error, is the common case) is described by its type instead.
func describe(e *Entry, err error) {
	defer func() {
		if recover() != nil {
			e.Class = retry.ClassPermanent
			e.Attempts = max(e.Attempts, 1)
			e.Condition = ConditionPermanent
			e.Error = TruncateError(fmt.Sprintf("dlq: the error (%T) panics when read", err))
		}
	}()
	e.Class = retry.Classify(err)
	var re *retry.Error
	switch {
	case errors.As(err, &re):
		e.Attempts = re.Attempts
		e.Condition = ConditionFromReason(re.Reason)
		// Last is never nil in what a Retrier returns, but a *retry.Error can be built by hand;
		// then its own text says what there is to say.
		if re.Last != nil {
			e.Error = TruncateError(re.Last.Error())
		} else {
			e.Error = TruncateError(re.Error())
		}
	case err != nil:
		e.Attempts = 1
		e.Condition = ConditionAttempts
		if retry.IsPermanent(err) {
			e.Condition = ConditionPermanent
		}
		e.Error = TruncateError(err.Error())
	}
}

// ConditionFromReason maps the reason a Retrier gave up to the condition an entry records.
// ReasonCanceled maps to ConditionAge: a dispatcher's call ends by cancellation only when the
// request's time budget (its context's deadline) or the drain at shutdown ended it. An unknown
// reason maps to "".
func ConditionFromReason(r retry.Reason) Condition {
	switch r {
	case retry.ReasonAttempts:
		return ConditionAttempts
	case retry.ReasonAge, retry.ReasonCanceled:
		return ConditionAge
	case retry.ReasonPermanent:
		return ConditionPermanent
	default:
		return ""
	}
}

// TruncateError returns s made valid UTF-8 (each run of invalid bytes replaced by U+FFFD) and cut
// to at most MaxErrorText bytes at a rune boundary, so that a capped text never ends in half a
// character.
func TruncateError(s string) string {
	s = validUTF8(s)
	if len(s) <= MaxErrorText {
		return s
	}
	cut := MaxErrorText
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// TraceID returns the trace id of a W3C traceparent header value ("00-<trace id>-<span id>-<flags>"),
// or "" when the value is not a valid traceparent: by the rules the sinks send trace context by
// (sink.TraceContext), so that an entry never names a trace no delivery carried.
func TraceID(traceparent string) string {
	tp, ok := tracectx.Parent(traceparent)
	if !ok {
		return ""
	}
	return tp[3:35]
}

// crockford is the alphabet of NewID: Crockford's base32, which sorts in byte order and has no
// letters that read like digits.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// NewID returns a new entry ID: 26 characters of Crockford base32 holding a 48-bit millisecond
// Unix time followed by 80 random bits (the ULID layout). IDs sort by the time they were made,
// to the millisecond, and do not collide in practice.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	_, _ = rand.Read(b[6:]) // crypto/rand.Read never fails (it crashes the program instead).
	hi := binary.BigEndian.Uint64(b[0:8])
	lo := binary.BigEndian.Uint64(b[8:16])
	var out [26]byte
	// 128 bits as 26 base32 digits: the first digit holds the top 3 bits.
	for i := 25; i >= 0; i-- {
		out[i] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
	return string(out[:])
}

// Prepare readies e for storage, as every driver's Put does first: it checks e (see
// ErrInvalidEntry), gives it an ID from NewID when it has none, caps Error with TruncateError,
// replaces invalid UTF-8 in its text fields and metadata with U+FFFD, and converts its times to
// UTC without a monotonic reading. Raw and Data are left as they are, byte for byte.
//
// Prepare never modifies the memory e shares with its event: metadata that needs a change is
// copied first.
func Prepare(e Entry) (Entry, error) {
	if err := check(&e); err != nil {
		return Entry{}, err
	}
	if e.ID == "" {
		e.ID = NewID()
	}
	e.Error = TruncateError(e.Error)
	e.Sink = validUTF8(e.Sink)
	e.Route = validUTF8(e.Route)
	e.TraceID = validUTF8(e.TraceID)
	e.Event.ID = validUTF8(e.Event.ID)
	e.Event.Type = validUTF8(e.Event.Type)
	e.Event.Topic = validUTF8(e.Event.Topic)
	e.Event.Source = validUTF8(e.Event.Source)
	e.Event.Metadata = validMetadata(e.Event.Metadata)
	e.FirstAttempt = utc(e.FirstAttempt)
	e.LastAttempt = utc(e.LastAttempt)
	e.Event.Time = utc(e.Event.Time)
	return e, nil
}

func check(e *Entry) error {
	switch {
	case e.Sink == "":
		return fmt.Errorf("%w: no sink name", ErrInvalidEntry)
	case e.Attempts < 0:
		return fmt.Errorf("%w: negative attempt count %d", ErrInvalidEntry, e.Attempts)
	}
	switch e.Condition {
	case "", ConditionAttempts, ConditionAge, ConditionPermanent, ConditionCircuitOpen:
	default:
		return fmt.Errorf("%w: unknown condition %q", ErrInvalidEntry, e.Condition)
	}
	switch e.Class {
	case "", retry.ClassRetryable, retry.ClassPermanent, retry.ClassCanceled:
	default:
		return fmt.Errorf("%w: unknown class %q", ErrInvalidEntry, e.Class)
	}
	if err := CheckID(e.ID); e.ID != "" && err != nil {
		return err
	}
	for _, t := range [...]struct {
		name string
		t    time.Time
	}{{"first attempt", e.FirstAttempt}, {"last attempt", e.LastAttempt}, {"event time", e.Event.Time}} {
		if !t.t.IsZero() && !inRange(t.t) {
			return fmt.Errorf("%w: %s %v is outside the years 0 to 9999", ErrInvalidEntry, t.name, t.t)
		}
	}
	return nil
}

// CheckID returns nil when id can name an entry: 1 to MaxIDLength bytes of valid UTF-8 without
// spaces or control characters. Otherwise it returns an error wrapping ErrInvalidEntry.
func CheckID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return fmt.Errorf("%w: ID must be 1 to %d bytes long", ErrInvalidEntry, MaxIDLength)
	}
	if !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%w: ID %q has invalid UTF-8, spaces or control characters", ErrInvalidEntry, id)
	}
	return nil
}

func inRange(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 0 && y <= 9999
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

func validMetadata(m map[string]string) map[string]string {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			c := make(map[string]string, len(m))
			for k, v := range m {
				c[validUTF8(k)] = validUTF8(v)
			}
			return c
		}
	}
	return m
}
