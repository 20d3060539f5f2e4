package eventbridge

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/fanbridge/fanbridge"
)

// maxBinaryHeaders bounds the ce-* headers of one request in binary content mode: the core
// attributes, one traceparent and tracestate, and at most maxMetadata extensions.
const maxBinaryHeaders = maxMetadata + 8

// DecodeCloudEventsBinary decodes a CloudEvent sent in the HTTP binding's binary content mode,
// with the default Decoder: see Decoder.DecodeCloudEventsBinary.
func DecodeCloudEventsBinary(header http.Header, body []byte) (*fanbridge.Event, error) {
	return defaultDecoder.DecodeCloudEventsBinary(header, body)
}

// DecodeCloudEventsBinary decodes a CloudEvent sent in the HTTP binding's binary content mode:
// its attributes in ce-* headers (ce-specversion, ce-id, ce-source, ce-type, ...), its
// datacontenttype in Content-Type and its data as the body. The event is the one the same
// attributes and data would make in structured mode (see the package documentation), with the
// same checks; its Raw is that structured rendering, so that a dead-letter queue keeps a body
// that decodes again without the headers, and Data a sub-slice of it.
//
// Header names are matched ignoring case, and the attribute name is the rest of the name in
// lower case: it must be one CloudEvents allows (a-z and 0-9), and each may come only once. A
// value may be a quoted-string (RFC 9110), and is then percent-decoded, as the binding asks: %XX
// becomes the byte XX, a % without two hex digits after it stays, and a value that is not UTF-8
// once decoded is refused. ce-datacontenttype (the binding forbids it beside Content-Type) and
// ce-data (the data is the body) are refused.
//
// Some senders do not percent-encode: the Go SDK (sdk-go, up to v2.15 at least) and the Java SDK
// write values as they are, and a value of theirs that holds %XX ("order%2F1") reaches the event
// decoded ("order/1"), its ID or source changed. Have such senders use structured mode, where
// nothing is encoded twice.
//
// The body becomes data: as it is when the Content-Type is JSON (application/json, text/json,
// a +json suffix, or none) and the body is one JSON document; as a JSON string when the
// Content-Type is text/* and the body is UTF-8; otherwise as data_base64, so that Data is the
// base64 text as a JSON string and Metadata[MetaDataBase64] is "true". A body that is not JSON
// under a Content-Type that says it is, is refused. An empty body is an event without data.
//
// d must accept FormatCloudEvents. Errors wrap ErrInvalidField, ErrMalformed or
// ErrUnknownFormat; they name the attribute, never its value.
func (d *Decoder) DecodeCloudEventsBinary(header http.Header, body []byte) (*fanbridge.Event, error) {
	return d.decodeBinary(context.Background(), header, body)
}

func (d *Decoder) decodeBinary(ctx context.Context, header http.Header, body []byte) (*fanbridge.Event, error) {
	if d.formats&formatBit(FormatCloudEvents) == 0 {
		return nil, fmt.Errorf("%w: %s envelopes are not accepted here", ErrUnknownFormat, FormatCloudEvents)
	}
	doc, err := structuredFromBinary(header, body)
	if err != nil {
		return nil, err
	}
	return d.decode(ctx, doc, mediaCloudEvents)
}

// binaryAttr is one attribute read from a ce-* header.
type binaryAttr struct {
	name, value string
}

// structuredFromBinary renders a binary-mode CloudEvent as the same event in structured JSON
// mode: specversion first, then the other attributes by name, datacontenttype, and data last.
func structuredFromBinary(header http.Header, body []byte) ([]byte, error) {
	var attrs []binaryAttr
	for k, vs := range header {
		if len(k) < 3 || !strings.EqualFold(k[:3], "ce-") {
			continue
		}
		name := strings.ToLower(k[3:])
		if !validExtensionName([]byte(name)) {
			return nil, fmt.Errorf("%w: header %q does not name a CloudEvents attribute (a-z and 0-9 after ce-, at most 64)",
				ErrInvalidField, headerName(k))
		}
		switch name {
		case "datacontenttype":
			return nil, fmt.Errorf("%w: ce-datacontenttype is not allowed in binary mode: the Content-Type header is the datacontenttype",
				ErrInvalidField)
		case "data":
			return nil, fmt.Errorf("%w: ce-data is not allowed in binary mode: the body is the data", ErrInvalidField)
		}
		if len(vs) != 1 {
			return nil, fmt.Errorf("%w: header ce-%s comes more than once", ErrInvalidField, name)
		}
		if len(attrs) == maxBinaryHeaders {
			return nil, fmt.Errorf("%w: more than %d ce-* headers", ErrInvalidField, maxBinaryHeaders)
		}
		attrs = append(attrs, binaryAttr{name: name, value: vs[0]})
	}
	slices.SortFunc(attrs, func(a, b binaryAttr) int {
		// specversion first, as a reader looking at the rendering expects it.
		switch {
		case a.name == b.name:
			return 0
		case a.name == "specversion":
			return -1
		case b.name == "specversion":
			return 1
		}
		return strings.Compare(a.name, b.name)
	})
	for i := 1; i < len(attrs); i++ {
		if attrs[i].name == attrs[i-1].name { // two header keys that differ only in case
			return nil, fmt.Errorf("%w: header ce-%s comes more than once", ErrInvalidField, attrs[i].name)
		}
	}
	var contentType string
	switch cts := headerValues(header, "Content-Type"); len(cts) {
	case 0:
	case 1:
		contentType = cts[0]
	default:
		return nil, fmt.Errorf("%w: Content-Type comes more than once", ErrInvalidField)
	}
	if len(attrs) == 0 || attrs[0].name != "specversion" {
		return nil, fmt.Errorf("%w: ce-specversion header is required in binary mode", ErrInvalidField)
	}

	doc := make([]byte, 0, 128+len(body)+len(body)/3)
	doc = append(doc, '{')
	for i, a := range attrs {
		v, err := headerAttrValue(a.value)
		if err != nil {
			return nil, fmt.Errorf("%w: header ce-%s: %s", ErrInvalidField, a.name, err)
		}
		if i > 0 {
			doc = append(doc, ',')
		}
		doc = appendJSONString(doc, a.name)
		doc = append(doc, ':')
		doc = appendJSONString(doc, v)
	}
	if contentType != "" {
		doc = append(doc, `,"datacontenttype":`...)
		doc = appendJSONString(doc, contentType)
	}
	if len(body) > 0 {
		switch {
		case isJSONContentType(contentType):
			s := getScanner()
			err := s.scan(body)
			putScanner(s)
			if err == nil {
				doc = append(doc, `,"data":`...)
				doc = append(doc, body...)
				break
			}
			if contentType != "" {
				return nil, fmt.Errorf("%w: the body is not the JSON its Content-Type names: %s", ErrMalformed, err)
			}
			doc = appendBase64Data(doc, body)
		case isTextContentType(contentType) && utf8.Valid(body):
			doc = append(doc, `,"data":`...)
			doc = appendJSONString(doc, string(body))
		default:
			doc = appendBase64Data(doc, body)
		}
	}
	return append(doc, '}'), nil
}

func appendBase64Data(doc, body []byte) []byte {
	doc = append(doc, `,"data_base64":"`...)
	doc = base64.StdEncoding.AppendEncode(doc, body)
	return append(doc, '"')
}

// isTextContentType reports whether a media type is text/* (other than text/json, which is JSON).
func isTextContentType(ct string) bool {
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.TrimSpace(mt)
	return len(mt) > 5 && strings.EqualFold(mt[:5], "text/")
}

// headerValues returns the values of header key, however the map spells it.
func headerValues(h http.Header, key string) []string {
	if vs, ok := h[key]; ok {
		return vs
	}
	var out []string
	for k, vs := range h {
		if strings.EqualFold(k, key) {
			out = append(out, vs...)
		}
	}
	return out
}

// headerName shows a header name in an error: only its printable ASCII, at most 70 bytes.
func headerName(k string) string {
	var b strings.Builder
	for i := 0; i < len(k) && b.Len() < 70; i++ {
		if c := k[i]; c > ' ' && c < 0x7f {
			b.WriteByte(c)
		} else {
			b.WriteByte('?')
		}
	}
	return b.String()
}

// headerAttrValue decodes a ce-* header value as the binding asks: a quoted-string is unquoted
// first, then one round of percent-decoding is done, and the result must be UTF-8.
func headerAttrValue(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		inner := v[1 : len(v)-1]
		for i := 0; i < len(inner); i++ {
			c := inner[i]
			switch c {
			case '\\':
				if i+1 == len(inner) {
					return "", fmt.Errorf("the quoted value ends in a backslash")
				}
				i++
				c = inner[i]
			case '"':
				return "", fmt.Errorf("a double quote inside the quoted value is not escaped")
			}
			b.WriteByte(c)
		}
		v = b.String()
	}
	if strings.IndexByte(v, '%') >= 0 {
		out := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			c := v[i]
			// A % without two hex digits after it stays as it is: the SDKs that do not
			// percent-encode send "100% done" so, and refusing it would lose the event.
			if c == '%' && i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
				c = unhex(v[i+1])<<4 | unhex(v[i+2])
				i += 2
			}
			out = append(out, c)
		}
		v = string(out)
	}
	if !utf8.ValidString(v) {
		return "", fmt.Errorf("the value is not UTF-8 once percent-decoded")
	}
	return v, nil
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
