package filter

import (
	"sync"
	"time"

	"github.com/fanbridge/fanbridge"
)

// envelopeOf returns what event patterns match for e: e.Raw when it is an EventBridge envelope
// (see rawIsEnvelope), otherwise an EventBridge-shaped envelope written from the event's fields:
//
//	{"id": ID, "detail-type": Type, "source": Source, "account": Metadata[account],
//	 "time": Time (RFC 3339, UTC), "region": Metadata[region],
//	 "detail": {"topicName": Topic, "eventBody": Data,
//	            "metadata": {"CorrelationId": Metadata[correlation-id]}}}
//
// with empty members left out. buf, when not nil, must be passed to releaseEnvelope. When Data
// is not exactly one JSON value it returns nil, which matches nothing: pasted in as it is, a
// Data of `1},"detail-type":"x","z":{"a":1` would still make a well-formed view, one with fields
// the event does not have.
func envelopeOf(e *fanbridge.Event) (raw []byte, buf *[]byte) {
	if len(e.Raw) > 0 && rawIsEnvelope(e) {
		return e.Raw, nil
	}
	if len(e.Data) > 0 && !oneValue(e.Data) {
		return nil, nil
	}
	buf = envPool.Get().(*[]byte)
	b := (*buf)[:0]
	b = append(b, '{')
	sep := false
	str := func(k, v string) {
		if v == "" {
			return
		}
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = appendJSONString(append(appendJSONString(b, k), ':'), v)
	}
	str("id", e.ID)
	str("detail-type", e.Type)
	str("source", e.Source)
	str("account", e.Meta(fanbridge.MetaAccount))
	if !e.Time.IsZero() {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, `"time":"`...)
		b = e.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	str("region", e.Meta(fanbridge.MetaRegion))
	corr := e.Meta(fanbridge.MetaCorrelationID)
	if e.Topic != "" || len(e.Data) > 0 || corr != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"detail":{`...)
		sep = false
		str("topicName", e.Topic)
		if len(e.Data) > 0 {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, `"eventBody":`...)
			b = append(b, e.Data...)
		}
		if corr != "" {
			if sep {
				b = append(b, ',')
			}
			sep = true
			b = append(b, `"metadata":{`...)
			sep = false
			str("CorrelationId", corr)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = append(b, '}')
	*buf = b
	return b, buf
}

// oneValue reports whether data is one well-formed JSON value, blanks around it allowed, nested
// no deeper than the view allows below "detail"."eventBody".
func oneValue(data []byte) bool {
	end, err := skipValue(data, 0, 2)
	return err == nil && skipWS(data, end) == len(data)
}

var envPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func releaseEnvelope(buf *[]byte) {
	if buf != nil && cap(*buf) <= 1<<20 {
		envPool.Put(buf)
	}
}

// appendJSONString appends s as a JSON string literal.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// rawIsEnvelope reports whether e.Raw is what patterns match: when the decoder that built e says
// the body was an Amazon EventBridge envelope, or says nothing (events built in code). Events
// from the other formats (a bare Genesys notification from the WebSocket API, a webhook shape,
// a CloudEvent) are matched through the EventBridge-shaped view instead, so that one pattern on
// detail-type and detail routes a Genesys event the same way whichever intake it came through.
func rawIsEnvelope(e *fanbridge.Event) bool {
	switch e.Meta(fanbridge.MetaFormat) {
	case "", formatEventBridge:
		return true
	}
	return false
}

// formatEventBridge is the MetaFormat value the eventbridge package gives events decoded from an
// EventBridge envelope.
const formatEventBridge = "eventbridge"
