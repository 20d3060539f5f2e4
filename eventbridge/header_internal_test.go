package eventbridge

import (
	"mime"
	"strings"
	"testing"
)

// FuzzParseMediaType holds parseMediaType to the standard library's parser: a Content-Type that
// mime.ParseMediaType reads as JSON or CloudEvents JSON, with no charset or UTF-8, is accepted as
// that media type; one it reads as anything else is refused.
func FuzzParseMediaType(f *testing.F) {
	for _, s := range []string{
		"", "application/json", "APPLICATION/JSON", "application/json; charset=utf-8",
		`application/json; charset="UTF-8"`, "application/json;charset=latin1",
		"application/cloudevents+json", "application/cloudevents+json; charset=utf8",
		"text/plain", "application/json-seq", "application/jsonx", " application/json ; q=1",
		"application/json; charset=utf-8; charset=latin1", ";", "application/json;;",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		got, err := parseMediaType(ct)
		mt, params, mimeErr := mime.ParseMediaType(ct)
		if mimeErr != nil {
			return // not a well-formed Content-Type: ours may be more lenient
		}
		charset, hasCharset := params["charset"]
		utf8 := !hasCharset || strings.EqualFold(charset, "utf-8") || strings.EqualFold(charset, "utf8")
		switch {
		case mt == "application/json" && utf8:
			if err != nil || got != mediaJSON {
				t.Fatalf("%q: got %v, %v; want JSON", ct, got, err)
			}
		case mt == "application/cloudevents+json" && utf8:
			if err != nil || got != mediaCloudEvents {
				t.Fatalf("%q: got %v, %v; want CloudEvents", ct, got, err)
			}
		default:
			if err == nil {
				t.Fatalf("%q (media type %q, charset %q) accepted as %v", ct, mt, charset, got)
			}
		}
	})
}
