//go:build unix

package bench_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The tutorial pipeline: a plain net/http handler written the way blog posts and vendor tutorials
// write a webhook receiver. It reads the body with io.ReadAll, builds an HMAC per request,
// unmarshals the envelope into map[string]any, loops over 1,000 map-based filters that walk dotted
// paths through the decoded maps, and produces with franz-go's ProduceSync, answering once the
// broker acknowledged. Nothing in it is deliberately slow; it is simply the obvious code.

// tutorialFilter is a routing rule as tutorials keep them, usually loaded from a JSON or YAML
// file: a map from a dotted field path to what the field must be. A want is a list of accepted
// strings, {"prefix": s}, {"gte": lo, "lt": hi} or {"not": list}.
type tutorialFilter struct {
	Name  string
	Where map[string]any
}

func tutorialFilters(rules []rule) []tutorialFilter {
	out := make([]tutorialFilter, len(rules))
	for i, r := range rules {
		where := make(map[string]any, len(r.conds))
		for _, c := range r.conds {
			switch c.kind {
			case condOneOf:
				vals := make([]any, len(c.values))
				for j, v := range c.values {
					vals[j] = v
				}
				where[c.path] = vals
			case condPrefix:
				where[c.path] = map[string]any{"prefix": c.prefix}
			case condRange:
				where[c.path] = map[string]any{"gte": c.lo, "lt": c.hi}
			case condAnythingBut:
				vals := make([]any, len(c.values))
				for j, v := range c.values {
					vals[j] = v
				}
				where[c.path] = map[string]any{"not": vals}
			}
		}
		out[i] = tutorialFilter{Name: r.name, Where: where}
	}
	return out
}

// lookupPath walks a dotted path through decoded JSON objects.
func lookupPath(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for _, key := range strings.Split(path, ".") {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = obj[key]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func tutorialFilterMatches(doc map[string]any, f tutorialFilter) bool {
	for path, want := range f.Where {
		got, ok := lookupPath(doc, path)
		if !ok {
			return false
		}
		switch w := want.(type) {
		case []any:
			s, ok := got.(string)
			if !ok {
				return false
			}
			found := false
			for _, v := range w {
				if v == s {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		case map[string]any:
			if p, ok := w["prefix"]; ok {
				s, ok := got.(string)
				if !ok || !strings.HasPrefix(s, p.(string)) {
					return false
				}
			} else if lo, ok := w["gte"]; ok {
				n, ok := got.(float64)
				if !ok || n < lo.(float64) || n >= w["lt"].(float64) {
					return false
				}
			} else if not, ok := w["not"]; ok {
				switch v := got.(type) {
				case map[string]any, []any:
					return false
				case string:
					for _, x := range not.([]any) {
						if x == v {
							return false
						}
					}
				}
			}
		}
	}
	return true
}

// tutorialMatch returns the names of the filters the event matches, all of them, because each
// filter has its own targets in the tutorials' design.
func tutorialMatch(doc map[string]any, filters []tutorialFilter) []string {
	var matched []string
	for _, f := range filters {
		if tutorialFilterMatches(doc, f) {
			matched = append(matched, f.Name)
		}
	}
	return matched
}

// tutorialSignatureValid is the tutorials' check: a new HMAC per request, hex-encoded, compared
// with hmac.Equal.
func tutorialSignatureValid(secret, body []byte, header string) bool {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	expected := hex.EncodeToString(mac.Sum(nil))
	return hmac.Equal([]byte(expected), []byte(header))
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// newTutorialHandler is the whole tutorial receiver.
func newTutorialHandler(client *kgo.Client, topic string, secret []byte, filters []tutorialFilter) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /events", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "cannot read body"})
			return
		}
		if !tutorialSignatureValid(secret, body, r.Header.Get(signatureHeader)) {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid signature"})
			return
		}
		var envelope map[string]any
		if err := json.Unmarshal(body, &envelope); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON"})
			return
		}
		id, _ := envelope["id"].(string)
		detailType, _ := envelope["detail-type"].(string)
		if id == "" || detailType == "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid event"})
			return
		}
		if len(tutorialMatch(envelope, filters)) == 0 {
			writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
			return
		}
		record := &kgo.Record{
			Topic: topic,
			Key:   []byte(id),
			Value: body,
			Headers: []kgo.RecordHeader{
				{Key: "ce_id", Value: []byte(id)},
				{Key: "ce_type", Value: []byte(detailType)},
			},
		}
		if err := client.ProduceSync(r.Context(), record).FirstErr(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "kafka unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "delivered", "id": id})
	})
	return mux
}
