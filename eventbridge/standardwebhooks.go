package eventbridge

import (
	"github.com/fanbridge/fanbridge"
)

// standardWebhookKeys are the keys of a Standard Webhooks payload the decoder reads by name (see
// fields).
var standardWebhookKeys = []string{"id", "type", "timestamp", "data"}

// decodeStandardWebhooks decodes the payload the Standard Webhooks specification recommends:
// {"type","timestamp","data"}, with the "id" many senders put beside them. msgID is the sender's
// message id (the webhook-id), "" when there is none.
func decodeStandardWebhooks(s *scanner, msgID string) (*fanbridge.Event, error) {
	const (
		fID = iota
		fType
		fTimestamp
		fData
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "id":
			return fID
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

	// An id of the payload's own names the event, as a CloudEvent's does (a Stripe-style event:
	// {"id":"evt_...","object":"event","type",...}), and a retry repeats it. The specification
	// defines no id, so one that is not a string an ID may be is the sender's data like any other
	// member, and not refused.
	var own []byte
	if i := f[fID]; i >= 0 {
		if v, err := stringValue("id", s.val(&s.members[i])); err == nil && len(v) > 0 {
			own = v
		}
	}
	var id [idLen]byte
	if own == nil {
		// Without one, the ID is derived from the whole payload, so that two events that differ
		// anywhere (in members the decoder does not read too) never share it. The same bytes
		// are a retry only when they say when the event happened or which one it is: a
		// timestamp, or an id of any other value than null and "".
		distinct := f[fTimestamp] >= 0 || f[fID] >= 0 && string(s.val(&s.members[f[fID]])) != `""`
		eventID(&id, msgID, distinct, trimBlank(s.buf))
		own = id[:]
	}

	tab := &s.strs
	hID, hType := tab.add(own), tab.add(typ)
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
