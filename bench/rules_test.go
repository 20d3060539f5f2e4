//go:build unix

package bench_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/fanbridge/fanbridge/internal/rulegen"
)

// The 1,000 routing rules every pipeline evaluates. Each rule is generated once as a list of
// conditions and then written three ways: as an Amazon EventBridge event pattern (fanbridge), as a
// tutorial's map of field paths to expected values, and as Go closures over a typed struct (what a
// Watermill user writes). TestMatchersAgree proves the three select the same rules for every
// sample, so the pipelines do the same work.

const numRules = 1000

// condKind is what a condition tests.
type condKind int

const (
	condOneOf       condKind = iota // the string value is one of values
	condPrefix                      // the string value starts with prefix
	condRange                       // the number is in [lo, hi)
	condAnythingBut                 // a value is present and is not one of values
)

// cond is one condition of a rule, on a dotted path from the envelope's root.
type cond struct {
	path   string
	kind   condKind
	values []string
	prefix string
	lo, hi float64
}

// rule is one generated routing rule: every condition must hold.
type rule struct {
	name  string
	conds []cond
}

// The detail-type of the 2.7 KB conversation event, which the planted rules select.
const benchType = "v2.detail.events.conversation.{id}.customer.end"

// generateRules returns n rules of the kinds contact centres write: most pair a detail-type with
// a high-cardinality value (a queue, a division, an organisation, wrap-up codes), others test
// media type and duration ranges or exclude disconnect types. Against the 2.7 KB event a handful
// match (three are planted so that it always does) and the rest do not, which is what makes a
// rule set large in practice.
func generateRules(n int, seed uint64) []rule {
	r := rand.New(rand.NewPCG(seed, 7))
	v := rulegen.New(r)
	pick, topic := v.Pick, v.Topic

	body := func(field string) string { return "detail.eventBody." + field }
	typeIs := func(t ...string) cond { return cond{path: "detail-type", kind: condOneOf, values: t} }
	oneOf := func(field string, vals ...string) cond { return cond{path: body(field), kind: condOneOf, values: vals} }

	rules := make([]rule, n)
	for i := range rules {
		t := topic()
		var cs []cond
		switch k := r.IntN(100); {
		case k < 35:
			cs = []cond{typeIs(t), oneOf("queueId", pick(v.Queues))}
		case k < 50:
			lo := float64((r.IntN(60) + 1) * 10000)
			hi := lo + float64((r.IntN(30)+1)*10000)
			cs = []cond{typeIs(t), oneOf("mediaType", pick(rulegen.Media)),
				{path: body("interactingDurationMs"), kind: condRange, lo: lo, hi: hi}}
		case k < 60:
			cs = []cond{typeIs(t), oneOf("divisionId", pick(v.Divisions))}
		case k < 68:
			dots := strings.Split(t, ".")
			cs = []cond{{path: "detail-type", kind: condPrefix, prefix: strings.Join(dots[:len(dots)-1], ".") + "."},
				oneOf("queueId", pick(v.Queues))}
		case k < 76:
			cs = []cond{typeIs(t), oneOf("wrapupCode", pick(v.Wrapups), pick(v.Wrapups))}
		case k < 85:
			cs = []cond{{path: "source", kind: condPrefix, prefix: "aws.partner/genesys.com/cloud/" + pick(v.Orgs) + "/"}, typeIs(t)}
		case k < 95:
			cs = []cond{typeIs(t), oneOf("mediaType", pick(rulegen.Media)), oneOf("direction", "INBOUND"),
				{path: body("disconnectType"), kind: condAnythingBut, values: []string{"TRANSFER", "SYSTEM"}}}
		default:
			cs = []cond{typeIs(t, pick(rulegen.HotTopics)), oneOf("mediaType", pick(rulegen.Media))}
		}
		rules[i] = rule{name: fmt.Sprintf("rule-%04d", i), conds: cs}
	}
	// Plant three rules the 2.7 KB event matches, spread over the list.
	rules[n/4].conds = []cond{typeIs(benchType), oneOf("queueId", rulegen.Queue)}
	rules[n/2].conds = []cond{typeIs(benchType), oneOf("divisionId", rulegen.Division)}
	rules[3*n/4].conds = []cond{typeIs(benchType, "v2.detail.events.conversation.{id}.acw"), oneOf("wrapupCode", "Sale", "Upsell")}
	return rules
}

// pattern writes the rule as an Amazon EventBridge event pattern.
func (r rule) pattern() []byte {
	root := map[string]any{}
	for _, c := range r.conds {
		keys := strings.Split(c.path, ".")
		node := root
		for _, k := range keys[:len(keys)-1] {
			next, ok := node[k].(map[string]any)
			if !ok {
				next = map[string]any{}
				node[k] = next
			}
			node = next
		}
		var leaf []any
		switch c.kind {
		case condOneOf:
			for _, v := range c.values {
				leaf = append(leaf, v)
			}
		case condPrefix:
			leaf = []any{map[string]any{"prefix": c.prefix}}
		case condRange:
			leaf = []any{map[string]any{"numeric": []any{">=", c.lo, "<", c.hi}}}
		case condAnythingBut:
			leaf = []any{map[string]any{"anything-but": c.values}}
		}
		node[keys[len(keys)-1]] = leaf
	}
	b, err := json.Marshal(root)
	if err != nil {
		panic(err)
	}
	return b
}
