package lossless_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Sink names, as the Dispatcher, its routes and the dead-letter entries know them.
const (
	sinkKafka = "kafka"
	sinkA     = "grpc-a"
	sinkB     = "grpc-b"
)

var allSinks = []string{sinkKafka, sinkA, sinkB}

// kind is one Genesys sample and where its events must end up.
type kind struct {
	file  string
	sinks []string // the sinks the routes below name for it, worked out by hand
	topic string   // its Kafka topic, when it goes to Kafka
}

// kinds vary detail-type (and, for the two audit samples, the body) so that routes differ: one
// kind goes everywhere, the others to subsets.
var kinds = []kind{
	{file: "v2.detail.events.conversation.customer.end.json", sinks: []string{sinkKafka, sinkA, sinkB}, topic: "genesys.conversation.end"},
	{file: "v2.detail.events.conversation.customer.start.json", sinks: []string{sinkKafka, sinkA}, topic: "genesys.conversation.start"},
	{file: "v2.audits.entitytype.UserPresence.update.json", sinks: []string{sinkKafka, sinkB}, topic: "genesys.audits"},
	{file: "v2.conversations.transcription.json", sinks: []string{sinkA, sinkB}},
	{file: "v2.audits.entitytype.OAuthClient.delete.json", sinks: []string{sinkKafka}, topic: "genesys.audits"},
}

// kafkaTopics maps Event.Type (the detail-type) to a topic, for kafkasink.WithTopicByType.
var kafkaTopics = map[string]string{
	"v2.detail.events.conversation.{id}.customer.end":   "genesys.conversation.end",
	"v2.detail.events.conversation.{id}.customer.start": "genesys.conversation.start",
	"v2.audits.entitytype.{id}.entityid.{id}":           "genesys.audits",
}

// routeDef is a fanout route as JSON pattern text, kept here so the reconciliation can check the
// route named in each dead-letter entry.
type routeDef struct {
	name    string
	pattern string
	sinks   []string
}

var routeDefs = []routeDef{
	{"conversation-end", `{"detail-type":[{"suffix":".customer.end"}]}`, []string{sinkKafka, sinkA, sinkB}},
	{"conversation-start", `{"detail-type":["v2.detail.events.conversation.{id}.customer.start"]}`, []string{sinkKafka, sinkA}},
	{"presence", `{"detail":{"eventBody":{"entityType":["UserPresence"]}}}`, []string{sinkKafka, sinkB}},
	{"transcripts", `{"detail-type":[{"suffix":".transcription"}]}`, []string{sinkA, sinkB}},
	{"audits", `{"source":[{"prefix":"aws.partner/genesys.com/"}],"detail-type":[{"prefix":"v2.audits."}]}`, []string{sinkKafka}},
}

// sentEvent is one event the senders post.
type sentEvent struct {
	idx  int
	id   string
	kind int
	body []byte
}

// corpus is every event of a run, with their ids unique within the run.
type corpus struct {
	events []sentEvent
	byID   map[string]int
	forged []sentEvent // posted with a wrong key: must be refused and found nowhere
}

// template is a sample made compact (as EventBridge posts it), with its top-level id split out.
type template struct {
	prefix, suffix []byte
}

func loadTemplates(t testing.TB) []template {
	t.Helper()
	out := make([]template, len(kinds))
	for i, k := range kinds {
		raw, err := os.ReadFile(filepath.Join("testdata", k.file))
		if err != nil {
			t.Fatalf("reading sample: %v", err)
		}
		var env struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(raw, &env); err != nil || env.ID == "" {
			t.Fatalf("sample %s has no top-level id: %v", k.file, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			t.Fatalf("compacting %s: %v", k.file, err)
		}
		// The top-level id comes right after "version" in every sample; it is the first
		// occurrence of this exact member, which the check below makes sure of.
		member := []byte(`"id":"` + env.ID + `"`)
		at := bytes.Index(buf.Bytes(), member)
		if at < 0 || bytes.Count(buf.Bytes(), member) != 1 {
			t.Fatalf("sample %s: id member not found exactly once", k.file)
		}
		b := buf.Bytes()
		out[i] = template{
			prefix: append([]byte(nil), b[:at+len(`"id":"`)]...),
			suffix: append([]byte(nil), b[at+len(member)-1:]...),
		}
	}
	return out
}

func (tp template) with(id string) []byte {
	b := make([]byte, 0, len(tp.prefix)+len(id)+len(tp.suffix))
	b = append(b, tp.prefix...)
	b = append(b, id...)
	return append(b, tp.suffix...)
}

// newCorpus builds n events cycling through the kinds, each with an id of its own that looks
// like the UUIDs EventBridge assigns.
func newCorpus(t testing.TB, run string, n int) *corpus {
	t.Helper()
	tps := loadTemplates(t)
	c := &corpus{events: make([]sentEvent, n), byID: make(map[string]int, n)}
	for i := range n {
		id := fmt.Sprintf("%s-0000-4000-8000-%012d", run, i)
		k := i % len(kinds)
		c.events[i] = sentEvent{idx: i, id: id, kind: k, body: tps[k].with(id)}
		c.byID[id] = i
	}
	for i := range 16 {
		id := fmt.Sprintf("%s-0000-4000-8000-f%011d", run, i)
		k := i % len(kinds)
		c.forged = append(c.forged, sentEvent{idx: -1, id: id, kind: k, body: tps[k].with(id)})
	}
	return c
}

func (c *corpus) wants(idx int, sinkName string) bool {
	for _, s := range kinds[c.events[idx].kind].sinks {
		if s == sinkName {
			return true
		}
	}
	return false
}

// Deterministic subsets of events that the consumers treat specially, by index.

// rejectedByA: consumer A refuses these permanently (retry.Permanent, FailedPrecondition).
func rejectedByA(idx int) bool { return idx%97 == 13 }

// rejectedByB: consumer B refuses these with an explicit InvalidArgument status.
func rejectedByB(idx int) bool { return idx%149 == 5 }

// lateAtA: consumer A takes these on the first attempt only after the caller gave up, so the
// answer is lost although the event landed: the textbook at-least-once duplicate.
func lateAtA(idx int) bool { return idx%211 == 7 }
