package eventbridge

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/fanbridge/fanbridge"
)

// decodeNotification decodes a bare Genesys notification (the WebSocket format). msgID is the
// sender's message id, "" when there is none (see eventID).
func decodeNotification(s *scanner, msgID string) (*fanbridge.Event, error) {
	n, err := decodeDetail(s.root(), &bareDetail)
	if err != nil {
		return nil, err
	}
	if n.topic == nil {
		return nil, missing("topicName")
	}
	if len(n.topic) == 0 {
		return nil, empty("topicName")
	}
	if n.body == nil {
		return nil, missing("eventBody")
	}
	t := n.timestamp
	if t.IsZero() {
		t, _ = eventTimeIn(s.child(n.bodyIdx))
	}
	// A notification that repeats an earlier one's content (a user's conversation summary going
	// back to one active call) comes with another CorrelationId. Without one, its timestamp, when
	// it happened, tells it from another with the same body, as a webhook's does; with neither,
	// nothing tells it from a redelivery. The timestamp is left out beside a CorrelationId, so
	// that the IDs derived from one stay what they were.
	var id [idLen]byte
	if len(n.correlation) > 0 {
		eventID(&id, msgID, true, n.body, n.topic, n.correlation)
	} else {
		eventID(&id, msgID, n.stamp != nil, n.body, n.topic, nil, n.stamp)
	}

	tab := &s.strs
	hID, hTopic, hCorr := tab.add(id[:]), tab.add(n.topic), tab.add(n.correlation)
	tab.build()
	topic := tab.get(hTopic)
	md := make(map[string]string, 4)
	md[fanbridge.MetaFormat] = string(FormatNotification)
	setMeta(md, fanbridge.MetaCorrelationID, tab.get(hCorr))
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     TopicTemplate(topic),
		Topic:    topic,
		Time:     t,
		Data:     n.body,
		Metadata: md,
		Raw:      s.buf,
	}, nil
}

// EventTime returns when a Genesys event happened according to its body's "eventTime" field:
// epoch milliseconds (analytics detail events) or an RFC 3339 string (audit and transcription
// events). It reports false when data is not a JSON object with such a field.
func EventTime(data json.RawMessage) (time.Time, bool) {
	s := getScanner()
	defer putScanner(s)
	if s.scan(data) != nil || !s.isObject() {
		return time.Time{}, false
	}
	return eventTimeIn(s.root())
}

// eventTimeIn reads "eventTime" from an eventBody object. A body with a bad or repeated eventTime
// just has no time: the body is the sender's data, and its shape is not ours to reject.
func eventTimeIn(o object) (time.Time, bool) {
	var f [1]int32
	err := o.fields("", f[:], func(k []byte) int {
		if string(k) == "eventTime" {
			return 0
		}
		return -1
	}, nil)
	if err != nil || f[0] < 0 {
		return time.Time{}, false
	}
	return parseEventTime(o.s.val(&o.s.members[f[0]]))
}

// parseTimeString parses a JSON string value (quotes included) holding an RFC 3339 time, escapes
// decoded: "\u002B" is a "+" to JSON, and some encoders (.NET's by default) write it so.
func parseTimeString(v []byte) (time.Time, bool) {
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		if len(raw) > 6*64 { // each character escaped is six bytes
			return time.Time{}, false
		}
		raw = unescape(raw)
	}
	if len(raw) > 64 {
		return time.Time{}, false
	}
	return parseTime(raw)
}

// parseEventTime parses a JSON value that is either integer epoch milliseconds or an RFC 3339
// string.
func parseEventTime(v []byte) (time.Time, bool) {
	switch {
	case v[0] == '"':
		return parseTimeString(v)
	case v[0] >= '0' && v[0] <= '9':
		// At most 15 digits keeps the value exact and within the years time.Time represents.
		if len(v) > 15 {
			return time.Time{}, false
		}
		var ms int64
		for _, c := range v {
			if !isDigit(c) {
				return time.Time{}, false
			}
			ms = ms*10 + int64(c-'0')
		}
		return inYears(time.UnixMilli(ms).UTC())
	}
	return time.Time{}, false
}
