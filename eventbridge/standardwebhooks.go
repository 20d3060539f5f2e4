package eventbridge

import (
	"github.com/fanbridge/fanbridge"
)

// standardWebhookKeys are the keys of a Standard Webhooks payload the decoder reads by name (see
// fields).
var standardWebhookKeys = []string{"type", "timestamp", "data"}

// decodeStandardWebhooks decodes the payload the Standard Webhooks specification recommends:
// {"type","timestamp","data"}. msgID is the sender's message id (the webhook-id), "" when there
// is none.
func decodeStandardWebhooks(s *scanner, msgID string) (*fanbridge.Event, error) {
	const (
		fType = iota
		fTimestamp
		fData
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "type":
			return fType
		case "timestamp":
			return fTimestamp
		case "data":
			return fData
		}
		return -1
	}, standardWebhookKeys)
	if err != nil {
		return nil, err
	}
	typ, err := s.requiredString("type", f[fType])
	if err != nil {
		return nil, err
	}
	t, err := s.optionalTime("timestamp", f[fTimestamp])
	if err != nil {
		return nil, err
	}
	if f[fData] < 0 {
		return nil, missing("data")
	}
	data := s.val(&s.members[f[fData]])

	// The timestamp, when the event happened, tells apart two events of a type with the same data.
	var stamp []byte
	if i := f[fTimestamp]; i >= 0 {
		stamp = s.val(&s.members[i])
	}
	var id [idLen]byte
	eventID(&id, msgID, stamp != nil, data, typ, stamp)

	tab := &s.strs
	hID, hType := tab.add(id[:]), tab.add(typ)
	tab.build()
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Time:     t,
		Data:     data,
		Metadata: map[string]string{fanbridge.MetaFormat: string(FormatStandardWebhooks)},
		Raw:      s.buf,
	}, nil
}
