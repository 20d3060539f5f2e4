package eventbridge

import (
	"time"

	"github.com/fanbridge/fanbridge"
)

// The keys of an Open Messaging message, and of its channel, that the decoder reads by name (see
// fields).
var (
	openMessagingKeys        = []string{"channel", "direction", "type"}
	openMessagingChannelKeys = []string{"time"}
)

// decodeOpenMessaging decodes a Genesys Cloud Open Messaging message, the Outbound Open
// NormalizedMessage that Genesys POSTs to an integration's outbound webhook:
// {"id","channel":{"platform","type","to","from","time",...},"type","text","direction",...}. The
// whole message is the event's data. msgID is the sender's message id, "" when there is none.
func decodeOpenMessaging(s *scanner, msgID string) (*fanbridge.Event, error) {
	const (
		fChannel = iota
		fDirection
		fType
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "channel":
			return fChannel
		case "direction":
			return fDirection
		case "type":
			return fType
		}
		return -1
	}, openMessagingKeys)
	if err != nil {
		return nil, err
	}
	if f[fChannel] < 0 {
		return nil, missing("channel")
	}
	if v := s.val(&s.members[f[fChannel]]); v[0] != '{' {
		return nil, wrongType("channel", "an object", v)
	}
	if f[fDirection] < 0 {
		return nil, missing("direction")
	}
	typ, err := s.requiredString("type", f[fType])
	if err != nil {
		return nil, err
	}

	// channel.time is Genesys' send time; one that is not RFC 3339 just gives no time, as the
	// message is Genesys' to shape and the whole of it is the event's data anyway.
	channel := s.child(f[fChannel])
	var c [1]int32
	err = channel.fields("channel.", c[:], func(k []byte) int {
		if string(k) == "time" {
			return 0
		}
		return -1
	}, openMessagingChannelKeys)
	if err != nil {
		return nil, err
	}
	var t time.Time
	if c[0] >= 0 {
		if v := channel.s.val(&channel.s.members[c[0]]); v[0] == '"' {
			t, _ = parseTimeString(v)
		}
	}

	// The whole body tells messages apart: a redelivery is the same bytes, and two messages differ
	// in their id or time. The id alone does not: a receipt carries the id of the message it is
	// about.
	data := trimBlank(s.buf)
	var id [idLen]byte
	eventID(&id, msgID, true, data)

	tab := &s.strs
	hID, hType := tab.add(id[:]), tab.add(typ)
	tab.build()
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Time:     t,
		Data:     data,
		Metadata: map[string]string{fanbridge.MetaFormat: string(FormatOpenMessaging)},
		Raw:      s.buf,
	}, nil
}

// trimBlank returns b without the JSON whitespace around it.
func trimBlank(b []byte) []byte {
	for len(b) > 0 && blank[b[0]] {
		b = b[1:]
	}
	for len(b) > 0 && blank[b[len(b)-1]] {
		b = b[:len(b)-1]
	}
	return b
}
