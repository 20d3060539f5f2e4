package kafkasink

import (
	"errors"
	"fmt"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/rfc3339"
)

// Record headers. The event's own attributes travel under the names of the CloudEvents Kafka
// binding (binary mode), so a CloudEvents SDK reads a record as an event with the body as its
// data; trace context travels under the W3C names that tracing instrumentation reads; every other
// metadata entry travels under HeaderMetadataPrefix followed by its key, unchanged.
const (
	// HeaderSpecVersion is "1.0", the CloudEvents version, on records whose value is the body.
	HeaderSpecVersion = "ce_specversion"
	// HeaderID carries Event.ID.
	HeaderID = "ce_id"
	// HeaderType carries Event.Type, such as "v2.users.{id}.presence".
	HeaderType = "ce_type"
	// HeaderSource carries Event.Source. CloudEvents requires a source, so an event without one
	// (every event of the Genesys WebSocket notification intake, and webhooks that name none)
	// gets a default: "urn:fanbridge:" followed by its Metadata[fanbridge.MetaFormat], such as
	// "urn:fanbridge:notification", or "urn:fanbridge:event" when the format is empty or holds a
	// character outside [a-zA-Z0-9._-]. EventFromRecord reads the default back as no Source.
	HeaderSource = "ce_source"
	// HeaderSubject carries Event.Topic, the concrete Genesys topic with real ids, when set.
	HeaderSubject = "ce_subject"
	// HeaderTime carries Event.Time in RFC 3339 with nanoseconds, in UTC, when set.
	HeaderTime = "ce_time"
	// HeaderContentType is "application/json", the type of the value, when the value is not empty.
	HeaderContentType = "content-type"
	// HeaderTraceparent carries the W3C traceparent of sink.TraceContext: the span Send ran
	// under, or else Metadata[fanbridge.MetaTraceparent].
	HeaderTraceparent = "traceparent"
	// HeaderTracestate carries the W3C tracestate of sink.TraceContext.
	HeaderTracestate = "tracestate"
	// HeaderMetadataPrefix starts the header of every other metadata entry:
	// Metadata["correlation-id"] travels as "fanbridge-meta-correlation-id".
	HeaderMetadataPrefix = "fanbridge-meta-"
	// HeaderValue is "envelope" on records whose value is Event.Raw (WithEnvelopeValue) rather than
	// the body, and absent otherwise.
	HeaderValue = "fanbridge-value"
)

const (
	specVersion     = "1.0"
	jsonContentType = "application/json"
	valueEnvelope   = "envelope"
	// defaultSourcePrefix and defaultSourceFormat make the HeaderSource of an event without a
	// Source.
	defaultSourcePrefix = "urn:fanbridge:"
	defaultSourceFormat = "event"
)

// sourceFormat is what follows defaultSourcePrefix in the default source of e: its format,
// when that is safe in a URN as it is, and defaultSourceFormat otherwise.
func sourceFormat(e *fanbridge.Event) string {
	f := e.Meta(fanbridge.MetaFormat)
	if f == "" {
		return defaultSourceFormat
	}
	for i := 0; i < len(f); i++ {
		if !topicByte(f[i]) {
			return defaultSourceFormat
		}
	}
	return f
}

// metaHeaderNames caches the header names of the metadata keys fanbridge's decoders set, so
// building a record does not concatenate them each time.
var metaHeaderNames = map[string]string{
	fanbridge.MetaCorrelationID: HeaderMetadataPrefix + fanbridge.MetaCorrelationID,
	fanbridge.MetaAccount:       HeaderMetadataPrefix + fanbridge.MetaAccount,
	fanbridge.MetaRegion:        HeaderMetadataPrefix + fanbridge.MetaRegion,
	fanbridge.MetaFormat:        HeaderMetadataPrefix + fanbridge.MetaFormat,
	fanbridge.MetaTraceparent:   HeaderTraceparent,
	fanbridge.MetaTracestate:    HeaderTracestate,
}

func metaHeaderName(key string) string {
	if name, ok := metaHeaderNames[key]; ok {
		return name
	}
	return HeaderMetadataPrefix + key
}

// ErrNotEvent is wrapped by the error EventFromRecord returns for a record that does not carry a
// fanbridge event.
var ErrNotEvent = errors.New("kafkasink: record is not a fanbridge event")

// EventFromRecord rebuilds the event a Sink wrote into r: the reverse of the record layout
// described in the package documentation. Consumers use it to read fanbridge's records.
//
// The event's Data (or Raw, for a record written with WithEnvelopeValue) shares memory with
// r.Value. A HeaderSource that is the default a Sink writes for an event without a Source (see
// HeaderSource) gives an event without one, so an event such as the notification intake's comes
// back as it was sent; an event whose own Source was exactly that default comes back without it
// too. A record without a HeaderID header, with a HeaderTime that is not an RFC 3339 time of the
// years 0001 to 9999, or with a HeaderSpecVersion other than "1.0", is refused with an error
// wrapping ErrNotEvent. HeaderTime is read exactly as the intake reads an event's time: a
// lower-case "t" or "z" and a leap second (read as the first second of the next minute) are RFC
// 3339, a comma before the fraction is not; the time comes back in UTC. Unknown headers are
// ignored; a repeated header counts once, the last one winning.
//
// It reads a Sink's layout, not CloudEvents records in general: of a record another producer
// wrote in the CloudEvents Kafka binding's binary mode it reads the core attributes (id, type,
// source, subject, time) and the data, but not the extensions (ce_<name>), ce_dataschema or
// content-type, and a record in the binding's structured mode has no HeaderID: it is refused.
func EventFromRecord(r *kgo.Record) (*fanbridge.Event, error) {
	e := &fanbridge.Event{}
	hasID := false
	envelope := false
	var rawTime []byte // the last HeaderTime, parsed once the last is known
	hasTime := false
	specVersion, hasSpec := "", false
	for _, h := range r.Headers {
		v := string(h.Value)
		switch h.Key {
		case HeaderID:
			e.ID, hasID = v, true
		case HeaderType:
			e.Type = v
		case HeaderSource:
			e.Source = v
		case HeaderSubject:
			e.Topic = v
		case HeaderTime:
			rawTime, hasTime = h.Value, true
		case HeaderSpecVersion:
			specVersion, hasSpec = v, true
		case HeaderTraceparent:
			setMeta(e, fanbridge.MetaTraceparent, v)
		case HeaderTracestate:
			setMeta(e, fanbridge.MetaTracestate, v)
		case HeaderValue:
			envelope = v == valueEnvelope
		default:
			if key, ok := strings.CutPrefix(h.Key, HeaderMetadataPrefix); ok {
				setMeta(e, key, v)
			}
		}
	}
	if !hasID {
		return nil, fmt.Errorf("%w: no %s header", ErrNotEvent, HeaderID)
	}
	if hasTime {
		t, ok := rfc3339.Parse(rawTime)
		if !ok {
			return nil, fmt.Errorf("%w: header %s is not an RFC 3339 time of the years 0001 to 9999", ErrNotEvent, HeaderTime)
		}
		e.Time = t
	}
	if hasSpec && specVersion != "1.0" {
		return nil, fmt.Errorf("%w: header %s is %q, not \"1.0\"", ErrNotEvent, HeaderSpecVersion, specVersion)
	}
	if rest, ok := strings.CutPrefix(e.Source, defaultSourcePrefix); ok && rest == sourceFormat(e) {
		e.Source = ""
	}
	if len(r.Value) > 0 {
		if envelope {
			e.Raw = r.Value
		} else {
			e.Data = r.Value
		}
	}
	return e, nil
}

func setMeta(e *fanbridge.Event, key, value string) {
	if e.Metadata == nil {
		e.Metadata = make(map[string]string, 4)
	}
	e.Metadata[key] = value
}
