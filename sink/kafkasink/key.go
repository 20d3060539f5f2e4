package kafkasink

import (
	"encoding/json"
	"strings"

	"github.com/fanbridge/fanbridge"
)

// KeyFunc chooses the record key of an event. Kafka keeps records with the same key in one
// partition, in order. An empty key produces a record without a key, which the client spreads
// over partitions.
type KeyFunc func(e *fanbridge.Event) string

// KeyByID keys each record by the event ID. It is the default: a redelivered event lands in the
// same partition as its first copy, where a consumer can spot the duplicate.
func KeyByID(e *fanbridge.Event) string { return e.ID }

// NoKey produces records without a key, for the widest spread over partitions.
func NoKey(*fanbridge.Event) string { return "" }

// ConversationKey keys each record by the Genesys conversation it belongs to, so that all events of
// one conversation stay in one partition, in order. It reads the id from the concrete topic
// ("v2.detail.events.conversation.<id>.customer.end", "v2.conversations.<id>.transcription"), then
// from the body's top-level "conversationId"; an event with neither is keyed by its ID.
func ConversationKey(e *fanbridge.Event) string {
	return entityKey(e, "conversationId", "conversation", "conversations")
}

// UserKey keys each record by the Genesys user it concerns, so that one agent's presence and
// activity changes stay in order. It reads the id from the concrete topic ("v2.users.<id>.presence"),
// then from the body's top-level "userId" (as in "user.end" detail events); an event with neither
// is keyed by its ID. An audit of a user or of a user's presence
// ("v2.audits.entitytype.UserPresence.entityid.<id>") concerns the audited user, named by the
// topic's entityid or the body's entity.id: its body's userId is whoever made the change (a
// supervisor, an administrator), so it is not read.
func UserKey(e *fanbridge.Event) string {
	if id, ok := auditedUser(e); ok {
		return id
	}
	return entityKey(e, "userId", "users", "user")
}

// auditPrefix begins the topic of every audit event: v2.audits.entitytype.<type>.entityid.<id>.
const auditPrefix = "v2.audits.entitytype."

// auditedUser returns the user an audit of a User or UserPresence entity is about, and whether e
// is such an audit.
func auditedUser(e *fanbridge.Event) (string, bool) {
	if !strings.HasPrefix(e.Topic, auditPrefix) && !strings.HasPrefix(e.Type, auditPrefix) {
		return "", false
	}
	for _, t := range []string{e.Topic, e.Type} {
		entityType, id, ok := strings.Cut(strings.TrimPrefix(t, auditPrefix), ".entityid.")
		if ok && userEntity(entityType) && looksLikeID(id) {
			return id, true
		}
	}
	var body struct {
		EntityType string `json:"entityType"`
		Entity     struct {
			ID string `json:"id"`
		} `json:"entity"`
	}
	if json.Unmarshal(e.Data, &body) != nil || !userEntity(body.EntityType) {
		return "", false
	}
	if body.Entity.ID == "" {
		return e.ID, true // about a user, but not saying which: never the one who made the change
	}
	return body.Entity.ID, true
}

// userEntity reports whether an audit's entity type is a user's.
func userEntity(t string) bool { return t == "User" || t == "UserPresence" }

func entityKey(e *fanbridge.Event, bodyField string, segments ...string) string {
	if id := idAfterSegment(e.Topic, segments...); id != "" {
		return id
	}
	if id := idAfterSegment(e.Type, segments...); id != "" {
		return id
	}
	if id := bodyString(e.Data, bodyField); id != "" {
		return id
	}
	return e.ID
}

// idAfterSegment returns the dot-separated segment of topic that follows one of names and looks
// like an entity id, or "". Template placeholders such as "{id}" do not look like ids.
func idAfterSegment(topic string, names ...string) string {
	prev := ""
	for topic != "" {
		seg, rest, _ := strings.Cut(topic, ".")
		for _, n := range names {
			if prev == n && looksLikeID(seg) {
				return seg
			}
		}
		prev, topic = seg, rest
	}
	return ""
}

// looksLikeID accepts hex digits and hyphens, at least 8 of them: Genesys ids are UUIDs, and words
// that follow an entity name in a topic ("calls", "end") are not hex.
func looksLikeID(s string) bool {
	if len(s) < 8 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' || c == '-') {
			return false
		}
	}
	return true
}

// bodyString returns the top-level string field name of the JSON object data, or "".
func bodyString(data json.RawMessage, name string) string {
	if len(data) == 0 {
		return ""
	}
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return ""
	}
	raw, ok := fields[name]
	if !ok {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
