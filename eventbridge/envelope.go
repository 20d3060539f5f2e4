package eventbridge

import (
	"time"

	"github.com/fanbridge/fanbridge"
)

// decodeEventBridge decodes the EventBridge envelope with a Genesys notification as detail.
func decodeEventBridge(s *scanner) (*fanbridge.Event, error) {
	const (
		fID = iota
		fDetailType
		fSource
		fAccount
		fRegion
		fTime
		fDetail
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "id":
			return fID
		case "detail-type":
			return fDetailType
		case "source":
			return fSource
		case "account":
			return fAccount
		case "region":
			return fRegion
		case "time":
			return fTime
		case "detail":
			return fDetail
		}
		return -1
	}, envelopeKeys)
	if err != nil {
		return nil, err
	}
	id, err := s.requiredString("id", f[fID])
	if err != nil {
		return nil, err
	}
	typ, err := s.requiredString("detail-type", f[fDetailType])
	if err != nil {
		return nil, err
	}
	source, err := s.requiredString("source", f[fSource])
	if err != nil {
		return nil, err
	}
	account, err := s.optionalString("account", f[fAccount])
	if err != nil {
		return nil, err
	}
	region, err := s.optionalString("region", f[fRegion])
	if err != nil {
		return nil, err
	}
	envTime, err := s.optionalTime("time", f[fTime])
	if err != nil {
		return nil, err
	}
	if f[fDetail] < 0 {
		return nil, missing("detail")
	}
	if v := s.val(&s.members[f[fDetail]]); v[0] != '{' {
		return nil, wrongType("detail", "an object", v)
	}

	detail := s.child(f[fDetail])
	n, err := decodeDetail(detail, &envelopeDetail)
	if err != nil {
		return nil, err
	}
	data := n.body
	if data == nil {
		// Not a Genesys notification: a generic EventBridge event carries its payload in detail.
		data = s.val(&s.members[f[fDetail]])
	}

	t := envTime
	switch {
	case t.IsZero():
		t = n.timestamp
	case !n.timestamp.IsZero() && !n.timestamp.Before(t) && n.timestamp.Sub(t) < time.Second:
		// EventBridge truncates time to the second; detail.timestamp names the same instant
		// to the millisecond.
		t = n.timestamp
	}
	if t.IsZero() && n.bodyIdx >= 0 {
		t, _ = eventTimeIn(detail.s.child(n.bodyIdx))
	}

	tab := &s.strs
	hID, hType, hSource := tab.add(id), tab.add(typ), tab.add(source)
	hTopic, hCorr := tab.add(n.topic), tab.add(n.correlation)
	hAccount, hRegion := tab.add(account), tab.add(region)
	tab.build()

	md := make(map[string]string, 6)
	md[fanbridge.MetaFormat] = string(FormatEventBridge)
	setMeta(md, fanbridge.MetaCorrelationID, tab.get(hCorr))
	setMeta(md, fanbridge.MetaAccount, tab.get(hAccount))
	setMeta(md, fanbridge.MetaRegion, tab.get(hRegion))
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Topic:    tab.get(hTopic),
		Source:   tab.get(hSource),
		Time:     t,
		Data:     data,
		Metadata: md,
		Raw:      s.buf,
	}, nil
}

func setMeta(md map[string]string, k, v string) {
	if v != "" {
		md[k] = v
	}
}

// notification holds the fields of a Genesys notification object (EventBridge's detail, or a
// WebSocket message).
type notification struct {
	topic       []byte
	body        []byte // eventBody, nil when absent
	bodyIdx     int32  // eventBody's member index in the object's scanner, -1 when absent
	correlation []byte
	timestamp   time.Time
	stamp       []byte // timestamp as sent (the JSON string), nil when there is none
}

// detailNames are the field names decodeDetail uses in errors, qualified by where the object sits.
type detailNames struct {
	prefix, topicName, eventBody, metadata, metadataDot, correlationID, timestamp string
}

var (
	envelopeDetail = detailNames{"detail.", "detail.topicName", "detail.eventBody", "detail.metadata",
		"detail.metadata.", "detail.metadata.CorrelationId", "detail.timestamp"}
	bareDetail = detailNames{"", "topicName", "eventBody", "metadata", "metadata.",
		"metadata.CorrelationId", "timestamp"}
)

// decodeDetail reads topicName, eventBody, metadata.CorrelationId and timestamp of o.
//
// An EventBridge detail without both topicName and eventBody is not a Genesys notification but
// some other partner's or service's payload, whose fields of these names mean whatever that sender
// meant: a value of another type or form is then left out of the event instead of failing the
// request, which EventBridge would not retry, and unless eventBody is an object the whole detail
// is the event's data.
func decodeDetail(o object, names *detailNames) (notification, error) {
	const (
		fTopic = iota
		fBody
		fMeta
		fTimestamp
		nFields
	)
	var f [nFields]int32
	n := notification{bodyIdx: -1}
	slot := func(k []byte) int {
		switch string(k) {
		case "topicName":
			return fTopic
		case "eventBody":
			return fBody
		case "metadata":
			return fMeta
		case "timestamp":
			return fTimestamp
		}
		return -1
	}
	// A notification's shape is ours, and so is an envelope detail's with both topicName and
	// eventBody, a Genesys notification: a key that differs from one of its keys only in case is
	// refused. Another detail is the sender's data: a case variant found in it is refused only
	// once a second reading, without the check, finds both keys in some spelling, null or not:
	// encoding/json skips a null, and reads a variant as the key, so {"topicName": …,
	// "EventBody": …} is a Genesys notification to a consumer decoding Raw.
	// In such a detail that is not a Genesys notification, a key with a case variant beside it (or
	// in its place) is not read at all: which one the sender meant is its business, and the
	// event is decoded as if neither were there (no topic, the whole detail as data).
	err := o.fields(names.prefix, f[:], slot, notificationKeys)
	if variant, ok := err.(*caseVariantError); ok && names == &envelopeDetail {
		if err = o.fields(names.prefix, f[:], slot, nil); err == nil {
			// notificationKeys is in the order of the slots.
			exact, variants := o.spellings(notificationKeys)
			if (exact[fTopic] || variants[fTopic]) && (exact[fBody] || variants[fBody]) {
				err = variant
			} else {
				for i, v := range variants {
					if v {
						f[i] = -1
					}
				}
			}
		}
	}
	if err != nil {
		return n, err
	}
	s := o.s
	lenient := names == &envelopeDetail && (f[fBody] < 0 || f[fTopic] < 0)
	if n.topic, err = s.optionalString(names.topicName, f[fTopic]); err != nil {
		if !lenient {
			return n, err
		}
		n.topic = nil
	}
	if n.timestamp, err = s.optionalTime(names.timestamp, f[fTimestamp]); err != nil {
		if !lenient {
			return n, err
		}
		n.timestamp = time.Time{}
	} else if i := f[fTimestamp]; i >= 0 {
		n.stamp = s.val(&s.members[i])
	}
	if i := f[fBody]; i >= 0 {
		switch v := s.val(&s.members[i]); {
		case v[0] == '{':
			n.body, n.bodyIdx = v, i
		case !lenient:
			return n, wrongType(names.eventBody, "an object", v)
		}
	}
	if i := f[fMeta]; i >= 0 {
		v := s.val(&s.members[i])
		if v[0] != '{' {
			if lenient {
				return n, nil
			}
			return n, wrongType(names.metadata, "an object", v)
		}
		var c [1]int32
		meta := s.child(i)
		// A Genesys notification's metadata is Genesys' shape: a case variant of CorrelationId,
		// which encoding/json would read as it, is refused. That is also the metadata of an
		// envelope detail holding both topicName and eventBody, one of them null (a case
		// variant of either was dealt with above). In any other detail the metadata is the
		// sender's, and a CorrelationId with a case variant beside it, or in its place, is not
		// read, as a variant of the detail's own keys is not.
		genesys := !lenient
		if lenient {
			exact, _ := o.spellings(notificationKeys)
			genesys = exact[fTopic] && exact[fBody]
		}
		var metaNames []string
		if genesys {
			metaNames = correlationKeys
		}
		err := meta.fields(names.metadataDot, c[:], func(k []byte) int {
			if string(k) == "CorrelationId" {
				return 0
			}
			return -1
		}, metaNames)
		if err == nil && !genesys {
			if _, variant := meta.spellings(correlationKeys); variant[0] {
				c[0] = -1
			}
		}
		if err == nil {
			n.correlation, err = meta.s.optionalString(names.correlationID, c[0])
		}
		if err != nil {
			if _, variant := err.(*caseVariantError); !lenient || variant {
				return n, err
			}
			n.correlation = nil
		}
	}
	return n, nil
}
