package eventbridge

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fanbridge/fanbridge"
)

// reservedMeta are the metadata keys only decoders set, from envelope facts or (database64) from
// how they decoded the data; a sender's metadata or extensions cannot claim them.
func reservedMeta(k string) bool {
	return k == fanbridge.MetaFormat || k == fanbridge.MetaAccount || k == fanbridge.MetaRegion || k == MetaDataBase64
}

// webhookMetaKeys are the keys of a webhook's metadata that the decoder reads by name.
var webhookMetaKeys = []string{"source", "timestamp", "time"}

// decodeWebhook decodes {"event","data","metadata"}. msgID is the sender's message id, "" when
// there is none (see eventID).
func decodeWebhook(s *scanner, msgID string) (*fanbridge.Event, error) {
	const (
		fEvent = iota
		fData
		fMeta
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "event":
			return fEvent
		case "data":
			return fData
		case "metadata":
			return fMeta
		}
		return -1
	}, webhookKeys)
	if err != nil {
		return nil, err
	}
	typ, err := s.requiredString("event", f[fEvent])
	if err != nil {
		return nil, err
	}
	if f[fData] < 0 {
		return nil, missing("data")
	}
	data := s.val(&s.members[f[fData]])

	tab := &s.strs
	hType := tab.add(typ)
	var pairs []metaPair
	parts := [][]byte{typ}
	if i := f[fMeta]; i >= 0 {
		v := s.val(&s.members[i])
		if v[0] != '{' {
			return nil, wrongType("metadata", "an object", v)
		}
		meta := s.child(i)
		if pairs, err = webhookMetadata(meta, tab); err != nil {
			return nil, err
		}
		if msgID == "" {
			parts = identityParts(meta, parts)
		}
	}
	var id [idLen]byte
	eventID(&id, msgID, len(parts) > 1, data, parts...)
	hID := tab.add(id[:])
	tab.build()

	e := &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Data:     data,
		Metadata: make(map[string]string, len(pairs)+2),
		Raw:      s.buf,
	}
	for _, p := range pairs {
		k, v := tab.get(p.key), tab.get(p.value)
		switch {
		case k == "source":
			e.Source = v
		case k == "timestamp" || k == "time":
			if t, ok := parseTime([]byte(v)); ok && e.Time.IsZero() {
				e.Time = t
				continue
			}
			e.Metadata[k] = v
		case strings.EqualFold(k, "correlationId"):
			e.Metadata[fanbridge.MetaCorrelationID] = v
		default:
			e.Metadata[k] = v
		}
	}
	checkTraceMetadata(e.Metadata)
	e.Metadata[fanbridge.MetaFormat] = string(FormatWebhook)
	return e, nil
}

type metaPair struct{ key, value int }

// identityParts appends to parts what tells one webhook event from another when their data is the
// same (a presence going back to what it was): the members of metadata named correlationId (in
// any case), timestamp or time, key and value as sent, whatever the value's type, in key order so
// that a sender re-serializing its metadata gets the same ID. A redelivery repeats them. A null or
// an empty string tells nothing apart, and is left out.
func identityParts(o object, parts [][]byte) [][]byte {
	type kv struct{ k, v []byte }
	var found []kv
	for i := range o.s.members {
		m := &o.s.members[i]
		if m.parent != o.parent {
			continue
		}
		k, v := o.s.key(m), o.s.val(m)
		if isNull(v) || string(v) == `""` {
			continue
		}
		if string(k) == "timestamp" || string(k) == "time" || strings.EqualFold(string(k), "correlationId") {
			found = append(found, kv{k, v})
		}
	}
	slices.SortFunc(found, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	for _, f := range found {
		parts = append(parts, f.k, f.v)
	}
	return parts
}

// webhookMetadata queues the string members of a metadata object. Other value types are skipped:
// metadata is a map of strings, and a sender's extra structure belongs in data.
func webhookMetadata(o object, tab *strtab) ([]metaPair, error) {
	var pairs []metaPair
	seen := make(map[string]struct{})
	for i := range o.s.members {
		m := &o.s.members[i]
		if m.parent != o.parent {
			continue
		}
		k := o.s.key(m)
		if _, dup := seen[string(k)]; dup {
			return nil, fmt.Errorf("%w: duplicate key in metadata", ErrInvalidField)
		}
		seen[string(k)] = struct{}{}
		// source, timestamp and time are read by name, and encoding/json would read a case
		// variant as them; correlationId is read in any case, and the last one wins, as in
		// encoding/json.
		if !slices.Contains(webhookMetaKeys, string(k)) {
			if err := caseVariant("metadata.", k, webhookMetaKeys); err != nil {
				return nil, err
			}
		}
		v := o.s.val(m)
		if v[0] != '"' {
			continue
		}
		if err := checkMetaKey("metadata", k); err != nil {
			return nil, err
		}
		// The correlation id comes from correlationId alone: a key spelled as the metadata key
		// it is kept under would otherwise win or lose by its place in the object.
		if reservedMeta(string(k)) || string(k) == fanbridge.MetaCorrelationID {
			continue
		}
		val, err := stringValue("a metadata value", v)
		if err != nil {
			return nil, err
		}
		if len(pairs) == maxMetadata {
			return nil, fmt.Errorf("%w: metadata has more than %d entries", ErrInvalidField, maxMetadata)
		}
		pairs = append(pairs, metaPair{key: tab.add(k), value: tab.add(val)})
	}
	return pairs, nil
}

// checkMetaKey bounds a metadata key like a value and refuses an empty one.
func checkMetaKey(where string, k []byte) error {
	if len(k) == 0 {
		return fmt.Errorf("%w: %s has an empty key", ErrInvalidField, where)
	}
	if len(k) > 256 {
		return fmt.Errorf("%w: %s has a key longer than 256 bytes", ErrInvalidField, where)
	}
	if what := unsafeText(k); what != "" {
		return fmt.Errorf("%w: %s has a key with a %s", ErrInvalidField, where, what)
	}
	return nil
}

// decodeWebhookAttributes decodes {"id","eventType","timestamp","source","attributes"}.
func decodeWebhookAttributes(s *scanner) (*fanbridge.Event, error) {
	const (
		fID = iota
		fType
		fTimestamp
		fSource
		fAttributes
		nFields
	)
	var f [nFields]int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "id":
			return fID
		case "eventType":
			return fType
		case "timestamp":
			return fTimestamp
		case "source":
			return fSource
		case "attributes":
			return fAttributes
		}
		return -1
	}, webhookAttributeKeys)
	if err != nil {
		return nil, err
	}
	id, err := s.requiredString("id", f[fID])
	if err != nil {
		return nil, err
	}
	typ, err := s.requiredString("eventType", f[fType])
	if err != nil {
		return nil, err
	}
	source, err := s.optionalString("source", f[fSource])
	if err != nil {
		return nil, err
	}
	var t time.Time
	if i := f[fTimestamp]; i >= 0 {
		v := s.val(&s.members[i])
		if v[0] != '"' && (v[0] < '0' || v[0] > '9') {
			return nil, wrongType("timestamp", "a string or a number", v)
		}
		var ok bool
		if t, ok = parseEventTime(v); !ok {
			return nil, fmt.Errorf("%w: timestamp is neither RFC 3339 nor epoch milliseconds of the years 0001 to 9999", ErrInvalidField)
		}
	}
	if f[fAttributes] < 0 {
		return nil, missing("attributes")
	}
	tab := &s.strs
	hID, hType, hSource := tab.add(id), tab.add(typ), tab.add(source)
	tab.build()
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Source:   tab.get(hSource),
		Time:     t,
		Data:     s.val(&s.members[f[fAttributes]]),
		Metadata: map[string]string{fanbridge.MetaFormat: string(FormatWebhookAttributes)},
		Raw:      s.buf,
	}, nil
}
