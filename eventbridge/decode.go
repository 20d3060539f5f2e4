package eventbridge

import (
	"context"
	"fmt"
	"strings"

	"github.com/fanbridge/fanbridge"
)

// Format names an envelope format a Decoder understands. The same names are stored in
// Event.Metadata[fanbridge.MetaFormat] of every decoded event.
type Format string

// The formats, in the order auto-detection tries them.
const (
	// FormatEventBridge is the Amazon EventBridge envelope that API destinations POST:
	// {"version","id","detail-type","source","account","time","region","resources","detail"},
	// with a Genesys notification as detail.
	FormatEventBridge Format = "eventbridge"
	// FormatCloudEvents is a CloudEvents 1.0 event in structured JSON mode.
	FormatCloudEvents Format = "cloudevents"
	// FormatNotification is a bare Genesys notification as the WebSocket Notification API sends
	// it: {"topicName","version","eventBody","metadata"}.
	FormatNotification Format = "notification"
	// FormatWebhook is the generic webhook shape {"event","data","metadata"}.
	FormatWebhook Format = "webhook"
	// FormatWebhookAttributes is the generic webhook shape
	// {"id","eventType","timestamp","source","attributes"}.
	FormatWebhookAttributes Format = "webhook-attributes"
	// FormatOpenMessaging is a Genesys Cloud Open Messaging message as Genesys POSTs it to an
	// integration's outbound webhook (the Outbound Open NormalizedMessage):
	// {"id","channel":{"platform","type","to","from","time",...},"type","text","direction",...}.
	// Genesys signs it: see signature.OpenMessaging.
	FormatOpenMessaging Format = "open-messaging"
	// FormatStandardWebhooks is the payload the Standard Webhooks specification recommends:
	// {"type","timestamp","data"}, with or without an "id", which is then the event's ID.
	FormatStandardWebhooks Format = "standard-webhooks"
)

var allFormats = []Format{FormatEventBridge, FormatCloudEvents, FormatNotification, FormatWebhook,
	FormatWebhookAttributes, FormatOpenMessaging, FormatStandardWebhooks}

type formatSet uint8

func formatBit(f Format) formatSet {
	for i, g := range allFormats {
		if f == g {
			return 1 << i
		}
	}
	return 0
}

// Decoder turns request bodies into events. Its zero value is not usable; build one with
// NewDecoder. A Decoder is immutable and safe for concurrent use.
type Decoder struct {
	formats formatSet
}

// NewDecoder returns a Decoder that accepts only the given formats, or every format when none is
// given. An unknown format is an error wrapping ErrInvalidConfig.
func NewDecoder(formats ...Format) (*Decoder, error) {
	if len(formats) == 0 {
		return &Decoder{formats: 1<<len(allFormats) - 1}, nil
	}
	var set formatSet
	for _, f := range formats {
		bit := formatBit(f)
		if bit == 0 {
			return nil, fmt.Errorf("%w: unknown format %q", ErrInvalidConfig, string(f))
		}
		set |= bit
	}
	return &Decoder{formats: set}, nil
}

// Formats returns the formats d accepts, in detection order.
func (d *Decoder) Formats() []Format {
	var out []Format
	for _, f := range allFormats {
		if d.formats&formatBit(f) != 0 {
			out = append(out, f)
		}
	}
	return out
}

var defaultDecoder, _ = NewDecoder()

// Decode decodes body as any of the formats, picked as described for Decoder.Decode.
func Decode(body []byte, contentType string) (*fanbridge.Event, error) {
	return defaultDecoder.Decode(body, contentType)
}

// Decode validates body as a single JSON document and decodes it into an Event.
//
// contentType is the request's Content-Type: "application/json" or
// "application/cloudevents+json", with optional parameters (a charset must be UTF-8); empty means
// JSON. Structured CloudEvents are decoded as such; for JSON the format is detected from the
// top-level keys, in this order: "detail-type" or "detail" (EventBridge), "specversion"
// (CloudEvents), "topicName" or "eventBody" (Genesys notification), "event" (webhook),
// "eventType" (webhook with attributes), "channel" (an object) with "direction" (Open Messaging),
// "type" with "data" (Standard Webhooks payload).
//
// The returned Event's Raw is body itself and its Data a sub-slice of body: neither is copied, so
// the caller must not modify or reuse body while the Event is in use. Errors wrap ErrMalformed,
// ErrUnknownFormat, ErrInvalidField or ErrUnsupportedMediaType.
func (d *Decoder) Decode(body []byte, contentType string) (*fanbridge.Event, error) {
	media, err := parseMediaType(contentType)
	if err != nil {
		return nil, err
	}
	return d.decode(context.Background(), body, media)
}

// decode decodes body. ctx is the request's context, from which the formats that carry no id of
// their own read the sender's verified message id (see eventID).
func (d *Decoder) decode(ctx context.Context, body []byte, media media) (*fanbridge.Event, error) {
	s := getScanner()
	defer putScanner(s)
	if err := s.scan(body); err != nil {
		return nil, err
	}
	if !s.isObject() {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrUnknownFormat)
	}
	f := FormatCloudEvents
	if media == mediaJSON {
		f = s.detect()
	}
	if f == "" {
		return nil, fmt.Errorf("%w: no known envelope keys (detail-type, specversion, topicName, event, eventType, "+
			"channel with direction, type with data)", ErrUnknownFormat)
	}
	if d.formats&formatBit(f) == 0 {
		return nil, fmt.Errorf("%w: %s envelopes are not accepted here", ErrUnknownFormat, f)
	}
	switch f {
	case FormatEventBridge:
		return decodeEventBridge(s)
	case FormatCloudEvents:
		return decodeCloudEvents(s)
	case FormatNotification:
		return decodeNotification(s, messageID(ctx))
	case FormatWebhook:
		return decodeWebhook(s, messageID(ctx))
	case FormatWebhookAttributes:
		return decodeWebhookAttributes(s)
	case FormatOpenMessaging:
		return decodeOpenMessaging(s, messageID(ctx))
	default:
		return decodeStandardWebhooks(s, messageID(ctx))
	}
}

// DecodeNotification decodes one bare Genesys notification, as the WebSocket Notification API
// sends it ({"topicName","version","eventBody","metadata"}); see FormatNotification in the package
// documentation for the fields. Heartbeats decode like any other notification (IsHeartbeat tells
// them apart). Like Decode, the Event aliases raw.
func DecodeNotification(raw []byte) (*fanbridge.Event, error) {
	s := getScanner()
	defer putScanner(s)
	if err := s.scan(raw); err != nil {
		return nil, err
	}
	if !s.isObject() {
		return nil, fmt.Errorf("%w: body is not a JSON object", ErrUnknownFormat)
	}
	return decodeNotification(s, "")
}

func (s *scanner) isObject() bool {
	for _, c := range s.buf {
		if !blank[c] {
			return c == '{'
		}
	}
	return false
}

// detect picks the format from the top-level keys. A key whose value is null counts as absent,
// as it does when the format's fields are read: a webhook serialised with "detail": null is a
// webhook. A body with the keys of several formats is the first of them in the order below, the
// order the formats were added in: a format added later never takes a body an earlier one
// decoded.
func (s *scanner) detect() Format {
	const (
		hasDetailType = 1 << iota
		hasDetail
		hasSpecVersion
		hasNotification
		hasEvent
		hasEventType
		hasChannel
		hasDirection
		hasType
		hasData
	)
	var has int
	for i := range s.members {
		m := &s.members[i]
		if m.parent != -1 || isNull(s.val(m)) {
			continue
		}
		switch string(s.key(m)) {
		case "detail-type":
			has |= hasDetailType
		case "detail":
			has |= hasDetail
		case "specversion":
			has |= hasSpecVersion
		case "topicName", "eventBody":
			has |= hasNotification
		case "event":
			has |= hasEvent
		case "eventType":
			has |= hasEventType
		case "channel":
			// Open Messaging's channel is an object; a string "channel" is some other sender's.
			if s.val(m)[0] == '{' {
				has |= hasChannel
			}
		case "direction":
			has |= hasDirection
		case "type":
			has |= hasType
		case "data":
			has |= hasData
		}
	}
	switch {
	// "detail" is also a legal CloudEvents extension name: with specversion beside it, the body is
	// a CloudEvent.
	case has&hasDetailType != 0:
		return FormatEventBridge
	case has&hasSpecVersion != 0:
		return FormatCloudEvents
	case has&hasDetail != 0:
		return FormatEventBridge
	case has&hasNotification != 0:
		return FormatNotification
	case has&hasEvent != 0:
		return FormatWebhook
	case has&hasEventType != 0:
		return FormatWebhookAttributes
	case has&(hasChannel|hasDirection) == hasChannel|hasDirection:
		return FormatOpenMessaging
	case has&(hasType|hasData) == hasType|hasData:
		return FormatStandardWebhooks
	}
	return ""
}

type media uint8

const (
	mediaJSON media = iota
	mediaCloudEvents
)

// parseMediaType accepts "application/json" and "application/cloudevents+json" in any case, with
// parameters; a charset parameter must name UTF-8. An empty Content-Type counts as JSON, because
// some senders omit it and the body is validated as JSON anyway. It does not allocate.
func parseMediaType(ct string) (media, error) {
	mt, params, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	var m media
	switch {
	case mt == "" && strings.TrimSpace(params) == "":
		return mediaJSON, nil
	case strings.EqualFold(mt, "application/json"):
		m = mediaJSON
	case strings.EqualFold(mt, "application/cloudevents+json"):
		m = mediaCloudEvents
	default:
		return 0, fmt.Errorf("%w: want application/json or application/cloudevents+json", ErrUnsupportedMediaType)
	}
	for params != "" {
		var p string
		p, params, _ = strings.Cut(params, ";")
		name, value, _ := strings.Cut(p, "=")
		if !strings.EqualFold(strings.TrimSpace(name), "charset") {
			continue
		}
		value = strings.Trim(strings.TrimSpace(value), `"`)
		if !strings.EqualFold(value, "utf-8") && !strings.EqualFold(value, "utf8") {
			return 0, fmt.Errorf("%w: charset must be UTF-8", ErrUnsupportedMediaType)
		}
	}
	return m, nil
}
