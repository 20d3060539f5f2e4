package eventbridge

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/fanbridge/fanbridge"
)

// Metadata keys the CloudEvents decoder sets besides extensions.
const (
	// MetaDataContentType holds a CloudEvent's datacontenttype attribute.
	MetaDataContentType = "datacontenttype"
	// MetaDataSchema holds a CloudEvent's dataschema attribute.
	MetaDataSchema = "dataschema"
	// MetaDataBase64 is "true" when a CloudEvent's data_base64 did not hold JSON: Event.Data is
	// then the base64 text as a JSON string, for the consumer to decode.
	MetaDataBase64 = "database64"
)

// cloudEventKeys are the CloudEvents attributes read by name (see fields).
var cloudEventKeys = []string{"specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64"}

// decodeCloudEvents decodes a CloudEvents 1.0 event in structured JSON mode.
func decodeCloudEvents(s *scanner) (*fanbridge.Event, error) {
	const (
		fSpec = iota
		fID
		fSource
		fType
		fContentType
		fSchema
		fSubject
		fTime
		fData
		fDataBase64
		nFields
	)
	var f [nFields]int32
	var extensions []int32
	err := s.root().fields("", f[:], func(k []byte) int {
		switch string(k) {
		case "specversion":
			return fSpec
		case "id":
			return fID
		case "source":
			return fSource
		case "type":
			return fType
		case "datacontenttype":
			return fContentType
		case "dataschema":
			return fSchema
		case "subject":
			return fSubject
		case "time":
			return fTime
		case "data":
			return fData
		case "data_base64":
			return fDataBase64
		}
		return -1
	}, cloudEventKeys)
	if err != nil {
		return nil, err
	}
	spec, err := s.requiredString("specversion", f[fSpec])
	if err != nil {
		return nil, err
	}
	if string(spec) != "1.0" {
		return nil, fmt.Errorf("%w: specversion must be \"1.0\"", ErrInvalidField)
	}
	id, err := s.requiredString("id", f[fID])
	if err != nil {
		return nil, err
	}
	source, err := s.requiredString("source", f[fSource])
	if err != nil {
		return nil, err
	}
	typ, err := s.requiredString("type", f[fType])
	if err != nil {
		return nil, err
	}
	contentType, err := s.optionalString("datacontenttype", f[fContentType])
	if err != nil {
		return nil, err
	}
	schema, err := s.optionalString("dataschema", f[fSchema])
	if err != nil {
		return nil, err
	}
	subject, err := s.optionalString("subject", f[fSubject])
	if err != nil {
		return nil, err
	}
	t, err := s.optionalTime("time", f[fTime])
	if err != nil {
		return nil, err
	}
	if f[fData] >= 0 && f[fDataBase64] >= 0 {
		return nil, fmt.Errorf("%w: data and data_base64 are both present", ErrInvalidField)
	}
	var data []byte
	base64Kept := false
	switch {
	case f[fData] >= 0:
		data = s.val(&s.members[f[fData]])
	case f[fDataBase64] >= 0:
		if data, base64Kept, err = decodeDataBase64(s.val(&s.members[f[fDataBase64]]), contentType); err != nil {
			return nil, err
		}
	}

	// Every other top-level member is an extension attribute.
	seen := make(map[string]struct{})
	for i := range s.members {
		m := &s.members[i]
		if m.parent != -1 {
			continue
		}
		k := s.key(m)
		if isContextAttribute(k) {
			continue
		}
		if _, dup := seen[string(k)]; dup {
			return nil, fmt.Errorf("%w: duplicate extension attribute", ErrInvalidField)
		}
		seen[string(k)] = struct{}{}
		if !validExtensionName(k) {
			return nil, fmt.Errorf("%w: extension attribute names must be 1 to 64 of a-z and 0-9", ErrInvalidField)
		}
		if reservedMeta(string(k)) {
			// Only envelope facts set these (account and region feed WithAllowedAccounts), and
			// database64 only the decoder: a sender's extension cannot claim them.
			continue
		}
		if len(extensions) == maxMetadata {
			return nil, fmt.Errorf("%w: more than %d extension attributes", ErrInvalidField, maxMetadata)
		}
		extensions = append(extensions, int32(i))
	}

	tab := &s.strs
	hID, hSource, hType, hSubject := tab.add(id), tab.add(source), tab.add(typ), tab.add(subject)
	hContentType, hSchema := tab.add(contentType), tab.add(schema)
	pairs := make([]metaPair, 0, len(extensions))
	for _, i := range extensions {
		m := &s.members[i]
		v := s.val(m)
		var val []byte
		switch v[0] {
		case 'n':
			continue
		case '{', '[':
			return nil, fmt.Errorf("%w: extension attributes must be strings, numbers or booleans", ErrInvalidField)
		case '"':
			if val, err = stringValue("an extension attribute", v); err != nil {
				return nil, err
			}
		default:
			if len(v) > maxAttrLen {
				return nil, fmt.Errorf("%w: an extension attribute is longer than %d bytes", ErrInvalidField, maxAttrLen)
			}
			val = v // a number or boolean keeps its JSON text
		}
		pairs = append(pairs, metaPair{key: tab.add(s.key(m)), value: tab.add(val)})
	}
	tab.build()

	md := make(map[string]string, len(pairs)+3)
	for _, p := range pairs {
		md[tab.get(p.key)] = tab.get(p.value)
	}
	setMeta(md, MetaDataContentType, tab.get(hContentType))
	setMeta(md, MetaDataSchema, tab.get(hSchema))
	if base64Kept {
		md[MetaDataBase64] = "true"
	}
	checkTraceMetadata(md)
	md[fanbridge.MetaFormat] = string(FormatCloudEvents)
	return &fanbridge.Event{
		ID:       tab.get(hID),
		Type:     tab.get(hType),
		Topic:    tab.get(hSubject),
		Source:   tab.get(hSource),
		Time:     t,
		Data:     data,
		Metadata: md,
		Raw:      s.buf,
	}, nil
}

func isContextAttribute(k []byte) bool {
	switch string(k) {
	case "specversion", "id", "source", "type", "datacontenttype", "dataschema", "subject", "time",
		"data", "data_base64":
		return true
	}
	return false
}

func validExtensionName(k []byte) bool {
	if len(k) == 0 || len(k) > 64 {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// decodeDataBase64 turns data_base64 into Data. When the content type is JSON (or absent) and the
// decoded bytes are one valid JSON document, Data is those bytes; otherwise Data keeps the base64
// JSON string as it came, and kept reports it.
func decodeDataBase64(v, contentType []byte) (data []byte, kept bool, err error) {
	if v[0] != '"' {
		return nil, false, wrongType("data_base64", "a string", v)
	}
	raw := v[1 : len(v)-1]
	if bytes.IndexByte(raw, '\\') >= 0 {
		raw = unescape(raw)
	}
	decoded := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Decode(decoded, raw)
	if err != nil {
		return nil, false, fmt.Errorf("%w: data_base64 is not valid base64", ErrInvalidField)
	}
	decoded = decoded[:n]
	if isJSONContentType(string(contentType)) {
		sub := getScanner()
		valid := sub.scan(decoded) == nil
		putScanner(sub)
		if valid {
			return decoded, false, nil
		}
	}
	return v, true, nil
}

// isJSONContentType reports whether a datacontenttype names JSON: absent (CloudEvents' JSON
// format defaults to application/json), application/json, text/json, or a +json suffix.
func isJSONContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "" || mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json")
}
