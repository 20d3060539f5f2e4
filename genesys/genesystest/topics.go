package genesystest

import (
	_ "embed"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// topicsTxt lists the notification topics of the official SDK's mappings: one "template model"
// pair a line.
//
//go:embed testdata/topics.txt
var topicsTxt string

type topicEntry struct {
	id, model  string
	transports []string
	segments   []string
}

var (
	topicsOnce sync.Once
	topicList  []topicEntry
)

// topics parses topicsTxt once. System topics travel only on WebSockets; everything else on all
// transports.
func topics() []topicEntry {
	topicsOnce.Do(func() {
		for _, line := range strings.Split(topicsTxt, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			e := topicEntry{id: f[0], transports: []string{"All"}, segments: strings.Split(f[0], ".")}
			if len(f) > 1 {
				e.model = f[1]
			}
			if strings.HasPrefix(e.id, "v2.system.") {
				e.transports = []string{"Websocket"}
			}
			topicList = append(topicList, e)
		}
	})
	return topicList
}

// Topics returns the topic templates the fake offers, as GET /api/v2/notifications/availabletopics
// lists them.
func Topics() []string {
	var out []string
	for _, t := range topics() {
		out = append(out, t.id)
	}
	return out
}

// matchTopic reports whether the concrete topic fits a template of the list: same segments, with
// "{id}" standing for any non-empty segment.
func matchTopic(concrete string) bool {
	segs := strings.Split(concrete, ".")
	for _, t := range topics() {
		if len(t.segments) != len(segs) {
			continue
		}
		ok := true
		for i, s := range t.segments {
			if s == "{id}" {
				if segs[i] == "" {
					ok = false
					break
				}
			} else if s != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (s *Server) handleTopics(w http.ResponseWriter, r *http.Request) {
	var expand []string
	for _, v := range r.URL.Query()["expand"] {
		expand = append(expand, strings.Split(v, ",")...)
	}
	entities := make([]map[string]any, 0, len(topics()))
	for _, t := range topics() {
		e := map[string]any{"id": t.id}
		if slices.Contains(expand, "description") {
			e["description"] = t.model
		}
		if slices.Contains(expand, "transports") {
			e["transports"] = t.transports
		}
		if slices.Contains(expand, "visibility") {
			e["visibility"] = "Public"
		}
		entities = append(entities, e)
	}
	s.writeJSON(w, http.StatusOK, map[string]any{"entities": entities})
}
