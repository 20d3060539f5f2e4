package eventbridge

import (
	"bufio"
	_ "embed"
	"strings"

	"github.com/fanbridge/fanbridge"
)

// Topics that are not events but belong to the notification channel itself.
const (
	// TopicHeartbeat is the topic of the WebSocket heartbeat Genesys sends about every 30 s.
	TopicHeartbeat = "channel.metadata"
	// TopicSocketClosing announces that Genesys will close the WebSocket soon (maintenance); the
	// client has about a minute to open a new channel.
	TopicSocketClosing = "v2.system.socket_closing"
)

// topicsFile is Genesys' list of notification topics, one per line: the topic template
// ("{id}" stands for any entity id), a space, and the model name of its eventBody.
//
//go:embed topics.txt
var topicsFile string

// topicNode is one level of the template trie: literal segments first, then the "{id}" wildcard.
type topicNode struct {
	literal  map[string]*topicNode
	wildcard *topicNode
	template string // set when a template ends at this node
}

var (
	topicRoot      = buildTopicTrie(topicsFile)
	topicTemplates []string
)

func buildTopicTrie(list string) *topicNode {
	root := &topicNode{}
	sc := bufio.NewScanner(strings.NewReader(list))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		tmpl, _, _ := strings.Cut(line, " ")
		topicTemplates = append(topicTemplates, tmpl)
		n := root
		for seg := range strings.SplitSeq(tmpl, ".") {
			if seg == "{id}" {
				if n.wildcard == nil {
					n.wildcard = &topicNode{}
				}
				n = n.wildcard
				continue
			}
			if n.literal == nil {
				n.literal = make(map[string]*topicNode)
			}
			next := n.literal[seg]
			if next == nil {
				next = &topicNode{}
				n.literal[seg] = next
			}
			n = next
		}
		n.template = tmpl
	}
	return root
}

// KnownTopics returns the topic templates fanbridge knows, in the order Genesys lists them. The
// caller owns the returned slice.
func KnownTopics() []string {
	return append([]string(nil), topicTemplates...)
}

// TopicTemplate maps a concrete Genesys topic to its template, the form EventBridge uses as
// detail-type and routes match on: "v2.users.8d0c….activity" becomes "v2.users.{id}.activity".
// Known templates are matched segment by segment, literal segments before "{id}" (so
// "v2.audits.entitytype.UserPresence.entityid.<uuid>" maps to
// "v2.audits.entitytype.{id}.entityid.{id}"). A topic no template matches keeps its segments,
// except that UUID-shaped ones become "{id}". A topic that already is a template is returned as is.
func TopicTemplate(topic string) string {
	if t, ok := matchTopic(topicRoot, topic); ok {
		return t
	}
	return replaceUUIDs(topic)
}

// matchTopic walks the trie without allocating; it backtracks to "{id}" when a literal path fails.
func matchTopic(n *topicNode, rest string) (string, bool) {
	seg, tail, more := strings.Cut(rest, ".")
	if next := n.literal[seg]; next != nil {
		if !more {
			if next.template != "" {
				return next.template, true
			}
		} else if t, ok := matchTopic(next, tail); ok {
			return t, true
		}
	}
	if n.wildcard != nil && seg != "" {
		if !more {
			if n.wildcard.template != "" {
				return n.wildcard.template, true
			}
		} else if t, ok := matchTopic(n.wildcard, tail); ok {
			return t, true
		}
	}
	return "", false
}

func replaceUUIDs(topic string) string {
	found := false
	for seg := range strings.SplitSeq(topic, ".") {
		if isUUID(seg) {
			found = true
			break
		}
	}
	if !found {
		return topic
	}
	var b strings.Builder
	b.Grow(len(topic))
	first := true
	for seg := range strings.SplitSeq(topic, ".") {
		if !first {
			b.WriteByte('.')
		}
		first = false
		if isUUID(seg) {
			b.WriteString("{id}")
		} else {
			b.WriteString(seg)
		}
	}
	return b.String()
}

// isUUID reports whether s has the 8-4-4-4-12 hex shape of a UUID (any version, any case).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// IsHeartbeat reports whether e is a WebSocket heartbeat (topic "channel.metadata") rather than an
// event. Intakes that read the WebSocket drop heartbeats instead of dispatching them.
func IsHeartbeat(e *fanbridge.Event) bool {
	return e != nil && e.Topic == TopicHeartbeat
}

// IsSocketClosing reports whether e announces that Genesys is about to close the WebSocket.
func IsSocketClosing(e *fanbridge.Event) bool {
	return e != nil && e.Topic == TopicSocketClosing
}
