package filter_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/fanbridge/fanbridge"
	"github.com/fanbridge/fanbridge/internal/rulegen"
)

// genRule is one generated routing rule, as an event pattern and as the equivalent CEL
// expression (data is the event body, event.type the detail-type).
type genRule struct {
	name string
	src  []byte
	cel  string
}

var genSuffixes = []string{"customer.end", "customer.start", "user.end", "user.start", "acw", "wrapup", "flow.end", "outbound"}

// genesysRules generates n realistic routing rules. Large rule sets are large because of
// high-cardinality values (queues, divisions, organisations, wrap-up codes), not because of
// thousands of copies of one rule, so most rules pair a detail-type (a third of them one of the
// busy conversation topics, the rest any of the 237 topics) with such a value; others test media
// type and duration ranges, presence changes, direction, and use prefix, wildcard, anything-but and
// $or. Against a given event a few match and most do not.
func genesysRules(n int, seed uint64) []genRule {
	r := rand.New(rand.NewPCG(seed, 42))
	v := rulegen.New(r)
	pick, topic := v.Pick, v.Topic
	rules := make([]genRule, n)
	for i := range rules {
		t := topic()
		var src, cel string
		switch k := r.IntN(100); {
		case k < 35:
			q := pick(v.Queues)
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"queueId":[%q]}}}`, t, q)
			cel = fmt.Sprintf(`event.type == %q && data.queueId == %q`, t, q)
		case k < 50:
			m := pick(rulegen.Media)
			lo := (r.IntN(60) + 1) * 10000
			hi := lo + (r.IntN(30)+1)*10000
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"mediaType":[%q],"interactingDurationMs":[{"numeric":[">=",%d,"<",%d]}]}}}`, t, m, lo, hi)
			cel = fmt.Sprintf(`event.type == %q && data.mediaType == %q && data.interactingDurationMs >= %d && data.interactingDurationMs < %d`, t, m, lo, hi)
		case k < 60:
			d := pick(v.Divisions)
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"divisionId":[%q]}}}`, t, d)
			cel = fmt.Sprintf(`event.type == %q && data.divisionId == %q`, t, d)
		case k < 68:
			dots := strings.Split(t, ".")
			p := strings.Join(dots[:len(dots)-1], ".") + "."
			q := pick(v.Queues)
			src = fmt.Sprintf(`{"detail-type":[{"prefix":%q}],"detail":{"eventBody":{"queueId":[%q]}}}`, p, q)
			cel = fmt.Sprintf(`event.type.startsWith(%q) && data.queueId == %q`, p, q)
		case k < 76:
			w1, w2 := pick(v.Wrapups), pick(v.Wrapups)
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"wrapupCode":[%q,%q]}}}`, t, w1, w2)
			cel = fmt.Sprintf(`event.type == %q && data.wrapupCode in [%q, %q]`, t, w1, w2)
		case k < 81:
			s, m := pick(genSuffixes), pick(rulegen.Media)
			src = fmt.Sprintf(`{"detail":{"topicName":[{"wildcard":"v2.detail.events.conversation.*.%s"}],"eventBody":{"mediaType":[%q],"direction":["INBOUND"]}}}`, s, m)
			cel = fmt.Sprintf(`event.topic.startsWith("v2.detail.events.conversation.") && event.topic.endsWith(".%s") && data.mediaType == %q && data.direction == "INBOUND"`, s, m)
		case k < 86:
			org := pick(v.Orgs)
			src = fmt.Sprintf(`{"source":[{"prefix":"aws.partner/genesys.com/cloud/%s/"}],"detail-type":[%q]}`, org, t)
			cel = fmt.Sprintf(`event.source.startsWith("aws.partner/genesys.com/cloud/%s/") && event.type == %q`, org, t)
		case k < 90:
			p := pick([]string{"Available", "Busy", "Away", "Break", "Meal", "Training", "Meeting", "Offline"})
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"propertyChanges":{"newValues":[%q]}}}}`, t, p)
			cel = fmt.Sprintf(`event.type == %q && data.propertyChanges.exists(c, has(c.newValues) && %q in c.newValues)`, t, p)
		case k < 95:
			m := pick(rulegen.Media)
			src = fmt.Sprintf(`{"detail-type":[%q],"detail":{"eventBody":{"mediaType":[%q],"direction":["INBOUND"],"disconnectType":[{"anything-but":["TRANSFER","SYSTEM"]}]}}}`, t, m)
			cel = fmt.Sprintf(`event.type == %q && data.mediaType == %q && data.direction == "INBOUND" && !(data.disconnectType in ["TRANSFER", "SYSTEM"])`, t, m)
		default:
			q, w := pick(v.Queues), pick(v.Wrapups)
			src = fmt.Sprintf(`{"detail-type":[%q],"$or":[{"detail":{"eventBody":{"queueId":[%q]}}},{"detail":{"eventBody":{"wrapupCode":[%q]}}}]}`, t, q, w)
			cel = fmt.Sprintf(`event.type == %q && (data.queueId == %q || data.wrapupCode == %q)`, t, q, w)
		}
		rules[i] = genRule{name: fmt.Sprintf("rule-%05d", i), src: []byte(src), cel: cel}
	}
	return rules
}

// benchEvents returns the Genesys-sized envelopes the benchmarks and scale tests use: the
// customer.end sample padded with the fields a real one carries (2.7 KB), and two audits.
func benchEvents(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range []string{"bench-customer-end.json", "v2.audits.entitytype.UserPresence.update.json", "v2.detail.events.conversation.customer.start.json"} {
		b, err := os.ReadFile("testdata/" + f)
		require.NoError(t, err)
		out = append(out, b)
	}
	return out
}

// benchEvent is the padded customer.end envelope as a decoded Event.
func benchEvent(t testing.TB) *fanbridge.Event {
	raw := benchEvents(t)[0]
	start := bytes.Index(raw, []byte(`"eventBody": `)) + len(`"eventBody": `)
	end := bytes.Index(raw, []byte(`, "metadata": {"CorrelationId"`))
	require.Greater(t, end, start)
	return &fanbridge.Event{
		ID:     "58fb5dac-f077-4eec-a25f-c638dbdd4368",
		Type:   "v2.detail.events.conversation.{id}.customer.end",
		Topic:  "v2.detail.events.conversation.2f7bf00a-0fc2-4d6a-9b56-92238191433e.customer.end",
		Source: "aws.partner/genesys.com/cloud/32aa07aa-db1b-4987-abd0-9483601ec29d/contact-center-prod",
		Data:   raw[start:end],
		Raw:    raw,
	}
}
